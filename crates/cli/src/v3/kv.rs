//! `put`, `get`, `del` and `compaction`: the argument rules and messages of etcdctl 3.4's
//! `getPutOp`, `getGetOp` and `getDelOp`, one KV call each.

use super::Ctx;
use super::failure::{EXIT_BAD_FEATURE, Failure};
use super::fields;
use super::output::{Format, Obj, kv_json, kvs_json, print_json};
use clap::Args;
use musubi_proto::etcdserverpb::kv_client::KvClient;
use musubi_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use musubi_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse,
};
use std::io::Read;

#[derive(Args)]
pub struct PutArgs {
    /// KEY [VALUE]; without VALUE it is read from stdin.
    #[arg(allow_hyphen_values = false)]
    args: Vec<String>,
    /// Lease ID (hex) to attach the key to.
    #[arg(long, default_value = "0")]
    lease: String,
    /// Return the previous key-value pair.
    #[arg(long)]
    prev_kv: bool,
    /// Keep the current value.
    #[arg(long)]
    ignore_value: bool,
    /// Keep the current lease.
    #[arg(long)]
    ignore_lease: bool,
}

#[derive(Args)]
pub struct GetArgs {
    /// KEY [RANGE_END]
    args: Vec<String>,
    /// Linearizable (l) or serializable (s).
    #[arg(long, default_value = "l")]
    consistency: String,
    /// ASCEND or DESCEND.
    #[arg(long, default_value = "")]
    order: String,
    /// CREATE, KEY, MODIFY, VALUE or VERSION.
    #[arg(long, default_value = "")]
    sort_by: String,
    /// Maximum number of results.
    #[arg(long, default_value_t = 0)]
    limit: i64,
    /// Keys with this prefix.
    #[arg(long)]
    prefix: bool,
    /// Keys from KEY on (byte order).
    #[arg(long)]
    from_key: bool,
    /// The keyspace at this revision.
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Keys only.
    #[arg(long)]
    keys_only: bool,
    /// Values only (simple output).
    #[arg(long)]
    print_value_only: bool,
}

#[derive(Args)]
pub struct DelArgs {
    /// KEY [RANGE_END]
    args: Vec<String>,
    /// Delete the keys with this prefix.
    #[arg(long)]
    prefix: bool,
    /// Return the deleted key-value pairs.
    #[arg(long)]
    prev_kv: bool,
    /// Delete the keys from KEY on (byte order).
    #[arg(long)]
    from_key: bool,
}

#[derive(Args)]
pub struct CompactionArgs {
    /// REVISION
    args: Vec<String>,
    /// Wait until the compaction is physically applied.
    #[arg(long)]
    physical: bool,
}

const BOTH_RANGES: &str = "`--prefix` and `--from-key` cannot be set at the same time, choose one";
const ONE_ARG_WITH_RANGE: &str =
    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set";

impl PutArgs {
    pub fn request(&self) -> Result<PutRequest, Failure> {
        const USAGE: &str = "put command needs 1 argument and input from stdin or 2 arguments";
        let Some(key) = self.args.first() else {
            return Err(Failure::bad_args(USAGE));
        };
        if self.ignore_value && self.args.len() > 1 {
            return Err(Failure::bad_args(
                "put command needs only 1 argument when 'ignore-value' is set",
            ));
        }
        let value = if self.ignore_value {
            Vec::new()
        } else {
            arg_or_stdin(&self.args, 1).ok_or_else(|| Failure::bad_args(USAGE))?
        };
        let lease = parse_int(&self.lease, 16)
            .map_err(|e| Failure::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
        Ok(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        })
    }

    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let request = self.request()?;
        let reply = ctx
            .conn
            .unary(|ch, conn| {
                let request = conn.request(request.clone());
                async move { KvClient::new(ch).put(request).await }
            })
            .await?;
        print_put(ctx, &reply)
    }
}

pub fn print_put(ctx: &Ctx, reply: &PutResponse) -> Result<(), Failure> {
    if ctx.out.fields(|| fields::put(reply))? {
        return Ok(());
    }
    if ctx.out.json() {
        print_json(put_json(reply));
        return Ok(());
    }
    println!("OK");
    if let Some(prev) = &reply.prev_kv {
        ctx.out.kv(prev, false);
    }
    Ok(())
}

