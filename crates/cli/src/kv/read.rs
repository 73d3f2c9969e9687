//! The verbs that read: get and ls.

use super::output::print_response;
use super::{Ctx, Format, failure::Failure, require_key};
use clap::Args;
use musubi_client::{GetOptions, Node};

#[derive(Args)]
pub struct GetArgs {
    key: Option<String>,
    /// Return the result in sorted order.
    #[arg(long)]
    sort: bool,
    /// Require a quorum (linearizable read).
    #[arg(long, short = 'q')]
    quorum: bool,
}

impl GetArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = require_key(&self.key)?;
        let opts = GetOptions {
            sorted: self.sort,
            quorum: self.quorum,
            recursive: false,
        };
        let resp = ctx.call(ctx.client.get(key, &opts)).await?;
        if resp.node.dir {
            return Err(Failure::IsDirectory(resp.node.key));
        }
        print_response(&resp, ctx.format);
        Ok(())
    }
}

#[derive(Args)]
pub struct LsArgs {
    /// The directory; `/` when absent.
    key: Option<String>,
    /// Return the result in sorted order.
    #[arg(long)]
    sort: bool,
    /// List all keys under the directory, recursively.
    #[arg(long, short = 'r')]
    recursive: bool,
    /// Append a slash (/) to directories.
    #[arg(short = 'p')]
    slash: bool,
    /// Require a quorum (linearizable read).
    #[arg(long, short = 'q')]
    quorum: bool,
}

impl LsArgs {
    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let key = self.key.as_deref().unwrap_or("/");
        let opts = GetOptions {
            sorted: self.sort,
            quorum: self.quorum,
            recursive: self.recursive,
        };
        let resp = ctx.call(ctx.client.get(key, &opts)).await?;
        if ctx.format != Format::Simple {
            print_response(&resp, ctx.format);
            return Ok(());
        }
        let mut out = String::new();
        if !resp.node.dir {
            out.push_str(&resp.node.key);
            out.push('\n');
        }
        for child in resp.node.children() {
            self.list(child, &mut out);
        }
        print!("{out}");
        Ok(())
    }

    /// A node's key (with `/` for directories under `-p`), then its children depth first.
    fn list(&self, node: &Node, out: &mut String) {
        out.push_str(&node.key);
        if node.dir && self.slash {
            out.push('/');
        }
        out.push('\n');
        for child in node.children() {
            self.list(child, out);
        }
    }
}
