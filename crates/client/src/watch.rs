//! Watching a key: repeated `wait=true` long polls, each resuming after the last event seen.

use crate::client::{Client, decode};
use crate::error::Error;
use crate::request::{KeysRequest, WatchOptions};
use crate::types::Response;

/// Yields the events on a key (or, recursively, under it), one long poll per event.
pub struct Watcher {
    client: Client,
    key: String,
    recursive: bool,
    /// The `waitIndex` of the next poll; 0 means "from now on".
    wait_index: u64,
}

impl Watcher {
    pub(crate) fn new(client: Client, key: &str, opts: WatchOptions) -> Self {
        let wait_index = if opts.after_index > 0 {
            opts.after_index + 1
        } else {
            0
        };
        Watcher {
            client,
            key: key.to_string(),
            recursive: opts.recursive,
            wait_index,
        }
    }

    /// The next event. An empty reply (the server ended the poll without an event) is polled
    /// again rather than reported.
    pub async fn next(&mut self) -> Result<Response, Error> {
        loop {
            let reply = self
                .client
                .send(&KeysRequest::wait(
                    &self.key,
                    self.wait_index,
                    self.recursive,
                ))
                .await?;
            if let Some(resp) = decode(reply)? {
                self.wait_index = resp.node.modified_index + 1;
                return Ok(resp);
            }
        }
    }
}
