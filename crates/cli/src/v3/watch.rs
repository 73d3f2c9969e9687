//! `watch KEY [RANGE_END] [--prefix] [--rev R] [--prev-kv]`: events as etcdctl 3.4 prints
//! them until the server cancels the watch (exit 5, as etcdctl) or the process is killed.
//! A stream that breaks is reopened (on the next endpoint) after the last revision seen,
//! as etcd's client does, so no event is lost or repeated.

use super::Ctx;
use super::failure::{EXIT_INTERRUPTED, Failure};
use super::fields;
use super::kv::ranged;
use super::output::{Obj, header_json, kv_json, print_json};
use clap::Args;
use musubi_proto::etcdserverpb::watch_client::WatchClient;
use musubi_proto::etcdserverpb::watch_request::RequestUnion;
use musubi_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use musubi_proto::mvccpb::event::EventType;
use serde_json::Value;
use std::time::Duration;
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::metadata::MetadataValue;

/// Failures to open a watch that pass.
const RETRY_OPEN: [&str; 3] = [
    "context deadline exceeded",
    "etcdserver: no leader",
    "etcdserver: leader changed",
];
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

#[derive(Args)]
pub struct WatchArgs {
    /// KEY [RANGE_END]
    args: Vec<String>,
    /// Watch the keys with this prefix.
    #[arg(long)]
    prefix: bool,
    /// The revision to start from (events before now are replayed).
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Show each event's previous key-value pair.
    #[arg(long)]
    prev_kv: bool,
}

impl WatchArgs {
    fn request(&self) -> Result<WatchCreateRequest, Failure> {
        let Some(key) = self.args.first() else {
            return Err(Failure::bad_args("bad number of arguments"));
        };
        if self.args.len() > 2 {
            return Err(Failure::bad_args("too many arguments"));
        }
        let mut range_end = Vec::new();
        if let Some(end) = self.args.get(1) {
            if self.prefix {
                return Err(Failure::bad_args(
                    "`range_end` and `--prefix` are mutually exclusive",
                ));
            }
            range_end = end.as_bytes().to_vec();
        }
        let (key, range_end) = ranged(key, range_end, self.prefix, false);
        Ok(WatchCreateRequest {
            key,
            range_end,
            start_revision: self.rev,
            prev_kv: self.prev_kv,
            ..Default::default()
        })
    }

    pub async fn run(&self, ctx: &Ctx) -> Result<(), Failure> {
        let mut request = self.request()?;
        loop {
            let opened = ctx
                .conn
                .unary(|ch, conn| {
                    let create = WatchRequest {
                        request_union: Some(RequestUnion::CreateRequest(request.clone())),
                    };
                    // The request stream stays open: closing it would end the watch.
                    let stream = tokio_stream::iter([create]).chain(tokio_stream::pending());
                    let mut call = conn.request(stream);
                    // etcd's client refuses to watch through a member without a leader.
                    call.metadata_mut()
                        .insert("hasleader", MetadataValue::from_static("true"));
                    async move { WatchClient::new(ch).watch(call).await }
                })
                .await;
            let mut replies = match opened {
                Ok(replies) => replies,
                // Nothing answered, or a member between leaders (a watch needs one: it asks
                // with `hasleader`): etcd's client waits on, and so does this.
                Err(f) if RETRY_OPEN.contains(&f.message.as_str()) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(f) => return Err(f),
            };
            // Until the stream breaks; then it is reopened after what was seen.
            while let Ok(Some(reply)) = replies.message().await {
                if reply.created && reply.events.is_empty() && !reply.canceled {
                    if request.start_revision == 0
                        && let Some(h) = &reply.header
                    {
                        request.start_revision = h.revision + 1;
                    }
                    continue;
                }
                if let Some(last) = reply.events.last().and_then(|e| e.kv.as_ref()) {
                    request.start_revision = last.mod_revision + 1;
                }
                print_watch(ctx, &reply)?;
                if reply.canceled {
                    return Err(Failure::new(
                        EXIT_INTERRUPTED,
                        "watch is canceled by the server",
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn print_watch(ctx: &Ctx, reply: &WatchResponse) -> Result<(), Failure> {
    if reply.canceled {
        eprintln!("watch was canceled ({})", cancel_reason(reply));
    }
    if ctx.out.fields(|| watch_fields(reply))? {
        return Ok(());
    }
    if ctx.out.json() {
        // etcd's client makes the event list even when empty: `[]`, never null.
        let events: Vec<Value> = reply
            .events
            .iter()
            .map(|e| {
                Obj::new()
                    .int("type", e.r#type)
                    .opt("kv", e.kv.as_ref().map(kv_json))
                    .opt("prev_kv", e.prev_kv.as_ref().map(kv_json))
                    .value()
            })
            .collect();
        print_json(
            Obj::new()
                .field("Header", header_json(&reply.header.unwrap_or_default()))
                .field("Events", events)
                .field("CompactRevision", reply.compact_revision)
                .field("Canceled", reply.canceled)
                .field("Created", reply.created)
                .value(),
        );
        return Ok(());
    }
    for event in &reply.events {
        println!("{}", event_type(event.r#type));
        if let Some(prev) = &event.prev_kv {
            ctx.out.kv(prev, false);
        }
        ctx.out.kv(&event.kv.clone().unwrap_or_default(), false);
    }
    Ok(())
}

fn watch_fields(reply: &WatchResponse) {
    fields::header(&reply.header);
    for event in &reply.events {
        println!("\"Type\" : {}", event_type(event.r#type));
        if let Some(prev) = &event.prev_kv {
            fields::kv("Prev", prev);
        }
        fields::kv("", &event.kv.clone().unwrap_or_default());
    }
}

fn event_type(t: i32) -> &'static str {
    if t == EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    }
}

/// etcd's client's `WatchResponse.Err()` for a cancelled watch.
fn cancel_reason(reply: &WatchResponse) -> String {
    if reply.compact_revision != 0 {
        COMPACTED.to_string()
    } else if !reply.cancel_reason.is_empty() {
        reply.cancel_reason.clone()
    } else {
        FUTURE_REV.to_string()
    }
}
