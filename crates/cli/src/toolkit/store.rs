//! The store the tools talk to: the flags that name it, and the v2 client plus, where the
//! server speaks it, the v3 gRPC channels, so that each tool takes the stronger v3 path
//! (Txn, leases, revisions) and keeps a v2 path for etcd-v2-only servers (`--api 2` forces
//! it, which is how the tests exercise it against etcd 3.4 `--enable-v2`).

use super::exit::ToolError;
use crate::v3::conn::{Settings, channel};
use clap::{Args, ValueEnum};
use musubi_client::Client;
use musubi_proto::etcdserverpb::StatusRequest;
use musubi_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::transport::Channel;

/// The flags every tool shares (../shared/reference/tools.md §0).
#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// The store's client URLs, comma-separated.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Timeout of each request to the store (Go duration, or seconds; default 5s). `lock`
    /// and `elect` also bound their wait for the lock by it when it is given.
    #[arg(long, global = true, value_parser = crate::duration::parse_or_seconds)]
    pub timeout: Option<Duration>,
    /// Output: text for people, json for scripts.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: OutputFormat,
    /// Read from whichever member answers, without a quorum read (may be stale).
    #[arg(long, global = true)]
    pub stale: bool,
    /// Which etcd API to use: auto (v3 where the server speaks it, else v2), 2 or 3.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub api: Api,
}

/// `--timeout` when it is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl StoreArgs {
    pub fn request_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Api {
    Auto,
    #[value(name = "2")]
    V2,
    #[value(name = "3")]
    V3,
}

/// A connection to the store: always the v2 client; the v3 channels when the server has v3.
pub struct Store {
    pub v2: Client,
    v3: Option<V3Channels>,
    pub timeout: Duration,
    pub stale: bool,
}

/// One lazy gRPC channel per endpoint; calls go to the one that answered last, and a tool
/// moves on with [`Store::v3_failover`] when a call could not reach it.
struct V3Channels {
    channels: Vec<Channel>,
    current: AtomicUsize,
}

impl Store {
    pub async fn connect(args: &StoreArgs) -> Result<Store, ToolError> {
        let v2 = Client::new(args.endpoints.clone())?.with_timeout(args.request_timeout());
        let v3 = match args.api {
            Api::V2 => None,
            Api::V3 => Some(probe_v3(args).await?.ok_or_else(|| {
                ToolError::unreachable(format!(
                    "no endpoint of {} answered etcd's v3 API",
                    args.endpoints.join(",")
                ))
            })?),
            Api::Auto => probe_v3(args).await.ok().flatten(),
        };
        Ok(Store {
            v2,
            v3,
            timeout: args.request_timeout(),
            stale: args.stale,
        })
    }

    /// The channel to the v3 endpoint that answered last; `None` on the v2 path.
    pub fn v3(&self) -> Option<Channel> {
        let v3 = self.v3.as_ref()?;
        Some(v3.channels[v3.current.load(Ordering::Relaxed) % v3.channels.len()].clone())
    }

    /// The call on [`Store::v3`]'s channel never reached its server: use the next endpoint.
    pub fn v3_failover(&self) {
        if let Some(v3) = &self.v3 {
            v3.current.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Ask each endpoint in turn for its v3 Status. `Ok(None)`: no endpoint speaks v3 (they
/// answer `Unimplemented`, or are not HTTP/2 servers at all).
async fn probe_v3(args: &StoreArgs) -> Result<Option<V3Channels>, ToolError> {
    let settings = Settings {
        dial_timeout: args.request_timeout(),
        command_timeout: args.request_timeout(),
        keepalive_time: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(10),
        tls: None,
    };
    let channels = args
        .endpoints
        .iter()
        .map(|endpoint| channel(endpoint, &settings))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|failure| ToolError::usage(failure.message))?;
    for (index, channel) in channels.iter().enumerate() {
        let mut maintenance = MaintenanceClient::new(channel.clone());
        let status =
            tokio::time::timeout(args.request_timeout(), maintenance.status(StatusRequest {}))
                .await;
        if let Ok(Ok(_)) = status {
            return Ok(Some(V3Channels {
                channels,
                current: AtomicUsize::new(index),
            }));
        }
    }
    Ok(None)
}