pub fn put_json(reply: &PutResponse) -> serde_json::Value {
    Obj::new()
        .header(&reply.header)
        .opt("prev_kv", reply.prev_kv.as_ref().map(kv_json))
        .value()
}

impl GetArgs {
    pub fn request(&self) -> Result<RangeRequest, Failure> {
        let Some(key) = self.args.first() else {
            return Err(Failure::bad_args(
                "get command needs one argument as key and an optional argument as range_end",
            ));
        };
        if self.prefix && self.from_key {
            return Err(Failure::bad_args(BOTH_RANGES));
        }
        let serializable = match self.consistency.as_str() {
            "s" => true,
            "l" => false,
            other => {
                return Err(Failure::new(
                    EXIT_BAD_FEATURE,
                    format!("unknown consistency flag {}", go_quote(other)),
                ));
            }
        };
        let mut range_end = Vec::new();
        if let Some(end) = self.args.get(1) {
            if self.prefix || self.from_key {
                return Err(Failure::bad_args(ONE_ARG_WITH_RANGE));
            }
            range_end = end.as_bytes().to_vec();
        }
        let mut sort_order = match self.order.as_str() {
            "ASCEND" => SortOrder::Ascend,
            "DESCEND" => SortOrder::Descend,
            "" => SortOrder::None,
            other => {
                return Err(Failure::new(
                    EXIT_BAD_FEATURE,
                    format!("bad sort order {other}"),
                ));
            }
        };
        let sort_target = match self.sort_by.as_str() {
            "CREATE" => SortTarget::Create,
            "KEY" | "" => SortTarget::Key,
            "MODIFY" => SortTarget::Mod,
            "VALUE" => SortTarget::Value,
            "VERSION" => SortTarget::Version,
            other => {
                return Err(Failure::new(
                    EXIT_BAD_FEATURE,
                    format!("bad sort target {other}"),
                ));
            }
        };
        // Keys come in ascending order anyway; etcd's client sends no sort for it.
        if sort_target == SortTarget::Key && sort_order == SortOrder::Ascend {
            sort_order = SortOrder::None;
        }
        let (key, range_end) = ranged(key, range_end, self.prefix, self.from_key);
        Ok(RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.rev.max(0),
            sort_order: sort_order as i32,
            sort_target: sort_target as i32,
            serializable,
            keys_only: self.keys_only,
            ..Default::default()
        })
    }

    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let request = self.request()?;
        let reply = ctx
            .conn
            .read(|ch, conn| {
                let request = conn.request(request.clone());
                async move { KvClient::new(ch).range(request).await }
            })
            .await?;
        if self.print_value_only && ctx.out.format != Format::Simple {
            return Err(Failure::bad_args(
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        print_get(ctx, &reply, self.print_value_only)
    }
}

pub fn print_get(ctx: &Ctx, reply: &RangeResponse, value_only: bool) -> Result<(), Failure> {
    if ctx.out.fields(|| fields::get(reply))? {
        return Ok(());
    }
    if ctx.out.json() {
        print_json(get_json(reply));
        return Ok(());
    }
    for kv in &reply.kvs {
        ctx.out.kv(kv, value_only);
    }
    Ok(())
}

pub fn get_json(reply: &RangeResponse) -> serde_json::Value {
    Obj::new()
        .header(&reply.header)
        .list("kvs", kvs_json(&reply.kvs))
        .boolean("more", reply.more)
        .int("count", reply.count)
        .value()
}

impl DelArgs {
    pub fn request(&self) -> Result<DeleteRangeRequest, Failure> {
        if self.args.is_empty() || self.args.len() > 2 {
            return Err(Failure::bad_args(
                "del command needs one argument as key and an optional argument as range_end",
            ));
        }
        if self.prefix && self.from_key {
            return Err(Failure::bad_args(BOTH_RANGES));
        }
        let mut range_end = Vec::new();
        if let Some(end) = self.args.get(1) {
            if self.prefix || self.from_key {
                return Err(Failure::bad_args(ONE_ARG_WITH_RANGE));
            }
            range_end = end.as_bytes().to_vec();
        }
        let (key, range_end) = ranged(&self.args[0], range_end, self.prefix, self.from_key);
        Ok(DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        })
    }

    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let request = self.request()?;
        let reply = ctx
            .conn
            .unary(|ch, conn| {
                let request = conn.request(request.clone());
                async move { KvClient::new(ch).delete_range(request).await }
            })
            .await?;
        print_del(ctx, &reply)
    }
}

