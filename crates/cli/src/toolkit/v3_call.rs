//! One v3 call with failover, as every tool makes it: sent to the endpoint that answered
//! last; a member that does not answer within the timeout, or answers `Unavailable` (no
//! leader, leader changed), hands the call to the next endpoint; the store's own refusals
//! come back at once.
//!
//! A call that timed out may have been applied before its answer was lost. Reads and
//! writes whose repeat is harmless are sent again ([`Call::resend`]); a write whose repeat
//! would misreport (a compare-and-swap that a repeat would find already done and report as
//! lost) is sent once ([`Call::once`]): its caller reads the store to learn what happened.

use super::Store;
use musubi_proto::etcdserverpb::kv_client::KvClient;
use musubi_proto::etcdserverpb::{
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use std::future::Future;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How many endpoints a call tries before it gives up as unreachable.
const ATTEMPTS: usize = 3;

/// How one call is made: how long an endpoint has to answer, and whether it is sent again
/// after a timeout.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    timeout: Duration,
    resend_after_timeout: bool,
}

impl Call {
    /// Sent again to the next endpoint after a timeout.
    pub fn resend(timeout: Duration) -> Call {
        Call {
            timeout,
            resend_after_timeout: true,
        }
    }

    /// Sent once more only when it surely did not arrive (`Unavailable`); a timeout ends it
    /// with `DeadlineExceeded`.
    pub fn once(timeout: Duration) -> Call {
        Call {
            timeout,
            resend_after_timeout: false,
        }
    }
}

impl Store {
    /// A read, or a write whose repeat is harmless, with the store's `--timeout`.
    pub fn call(&self) -> Call {
        Call::resend(self.timeout)
    }

    /// A write that must not be repeated after a timeout, with the store's `--timeout`.
    pub fn call_once(&self) -> Call {
        Call::once(self.timeout)
    }

    /// Make `call` on the v3 channels as [`Call`] says (see the module's comment).
    pub async fn v3_call<T, F, Fut>(&self, how: Call, call: F) -> Result<T, Status>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut last = Status::unavailable("no v3 endpoint");
        for _ in 0..ATTEMPTS {
            let Some(channel) = self.v3() else {
                break;
            };
            let timed_out = match tokio::time::timeout(how.timeout, call(channel)).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(status)) if status.code() != Code::Unavailable => return Err(status),
                Ok(Err(status)) => {
                    last = status;
                    false
                }
                Err(_) => {
                    last = Status::deadline_exceeded("context deadline exceeded");
                    true
                }
            };
            self.v3_failover();
            if timed_out && !how.resend_after_timeout {
                break;
            }
        }
        Err(last)
    }

    /// A Range whose reply may be as large as the store holds (a share's blobs): the
    /// server's own limits bound it, not gRPC's default 4 MiB.
    pub async fn range(&self, how: Call, request: RangeRequest) -> Result<RangeResponse, Status> {
        self.v3_call(how, |ch| {
            let request = request.clone();
            let mut kv = KvClient::new(ch).max_decoding_message_size(usize::MAX);
            async move { Ok(kv.range(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn txn(&self, how: Call, request: TxnRequest) -> Result<TxnResponse, Status> {
        self.v3_call(how, |ch| {
            let request = request.clone();
            async move { Ok(KvClient::new(ch).txn(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn put(&self, how: Call, request: PutRequest) -> Result<PutResponse, Status> {
        self.v3_call(how, |ch| {
            let request = request.clone();
            async move { Ok(KvClient::new(ch).put(request).await?.into_inner()) }
        })
        .await
    }
}
