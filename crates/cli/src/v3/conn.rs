//! Connections to the v3 endpoints, as etcdctl 3.4's client makes them: a lazy gRPC channel
//! per endpoint (dialled within `--dial-timeout`), every command within `--command-timeout`,
//! a call that cannot reach an endpoint moves on to the next, and `--user` becomes a token
//! sent as `token` metadata on every call (fetched again when the server says it expired,
//! as etcd's client does: simple tokens expire after 5 idle minutes).

use super::failure::Failure;
use super::tls;
use musubi_proto::etcdserverpb::AuthenticateRequest;
use musubi_proto::etcdserverpb::auth_client::AuthClient;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

/// etcd's default --grpc-keepalive-min-time, and a second for the timers' jitter.
const MIN_PING_INTERVAL: Duration = Duration::from_secs(6);

const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
const INVALID_TOKEN: &str = "etcdserver: invalid auth token";

/// How long to wait before going round the endpoints again when none could be reached
/// (etcdctl keeps retrying until the command's deadline too).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub struct Conn {
    /// The endpoints as given, for the commands that print them (`endpoint status`, ...).
    pub endpoints: Vec<String>,
    channels: Vec<Channel>,
    /// The endpoint that answered last: the next call starts there.
    current: Cell<usize>,
    /// `--user`'s name and password, to fetch a new token with.
    credentials: Option<AuthenticateRequest>,
    token: RefCell<Option<MetadataValue<tonic::metadata::Ascii>>>,
    settings: Settings,
}

/// What it takes to open a channel to one more endpoint (`--cluster` lists the members'
/// client URLs).
#[derive(Clone)]
pub struct Settings {
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    pub tls: Option<tls::Config>,
}

impl Conn {
    pub fn new(endpoints: Vec<String>, settings: Settings) -> Result<Conn, Failure> {
        let channels = endpoints
            .iter()
            .map(|e| channel(e, &settings))
            .collect::<Result<_, _>>()?;
        Ok(Conn {
            endpoints,
            channels,
            current: Cell::new(0),
            credentials: None,
            token: RefCell::new(None),
            settings,
        })
    }

    /// The same settings (and token) towards other endpoints.
    pub fn with_endpoints(&self, endpoints: Vec<String>) -> Result<Conn, Failure> {
        let mut conn = Conn::new(endpoints, self.settings.clone())?;
        conn.credentials = self.credentials.clone();
        conn.token = self.token.clone();
        Ok(conn)
    }

    /// One connection per endpoint, for the commands that ask each endpoint in turn.
    pub fn each(&self) -> Result<Vec<(String, Conn)>, Failure> {
        self.endpoints
            .iter()
            .map(|e| Ok((e.clone(), self.with_endpoints(vec![e.clone()])?)))
            .collect()
    }

    /// `--user name[:password]`: authenticate once; the token goes with every later call.
    pub async fn authenticate(&mut self, name: &str, password: &str) -> Result<(), Failure> {
        let request = AuthenticateRequest {
            name: name.to_string(),
            password: password.to_string(),
        };
        // etcd's client authenticates while it dials: within --dial-timeout.
        let reply = match self
            .unary_within(self.settings.dial_timeout, false, |ch, _| {
                let request = request.clone();
                async move { AuthClient::new(ch).authenticate(request).await }
            })
            .await
        {
            Ok(reply) => reply,
            // etcd's client goes on without a token when the server has auth off.
            Err(f) if f.message == AUTH_NOT_ENABLED => return Ok(()),
            Err(f) => return Err(f),
        };
        self.credentials = Some(request);
        self.keep_token(&reply.token)
    }

    fn keep_token(&self, token: &str) -> Result<(), Failure> {
        let token = MetadataValue::try_from(token)
            .map_err(|e| Failure::other(format!("bad token: {e}")))?;
        *self.token.borrow_mut() = Some(token);
        Ok(())
    }

    /// A new token for an expired one, from the endpoint that refused it.
    async fn refresh_token(&self, channel: Channel) -> Result<(), Failure> {
        let Some(credentials) = self.credentials.clone() else {
            return Ok(());
        };
        let reply = AuthClient::new(channel)
            .authenticate(credentials)
            .await
            .map_err(Failure::status)?;
        self.keep_token(&reply.into_inner().token)
    }

