//! `txn`: etcdctl 3.4's grammar on stdin: compares, a blank line, the ops on success, a
//! blank line, the ops on failure, a blank line (each op an etcdctl command: `put`, `get`,
//! `del`).
//! `-i` prompts are not printed; the input is read the same way.

use super::Ctx;
use super::failure::{EXIT_INVALID_INPUT, Failure};
use super::fields;
use super::kv::{self, DelArgs, GetArgs, PutArgs, parse_int};
use super::output::{Obj, print_json};
use clap::{Args, Parser, Subcommand};
use musubi_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use musubi_proto::etcdserverpb::kv_client::KvClient;
use musubi_proto::etcdserverpb::request_op::Request;
use musubi_proto::etcdserverpb::response_op::Response;
use musubi_proto::etcdserverpb::{Compare, RequestOp, TxnRequest, TxnResponse};
use serde_json::Value;
use std::io::Read;

#[derive(Args)]
pub struct TxnArgs {
    args: Vec<String>,
    /// Print a prompt before each part.
    #[arg(short, long)]
    interactive: bool,
}

/// One op line, parsed as the `put`, `get` and `del` commands are.
#[derive(Parser)]
#[command(no_binary_name = true)]
struct OpLine {
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand)]
enum Op {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

impl TxnArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        if !self.args.is_empty() {
            return Err(Failure::bad_args("txn command does not accept argument"));
        }
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .map_err(|e| Failure::new(EXIT_INVALID_INPUT, e.to_string()))?;
        let mut lines = Lines(&input);
        self.prompt("compares:");
        let compare = read_compares(&mut lines)?;
        self.prompt("success requests (get, put, del):");
        let success = read_ops(&mut lines)?;
        self.prompt("failure requests (get, put, del):");
        let failure = read_ops(&mut lines)?;
        let request = TxnRequest {
            compare,
            success,
            failure,
        };
        let reply = ctx
            .conn
            .unary(|ch, conn| {
                let request = conn.request(request.clone());
                async move { KvClient::new(ch).txn(request).await }
            })
            .await?;
        print_txn(ctx, &reply)
    }

    fn prompt(&self, text: &str) {
        if self.interactive {
            println!("{text}");
        }
    }
}

fn print_txn(ctx: &Ctx, reply: &TxnResponse) -> Result<(), Failure> {
    if ctx.out.fields(|| fields::txn(reply))? {
        return Ok(());
    }
    if ctx.out.json() {
        let responses: Vec<Value> = reply
            .responses
            .iter()
            .map(|r| {
                let inner = match &r.response {
                    Some(Response::ResponsePut(p)) => {
                        Obj::new().field("ResponsePut", kv::put_json(p))
                    }
                    Some(Response::ResponseRange(g)) => {
                        Obj::new().field("ResponseRange", kv::get_json(g))
                    }
                    Some(Response::ResponseDeleteRange(d)) => {
                        Obj::new().field("ResponseDeleteRange", kv::del_json(d))
                    }
                    Some(Response::ResponseTxn(t)) => Obj::new().field("ResponseTxn", txn_json(t)),
                    None => Obj::new(),
                };
                Obj::new()
                    .opt("Response", r.response.as_ref().map(|_| inner.value()))
                    .value()
            })
            .collect();
        print_json(
            Obj::new()
                .header(&reply.header)
                .boolean("succeeded", reply.succeeded)
                .list("responses", responses)
                .value(),
        );
        return Ok(());
    }
    println!(
        "{}",
        if reply.succeeded {
            "SUCCESS"
        } else {
            "FAILURE"
        }
    );
    for r in &reply.responses {
        println!();
        match &r.response {
            Some(Response::ResponsePut(p)) => kv::print_put(ctx, p)?,
            Some(Response::ResponseRange(g)) => kv::print_get(ctx, g, false)?,
            Some(Response::ResponseDeleteRange(d)) => kv::print_del(ctx, d)?,
            // etcdctl's own txn grammar has no nested txn; its printer says this.
            _ => println!("unexpected response {r:?}"),
        }
    }
    Ok(())
}

fn txn_json(reply: &TxnResponse) -> Value {
    Obj::new()
        .header(&reply.header)
        .boolean("succeeded", reply.succeeded)
        .value()
}

/// Go's `bufio.Reader.ReadString('\n')` over the input read so far.
struct Lines<'a>(&'a [u8]);

impl Lines<'_> {
    /// The next line with its newline; None when no newline is left (the input ended).
    fn next_line(&mut self) -> Option<String> {
        let i = self.0.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&self.0[..=i]).into_owned();
        self.0 = &self.0[i + 1..];
        Some(line)
    }
}

/// Compares up to a blank line.
fn read_compares(lines: &mut Lines) -> Result<Vec<Compare>, Failure> {
    read_section(lines, |line| {
        parse_compare(line).map_err(|e| Failure::new(EXIT_INVALID_INPUT, e))
    })
}

/// Ops up to a blank line.
fn read_ops(lines: &mut Lines) -> Result<Vec<RequestOp>, Failure> {
    read_section(lines, parse_op)
}

/// Lines up to a blank one, each parsed. Every section ends with a blank line: etcdctl 3.4
/// fails with `Error: EOF` when the input ends before it, even after the last section.
fn read_section<T>(
    lines: &mut Lines,
    parse: impl Fn(&str) -> Result<T, Failure>,
) -> Result<Vec<T>, Failure> {
    let mut parsed = Vec::new();
    loop {
        let line = lines
            .next_line()
            .ok_or_else(|| Failure::new(EXIT_INVALID_INPUT, "EOF"))?;
        let line = line.trim();
        if line.is_empty() {
            return Ok(parsed);
        }
        parsed.push(parse(line)?);
    }
}

