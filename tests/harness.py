"""Process harness for musubi's process-level tests.

Starts `musubi serve` and Debian's etcd 3.4 on free loopback ports with
temporary data dirs, waits for readiness, and kills them on teardown.

Environment:
  MUSUBI_BIN          path of the musubi binary (default: <repo>/target/release/musubi)
  MUSUBI_TEST_TARGET  "musubi" (default) or "etcd": with "etcd" every server that
                      the tests would start as musubi is a real etcd 3.4 instead.
                      That proves the harness and the tests themselves (etcd vs etcd).
  ETCD_BIN            reference etcd (default: /usr/bin/etcd)
  MUSUBI_SOAK         "1": the fault-under-load tests run for the specification's full
                      time (minutes) instead of CI's shorter one (soak_seconds)
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
ETCDCTL_BIN = os.environ.get("ETCDCTL_BIN", "/usr/bin/etcdctl")


def musubi_bin():
    return os.environ.get("MUSUBI_BIN", os.path.join(REPO, "target", "release", "musubi"))


def target_kind():
    kind = os.environ.get("MUSUBI_TEST_TARGET", "musubi")
    if kind not in ("musubi", "etcd"):
        raise ValueError("MUSUBI_TEST_TARGET must be musubi or etcd, not %r" % kind)
    return kind


def soak_seconds(ci, soak):
    """How long a fault-under-load test keeps its faults coming: `ci` seconds in the
    suite, `soak` with MUSUBI_SOAK=1 (the same checks, more chances to break them)."""
    return soak if os.environ.get("MUSUBI_SOAK") == "1" else ci


def _port_slice():
    """This process's own share of 20000-31999: below Linux's ephemeral range (32768 and
    up), so no client connection's local port takes a port a test is about to give a
    server, and split between pytest-xdist's workers (`tests/run-all.sh` runs several), so
    no two workers hand out the same port."""
    first, size = 20000, 12000
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    share = size // workers
    return first + worker * share, share


_SLICE_START, _SLICE_SIZE = _port_slice()
_next_port = 0


def free_ports(n):
    """The first of `n` consecutive loopback TCP ports that are free now, taken in turn from
    this process's slice, so a port comes back only after the whole slice went round."""
    global _next_port
    for _ in range(_SLICE_SIZE):
        if _next_port + n > _SLICE_SIZE:
            _next_port = 0
        base = _SLICE_START + _next_port
        _next_port += n
        if all(_bindable(base + i) for i in range(n)):
            return base
    raise RuntimeError("no %d free ports in %d-%d" % (n, _SLICE_START, _SLICE_START + _SLICE_SIZE - 1))


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port():
    """A free loopback TCP port (see `free_ports`)."""
    return free_ports(1)


def raw_request(port, method, path, body=None, headers=None, timeout=10.0, host="127.0.0.1"):
    """One HTTP request with the path sent verbatim. Returns (status, headers dict
    with lower-case names, body bytes). Raises socket.timeout on timeout."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        h = {}
        for k, v in resp.getheaders():
            k = k.lower()
            h[k] = v if k not in h else h[k] + ", " + v
        return resp.status, h, data
    finally:
        conn.close()


def wait_for(what, check, timeout=20.0, interval=0.05):
    """Polls `check` until it returns something true, and returns that; fails the test,
    naming `what`, after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(interval)