    /// A request carrying the auth token, if any.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = self.token.borrow().as_ref() {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }

    /// One call (unary, or the opening of a stream) within `--command-timeout`. `call` gets a
    /// channel and this connection
    /// (for `request`); a call that finds its endpoint unreachable is tried on the next one,
    /// round and round until the deadline, which ends it as `context deadline exceeded`.
    pub async fn unary<T, F, Fut>(&self, call: F) -> Result<T, Failure>
    where
        F: Fn(Channel, &Conn) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.unary_within(self.settings.command_timeout, false, call)
            .await
    }

    /// A call that changes nothing (a range, a status, a list): as `unary`, and a server's
    /// `Unavailable` (`etcdserver: no leader`, `leader changed`) is tried again too, as
    /// etcd's client retries its read-only calls.
    pub async fn read<T, F, Fut>(&self, call: F) -> Result<T, Failure>
    where
        F: Fn(Channel, &Conn) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.unary_within(self.settings.command_timeout, true, call)
            .await
    }

    async fn unary_within<T, F, Fut>(
        &self,
        timeout: Duration,
        read: bool,
        call: F,
    ) -> Result<T, Failure>
    where
        F: Fn(Channel, &Conn) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let deadline = Instant::now() + timeout;
        let mut refreshed = false;
        let attempt = async {
            loop {
                for _ in 0..self.channels.len() {
                    let i = self.current.get();
                    match call(self.channels[i].clone(), self).await {
                        Ok(reply) => return Ok(reply.into_inner()),
                        Err(status)
                            if unreachable(&status)
                                || (read && status.code() == Code::Unavailable) =>
                        {
                            self.current.set((i + 1) % self.channels.len());
                        }
                        // Once per call: a token that keeps being refused is the answer.
                        Err(status)
                            if status.message() == INVALID_TOKEN
                                && self.credentials.is_some()
                                && !refreshed =>
                        {
                            refreshed = true;
                            self.refresh_token(self.channels[i].clone()).await?;
                        }
                        Err(status) => return Err(Failure::status(status)),
                    }
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Failure::deadline()),
        }
    }
}

/// A call that never reached a server (refused, reset, dial timeout, a TLS handshake the
/// server refused): worth another endpoint. A status made by the client's transport carries
/// its cause; one decoded from a server's reply does not, and a server's own `Unavailable`
/// errors carry etcd's messages: those are final.
fn unreachable(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
        || (status.code() == Code::Unavailable && !status.message().starts_with("etcdserver:"))
}

/// etcdctl takes `host:port` as well as URLs; without a scheme an endpoint is plain
/// HTTP/2 unless TLS flags are given.
pub(crate) fn channel(endpoint: &str, settings: &Settings) -> Result<Channel, Failure> {
    let (secure, authority) = match endpoint.split_once("://") {
        Some(("https" | "unixs", rest)) => (true, rest),
        Some(("http" | "unix", rest)) => (settings.tls.is_some(), rest),
        Some(_) => return Err(Failure::other(format!("unknown scheme in {endpoint}"))),
        None => (settings.tls.is_some(), endpoint),
    };
    let authority = authority.trim_end_matches('/');
    // tonic always sees plain http: TLS, when wanted, is done by our own connector.
    let uri = format!("http://{authority}");
    let builder = Endpoint::from_shared(uri)
        .map_err(|e| Failure::other(format!("bad endpoint {endpoint}: {e}")))?
        .connect_timeout(settings.dial_timeout)
        // etcdctl's --keepalive-time/--keepalive-timeout: a dead server is noticed on an idle
        // connection (a watch) too. etcd answers pings closer than its
        // --grpc-keepalive-min-time (5 s) with GOAWAY, which grpc-go's client backs off from
        // and hyper's does not: pings go no closer than that.
        .http2_keep_alive_interval(settings.keepalive_time.max(MIN_PING_INTERVAL))
        .keep_alive_timeout(settings.keepalive_timeout)
        .keep_alive_while_idle(true);
    match (secure, &settings.tls) {
        (true, Some(tls)) => Ok(builder.connect_with_connector_lazy(tls.connector(authority))),
        (true, None) => Ok(builder
            .connect_with_connector_lazy(tls::Config::default_for_https().connector(authority))),
        (false, _) => Ok(builder.connect_lazy()),
    }
}
