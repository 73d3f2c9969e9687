//! Test harness: start a target server on free loopback ports, run the CLIs, normalise output.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ETCD: &str = "/usr/bin/etcd";
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Which server the tests run against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    Etcd,
    Musubi,
}

impl Target {
    fn from_env() -> Target {
        match std::env::var("MUSUBI_TEST_TARGET").as_deref() {
            Ok("etcd") => Target::Etcd,
            Ok("musubi") | Err(_) => Target::Musubi,
            Ok(other) => panic!("MUSUBI_TEST_TARGET must be etcd or musubi, not {other:?}"),
        }
    }
}

/// A running server, killed on drop.
pub struct Server {
    pub url: String,
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the target server, or `None` (with a message saying why) when it cannot run here.
pub fn bootstrap() -> Option<Server> {
    let target = Target::from_env();
    if target == Target::Etcd && !Path::new(ETCD).exists() {
        eprintln!("skipped: MUSUBI_TEST_TARGET=etcd but {ETCD} is not installed");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().expect("utf-8 temp path");
    let mut cmd = match target {
        Target::Etcd => {
            let mut c = Command::new(ETCD);
            c.args(["--enable-v2", "--name", "default"])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("default={peer_url}")]);
            c
        }
        Target::Musubi => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_musubi"));
            c.arg("serve");
            c
        }
    };
    cmd.args(["--data-dir", data_dir])
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {target:?}: {e}"));
    let mut server = Server {
        url: client_url,
        port: client,
        child,
        _dir: dir,
    };
    server.wait_ready(target);
    Some(server)
}

impl Server {
    /// Wait for `/version`, then until the store index stops moving (etcd writes its
    /// membership right after start, which would shift the indexes the tests see).
    fn wait_ready(&mut self, target: Target) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(self.port, "/version").map(|(s, _)| s) != Some(200) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{target:?} exited with {status} before it was ready");
            }
            assert!(Instant::now() < deadline, "{target:?} not ready in 30s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (mut last, mut stable) = (None, 0);
        while stable < 3 {
            let index = self.index();
            stable = if Some(index) == last { stable + 1 } else { 0 };
            last = Some(index);
            assert!(
                Instant::now() < deadline,
                "{target:?}: store index never settled"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The store's `X-Etcd-Index`.
    pub fn index(&self) -> u64 {
        let (_, head) = http_get(self.port, "/v2/keys/").expect("GET /v2/keys/");
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-etcd-index:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse().ok())
            .expect("X-Etcd-Index header")
    }

    /// `musubi kv --endpoints URL ARGS`.
    pub fn kv(&self, args: &[&str]) -> Run {
        run(Command::new(env!("CARGO_BIN_EXE_musubi"))
            .args(["kv", "--endpoints", &self.url])
            .args(args))
    }

    /// `etcdctl --endpoints URL ARGS` in v2 mode, if installed.
    pub fn etcdctl(&self, args: &[&str]) -> Option<Run> {
        Path::new(ETCDCTL).exists().then(|| {
            run(Command::new(ETCDCTL)
                .env("ETCDCTL_API", "2")
                .args(["--endpoints", &self.url])
                .args(args))
        })
    }
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    /// Both streams and the exit code with prefix `p` and every number made generic, so
    /// runs on different keys (and so different indexes) compare equal.
    pub fn normalized(&self, prefix: &str) -> String {
        let text = format!(
            "{}\n--stderr--\n{}\n--exit {}",
            self.stdout, self.stderr, self.code
        );
        let mut out = String::with_capacity(text.len());
        let mut in_number = false;
        for c in text.replace(prefix, "/P").chars() {
            if c.is_ascii_digit() {
                if !in_number {
                    out.push('N');
                }
                in_number = true;
            } else {
                in_number = false;
                out.push(c);
            }
        }
        out
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.stdin(Stdio::null()).output().expect("command runs");
    Run {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code: status.code().unwrap_or(-1),
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// A minimal GET: the status and the response head.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let head = reply.split("\r\n\r\n").next()?.to_string();
    let status = head.get(9..12)?.parse().ok()?;
    Some((status, head))
}