fn parse_op(line: &str) -> Result<RequestOp, Failure> {
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(Failure::new(
            EXIT_INVALID_INPUT,
            format!("invalid txn compare request: {line}"),
        ));
    }
    let parsed = OpLine::try_parse_from(args)
        .map_err(|_| Failure::new(EXIT_INVALID_INPUT, format!("invalid txn request: {line}")))?;
    // The commands' own argument checks apply, with their messages and exit codes.
    let request = match parsed.op {
        Op::Put(a) => Request::RequestPut(a.request()?),
        Op::Get(a) => Request::RequestRange(a.request()?),
        Op::Del(a) => Request::RequestDeleteRange(a.request()?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// `TARGET("key") OP "value"`, TARGET one of `ver`/`version`, `c`/`create`, `m`/`mod`,
/// `val`/`value`, `lease`; OP one of `=`, `!=`, `<`, `>`.
fn parse_compare(line: &str) -> Result<Compare, String> {
    let Some((target, rest)) = line.split_once('(') else {
        return Err(format!("malformed comparison: {line}"));
    };
    let (key, op, value, scanned) = scan_compare(rest);
    if scanned != 3 {
        return Err(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            kv::go_quote(&key),
            kv::go_quote(&value)
        ));
    }
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        _ => return Err(format!("malformed comparison: {line} (unknown op {op})")),
    };
    let invalid = |_| format!("invalid txn compare request: {line}");
    let (target, union) = match target {
        "ver" | "version" => (
            CompareTarget::Version,
            TargetUnion::Version(parse_int(&value, 10).map_err(invalid)?),
        ),
        "c" | "create" => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(parse_int(&value, 10).map_err(invalid)?),
        ),
        "m" | "mod" => (
            CompareTarget::Mod,
            TargetUnion::ModRevision(parse_int(&value, 10).map_err(invalid)?),
        ),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(value.into_bytes())),
        "lease" => (
            CompareTarget::Lease,
            TargetUnion::Lease(parse_int(&value, 10).map_err(invalid)?),
        ),
        other => {
            return Err(format!(
                "malformed comparison: {line} (unknown target {other})"
            ));
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes(),
        target_union: Some(union),
        ..Default::default()
    })
}

/// Go's `fmt.Sscanf(text, "%q) %s %q", &key, &op, &value)`: the three values and how many
/// were scanned.
fn scan_compare(text: &str) -> (String, String, String, usize) {
    let mut rest = text;
    let Some((key, after)) = scan_quoted(rest) else {
        return (String::new(), String::new(), String::new(), 0);
    };
    rest = after;
    let Some(after) = rest.strip_prefix(')') else {
        return (key, String::new(), String::new(), 1);
    };
    rest = after.trim_start();
    let op: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    if op.is_empty() {
        return (key, op, String::new(), 1);
    }
    rest = rest[op.len()..].trim_start();
    match scan_quoted(rest) {
        Some((value, _)) => (key, op, value, 3),
        None => (key, op, String::new(), 2),
    }
}

/// A Go quoted string (`"..."` with escapes, or a raw `` `...` ``) at the start of `text`,
/// unquoted, and what follows it.
fn scan_quoted(text: &str) -> Option<(String, &str)> {
    if let Some(raw) = text.strip_prefix('`') {
        let end = raw.find('`')?;
        return Some((raw[..end].to_string(), &raw[end + 1..]));
    }
    let body = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' | 'u' | 'U' => {
                        let len = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = (0..len)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        let code = u32::from_str_radix(&hex, 16).ok()?;
                        out.push(char::from_u32(code)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

/// etcdctl's `argify`: words, `"double-quoted"` (Go escapes) or `'single-quoted'` strings.
fn argify(line: &str) -> Result<Vec<String>, Failure> {
    let mut args = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let Some(first) = rest.chars().next() else {
            return Ok(args);
        };
        match first {
            '"' => match closing_double_quote(rest) {
                Some(end) => {
                    let (value, _) = scan_quoted(&rest[..end])
                        .ok_or_else(|| Failure::new(EXIT_INVALID_INPUT, "bad quoted string"))?;
                    args.push(value);
                    rest = &rest[end..];
                    continue;
                }
                // No closing quote: not a token; the scan goes on after it.
                None => rest = &rest[1..],
            },
            '\'' => match rest[1..].find('\'') {
                Some(end) => {
                    args.push(rest[1..end + 1].to_string());
                    rest = &rest[end + 2..];
                }
                None => rest = &rest[1..],
            },
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                args.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
}

/// The end (past the quote) of a `"..."` token that starts `text`.
fn closing_double_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_parse_as_etcdctl_writes_them() {
        let c = parse_compare(r#"value("a") = "1""#).unwrap();
        assert_eq!(c.key, b"a");
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"1".to_vec())));
        let c = parse_compare(r#"mod("k x") > "0""#).unwrap();
        assert_eq!(c.result, CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(0)));
        assert_eq!(
            parse_compare("bogus").unwrap_err(),
            "malformed comparison: bogus"
        );
        assert_eq!(
            parse_compare(r#"value("a") ="#).unwrap_err(),
            r#"malformed comparison: value("a") =; got value("a") = """#
        );
        assert_eq!(
            parse_compare(r#"ver("a") = "x""#).unwrap_err(),
            r#"invalid txn compare request: ver("a") = "x""#
        );
    }

    #[test]
    fn argify_splits_quoted_words() {
        let args = argify(r#"put "a b" 'c d' e\n"x\ty""#).unwrap();
        assert_eq!(args, vec!["put", "a b", "c d", "e\\n\"x\\ty\""]);
        let args = argify(r#"put k "v\"1""#).unwrap();
        assert_eq!(args, vec!["put", "k", "v\"1"]);
    }
}
