//! The verbs that delete: rm and rmdir.

use super::output::print_response;
use super::{Ctx, Format, failure::Failure, require_key};
use clap::Args;
use musubi_client::{DeleteOptions, Response};

#[derive(Args)]
pub struct RmArgs {
    key: Option<String>,
    /// Remove the key if it is an empty directory or a key-value pair.
    #[arg(long)]
    dir: bool,
    /// Remove the key and all child keys (if it is a directory).
    #[arg(long, short = 'r')]
    recursive: bool,
    /// Previous value (compare-and-delete).
    #[arg(long)]
    with_value: Option<String>,
    /// Previous index (compare-and-delete).
    #[arg(long, default_value_t = 0)]
    with_index: u64,
}

impl RmArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let opts = DeleteOptions {
            prev_value: self.with_value.clone(),
            prev_index: Some(self.with_index),
            dir: self.dir,
            recursive: self.recursive,
        };
        let resp = ctx.call(ctx.client.delete(key, &opts)).await?;
        print_deleted(&resp, ctx.format);
        Ok(())
    }
}

#[derive(Args)]
pub struct RmdirArgs {
    key: Option<String>,
}

impl RmdirArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let opts = DeleteOptions {
            dir: true,
            ..Default::default()
        };
        let resp = ctx.call(ctx.client.delete(key, &opts)).await?;
        print_deleted(&resp, ctx.format);
        Ok(())
    }
}

/// etcdctl prints nothing for a removed directory in the simple format.
fn print_deleted(resp: &Response, format: Format) {
    if !resp.node.dir || format != Format::Simple {
        print_response(resp, format);
    }
}