class Server:
    """One server process (musubi or etcd) on loopback."""

    def __init__(self, kind, workdir, name="node1", data_dir=None, client_port=None,
                 peer_port=None, style="modern", binary=None, extra_args=(), env=None):
        self.kind = kind            # "musubi" or "etcd" (the program actually run)
        self.name = name
        self.workdir = workdir
        self.data_dir = data_dir or os.path.join(workdir, "%s.%s.data" % (kind, name))
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        # "modern" (etcd 3.4 flags), "legacy" (etcd 0.x flags), or "listen-only" (where to
        # listen and the data dir; the rest comes from `env`, e.g. ETCD_* lines)
        self.style = style
        self.env = env              # extra environment variables for the process
        self.binary = binary
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(workdir, "%s.%s.%d.log" % (kind, name, self.client_port))
        self._log = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.client_port

    def argv(self):
        if self.kind == "etcd":
            prog = [self.binary or ETCD_BIN]
        else:
            prog = [self.binary or musubi_bin(), "serve"]
        if self.style == "legacy":
            if self.kind == "etcd":
                raise ValueError("etcd 3.4 has no 0.x flags")
            return prog + ["-data-dir", self.data_dir, "-name", self.name,
                           "-addr", "127.0.0.1:%d" % self.client_port,
                           "-peer-addr", "127.0.0.1:%d" % self.peer_port] + self.extra_args
        c = "http://127.0.0.1:%d" % self.client_port
        p = "http://127.0.0.1:%d" % self.peer_port
        listen = ["--data-dir", self.data_dir,
                  "--listen-client-urls", c, "--advertise-client-urls", c,
                  "--listen-peer-urls", p, "--initial-advertise-peer-urls", p]
        if self.style == "listen-only":
            return prog + listen + self.extra_args
        args = prog + ["--name", self.name, "--data-dir", self.data_dir,
                       "--listen-client-urls", c, "--advertise-client-urls", c,
                       "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                       "--initial-cluster", "%s=%s" % (self.name, p),
                       "--initial-cluster-state", "new", "--enable-v2"]
        return args + self.extra_args

    def start(self, wait=True, timeout=30.0, settle=True):
        argv = self.argv()
        if not os.path.exists(argv[0]):
            raise RuntimeError("server binary %s does not exist (build it: cargo build --release -p musubi)" % argv[0])
        self._log = open(self.log_path, "ab")
        self._log.write(("\n=== start: %s\n" % " ".join(argv)).encode())
        self._log.flush()
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        if wait:
            self.wait_ready(timeout, settle)
        return self

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=30.0, settle=True):
        """Poll /version until it answers 200 with JSON, then (with `settle`) wait until
        the store index is stable (etcd writes membership entries right after start). A
        member restarted while clients write never sees a stable index: start it with
        settle=False."""
        deadline = time.time() + timeout
        last_err = None
        while time.time() < deadline:
            if not self.alive():
                raise RuntimeError("%s exited with %s before it was ready; log:\n%s"
                                   % (self.kind, self.proc.returncode, self.log_tail()))
            try:
                st, _, body = raw_request(self.client_port, "GET", "/version", timeout=1.0)
                if st == 200:
                    json.loads(body)
                    break
                last_err = "status %d" % st
            except Exception as e:  # noqa: BLE001 - anything means not ready yet
                last_err = repr(e)
            time.sleep(0.05)
        else:
            self.kill()
            raise RuntimeError("%s not ready within %.0fs (%s); log:\n%s"
                               % (self.kind, timeout, last_err, self.log_tail()))
        if settle:
            self.settle(deadline)

    def settle(self, deadline=None):
        deadline = deadline or time.time() + 10
        prev = None
        stable = 0
        while time.time() < deadline:
            try:
                st, h, _ = raw_request(self.client_port, "GET", "/v2/keys/", timeout=2.0)
                idx = h.get("x-etcd-index")
            except Exception:  # noqa: BLE001
                idx = None
            if idx is not None and idx == prev:
                stable += 1
                if stable >= 3:
                    return int(idx)
            else:
                stable = 0
            prev = idx
            time.sleep(0.1)
        raise RuntimeError("%s: store index never settled (last %r); log:\n%s"
                           % (self.kind, prev, self.log_tail()))

    def wait_published(self, size, timeout=30.0):
        """Wait until /v2/members lists `size` members, each with its client URLs (a
        member publishes them once the cluster has a leader)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                st, _, body = raw_request(self.client_port, "GET", "/v2/members", timeout=2.0)
                listed = json.loads(body)["members"] if st == 200 else []
                if len(listed) == size and all(m["clientURLs"] for m in listed):
                    return listed
            except Exception:  # noqa: BLE001 - not yet
                pass
            time.sleep(0.1)
        raise RuntimeError("%s: members never all published their client URLs; log:\n%s"
                           % (self.kind, self.log_tail()))

    def index(self):
        _, h, _ = raw_request(self.client_port, "GET", "/v2/keys/")
        return int(h["x-etcd-index"])

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        return raw_request(self.client_port, method, path, body, headers, timeout)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def kill(self):
        """kill -9, no chance to flush anything."""
        self.stop(sig=signal.SIGKILL)

    def restart(self, wait=True):
        self.stop()
        return self.start(wait=wait)


class Fleet:
    """Owns every server a test starts; tears all of them down."""

    def __init__(self, workdir=None):
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="musubi-test-")
        self.servers = []

    def spawn(self, kind, **kw):
        s = Server(kind, self.workdir, **kw)
        self.servers.append(s)
        return s

    def target(self, **kw):
        """The server under test: musubi, or etcd when MUSUBI_TEST_TARGET=etcd."""
        kind = target_kind()
        if kind == "etcd":
            kw.pop("style", None)
        return self.spawn(kind, **kw)

    def etcd(self, **kw):
        return self.spawn("etcd", **kw)

    def cluster(self, size, kind=None, names=None, extra_args=()):
        """`size` members of one static cluster (`--initial-cluster` naming all), started
        together and ready. `kind` defaults to the target (musubi, or etcd)."""
        kind = kind or target_kind()
        names = names or ["n%d" % (i + 1) for i in range(size)]
        peers = [free_port() for _ in names]
        initial = ",".join("%s=http://127.0.0.1:%d" % (n, p) for n, p in zip(names, peers))
        members = [self.spawn(kind, name=n, peer_port=p,
                              extra_args=["--initial-cluster", initial] + list(extra_args))
                   for n, p in zip(names, peers)]
        return self.start_together(members)

    @staticmethod
    def start_together(members):
        """Starts the members of one cluster at once (none is ready alone) and returns
        them once all serve and have published their client URLs."""
        for m in members:
            m.start(wait=False)
        for m in members:
            m.wait_ready()
        members[0].wait_published(len(members))
        return members


    def close(self, keep_logs_on_failure=False):
        for s in self.servers:
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                pass
        if self._own_dir and not keep_logs_on_failure:
            shutil.rmtree(self.workdir, ignore_errors=True)
