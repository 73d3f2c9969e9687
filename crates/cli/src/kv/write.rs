//! The verbs that write a key or directory: set, mk, update, mkdir, setdir, updatedir.

use super::output::print_response;
use super::{Ctx, Format, failure::Failure, require_key};
use clap::Args;
use musubi_client::{PrevExist, SetOptions};
use std::io::Read;

#[derive(Args)]
pub struct SetArgs {
    key: Option<String>,
    /// Read from stdin when absent. A value starting with '-' needs `--` before the key.
    value: Option<String>,
    /// Key time-to-live in seconds.
    #[arg(long, default_value_t = 0)]
    ttl: u64,
    /// Previous value (compare-and-swap).
    #[arg(long)]
    swap_with_value: Option<String>,
    /// Previous index (compare-and-swap).
    #[arg(long, default_value_t = 0)]
    swap_with_index: u64,
}

impl SetArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let value = value_or_stdin(&self.value)?;
        let opts = SetOptions {
            prev_value: self.swap_with_value.clone(),
            prev_index: Some(self.swap_with_index),
            ..SetOptions::with_ttl(Some(self.ttl))
        };
        let resp = ctx.call(ctx.client.set(key, &value, &opts)).await?;
        print_response(&resp, ctx.format);
        Ok(())
    }
}

#[derive(Args)]
pub struct MkArgs {
    key: Option<String>,
    /// Read from stdin when absent.
    value: Option<String>,
    /// Create an in-order key under directory <key>.
    #[arg(long)]
    in_order: bool,
    /// Key time-to-live in seconds.
    #[arg(long, default_value_t = 0)]
    ttl: u64,
}

impl MkArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let value = value_or_stdin(&self.value)?;
        let resp = if self.in_order {
            ctx.call(ctx.client.create_in_order(key, &value, Some(self.ttl)))
                .await?
        } else {
            // prevExist=false: mk never overwrites an existing key.
            ctx.call(
                ctx.client
                    .set(key, &value, &SetOptions::create(Some(self.ttl))),
            )
            .await?
        };
        print_response(&resp, ctx.format);
        Ok(())
    }
}

#[derive(Args)]
pub struct UpdateArgs {
    key: Option<String>,
    /// Read from stdin when absent.
    value: Option<String>,
    /// Key time-to-live in seconds.
    #[arg(long, default_value_t = 0)]
    ttl: u64,
}

impl UpdateArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let value = value_or_stdin(&self.value)?;
        let resp = ctx
            .call(
                ctx.client
                    .set(key, &value, &SetOptions::update(Some(self.ttl))),
            )
            .await?;
        print_response(&resp, ctx.format);
        Ok(())
    }
}

/// The three directory verbs differ only in their existence condition.
#[derive(Clone, Copy)]
pub enum DirVerb {
    /// Must not exist yet.
    Mkdir,
    /// Created or (for a TTL change) replaced.
    Setdir,
    /// Must exist.
    Updatedir,
}

#[derive(Args)]
pub struct DirArgs {
    key: Option<String>,
    /// Key time-to-live in seconds.
    #[arg(long, default_value_t = 0)]
    ttl: u64,
}

impl DirArgs {
    pub async fn run(&self, ctx: &Ctx, verb: DirVerb) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let prev_exist = match verb {
            DirVerb::Mkdir => PrevExist::NoExist,
            DirVerb::Setdir => PrevExist::Ignore,
            DirVerb::Updatedir => PrevExist::Exist,
        };
        let resp = ctx
            .call(
                ctx.client
                    .set(key, "", &SetOptions::dir(Some(self.ttl), prev_exist)),
            )
            .await?;
        // etcdctl prints nothing for a directory in the simple format.
        if ctx.format != Format::Simple {
            print_response(&resp, ctx.format);
        }
        Ok(())
    }
}

/// etcdctl's `argOrStdin`: the argument, else all of stdin, which must not be empty.
fn value_or_stdin(value: &Option<String>) -> Result<String, Failure> {
    if let Some(v) = value {
        return Ok(v.clone());
    }
    let mut input = String::new();
    match std::io::stdin().read_to_string(&mut input) {
        Ok(_) if !input.is_empty() => Ok(input),
        _ => Err(Failure::BadArgs("value required".to_string())),
    }
}