pub fn print_del(ctx: &Ctx, reply: &DeleteRangeResponse) -> Result<(), Failure> {
    if ctx.out.fields(|| fields::del(reply))? {
        return Ok(());
    }
    if ctx.out.json() {
        print_json(del_json(reply));
        return Ok(());
    }
    println!("{}", reply.deleted);
    for kv in &reply.prev_kvs {
        ctx.out.kv(kv, false);
    }
    Ok(())
}

pub fn del_json(reply: &DeleteRangeResponse) -> serde_json::Value {
    Obj::new()
        .header(&reply.header)
        .int("deleted", reply.deleted)
        .list("prev_kvs", kvs_json(&reply.prev_kvs))
        .value()
}

impl CompactionArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let [rev] = self.args.as_slice() else {
            return Err(Failure::bad_args("compaction command needs 1 argument"));
        };
        let revision = parse_int(rev, 10).map_err(Failure::other)?;
        let request = CompactionRequest {
            revision,
            physical: self.physical,
        };
        ctx.conn
            .unary(|ch, conn| {
                let request = conn.request(request);
                async move { KvClient::new(ch).compact(request).await }
            })
            .await?;
        // etcdctl prints this line whatever the output format.
        println!("compacted revision {revision}");
        Ok(())
    }
}

/// KEY and RANGE_END after `--prefix` (an empty prefix is the whole keyspace) or
/// `--from-key` (an empty key is the first key), as etcd's client computes them.
pub fn ranged(key: &str, range_end: Vec<u8>, prefix: bool, from_key: bool) -> (Vec<u8>, Vec<u8>) {
    let mut key = key.as_bytes().to_vec();
    let mut range_end = range_end;
    if prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        range_end = vec![0];
    }
    (key, range_end)
}

pub use musubi_proto::prefix_end;

/// Argument `i`, or else all of stdin when it is not empty (etcdctl's `argOrStdin`).
fn arg_or_stdin(args: &[String], i: usize) -> Option<Vec<u8>> {
    if let Some(arg) = args.get(i) {
        return Some(arg.as_bytes().to_vec());
    }
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).ok()?;
    (!input.is_empty()).then_some(input)
}

/// Go's `strconv.ParseInt(text, base, 64)`, with its error text.
pub fn parse_int(text: &str, base: u32) -> Result<i64, String> {
    use std::num::IntErrorKind;
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let result = if digits.is_empty() || digits.starts_with(['+', '-']) {
        None
    } else {
        Some(i64::from_str_radix(text, base))
    };
    match result {
        Some(Ok(v)) => Ok(v),
        Some(Err(e))
            if matches!(
                e.kind(),
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
            ) =>
        {
            Err(format!(
                "strconv.ParseInt: parsing {}: value out of range",
                go_quote(text)
            ))
        }
        _ => Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            go_quote(text)
        )),
    }
}

/// Go's `%q` of a string.
pub use musubi_gocompat::strconv::quote as go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_speaks_go() {
        assert_eq!(parse_int("ff", 16), Ok(255));
        assert_eq!(parse_int("-1", 10), Ok(-1));
        assert_eq!(
            parse_int("zz", 16),
            Err("strconv.ParseInt: parsing \"zz\": invalid syntax".to_string())
        );
        assert_eq!(
            parse_int("", 10),
            Err("strconv.ParseInt: parsing \"\": invalid syntax".to_string())
        );
        assert_eq!(
            parse_int("10000000000000000", 16),
            Err("strconv.ParseInt: parsing \"10000000000000000\": value out of range".to_string())
        );
    }
}
