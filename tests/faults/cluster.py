"""Clusters of real musubi or etcd 3.4 members for the fault-injection runs.

Members run on loopback (free ports on 127.0.0.1) or, with `netns=True` (root, `ip netns`
and nft), each in its own network namespace on a bridge with a real address 10.77.X.i,
exactly as tests/netns.py builds them (its Network, sweep and availability probe are
reused). Each member keeps one log file (stdout and stderr of every incarnation, with a
marker line at each start and at each fault the nemesis injects).

The program is copied into the run's work dir under a name of its own, `faults-member`:
another engineer's rebuild of target/release/musubi cannot swap the binary under a
running cluster, and `pkill musubi` run by someone else on the machine does not hit it.
"""

import calendar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness
import netns

# etcd's defaults, which musubi shares
TIMING = ["--heartbeat-interval", "100", "--election-timeout", "1000"]
ELECTION_TIMEOUT = 1.0
NOISE = netns.NOISE


def target_kind():
    return harness.target_kind()


def target_binary(kind):
    return harness.ETCD_BIN if kind == "etcd" else harness.musubi_bin()


def netns_unavailable():
    """None if members can each get a namespace here; else why not."""
    return netns.why_unavailable()


def http(host, port, method, path, body=None, timeout=3.0, headers=None):
    """(status, headers, parsed JSON or raw bytes). Raises OSError subclasses."""
    st, h, data = harness.raw_request(port, method, path, body, headers, timeout, host)
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data
    return st, h, parsed


class Node:
    """One member: a slot (name, addresses) that may be killed, restarted, paused,
    removed from the cluster and added back (with a fresh data dir)."""

    def __init__(self, cluster, slot, client_host, client_port, peer_host, peer_port, ns=None):
        self.cluster = cluster
        self.slot = slot
        self.name = "n%d" % slot
        self.client_host = client_host
        self.client_port = client_port
        self.peer_host = peer_host
        self.peer_port = peer_port
        self.ns = ns
        self.incarnation = 0
        self.data_dir = os.path.join(cluster.workdir, "%s.data.%d" % (self.name, self.incarnation))
        self.log_path = os.path.join(cluster.workdir, "%s.log" % self.name)
        self.initial_cluster = None
        self.initial_state = "new"
        self.proc = None
        self.paused = False
        self.killed = False         # stopped by the test (not exited by itself)
        self.member_id = None
        self.lock = threading.Lock()

    def __repr__(self):
        return self.name

    @property
    def client_url(self):
        return "http://%s:%d" % (self.client_host, self.client_port)

    @property
    def peer_url(self):
        return "http://%s:%d" % (self.peer_host, self.peer_port)

    def argv(self):
        prog = [self.cluster.binary] + (["serve"] if self.cluster.kind == "musubi" else [])
        args = prog + ["--name", self.name, "--data-dir", self.data_dir,
                       "--listen-client-urls", self.client_url,
                       "--advertise-client-urls", self.client_url,
                       "--listen-peer-urls", self.peer_url,
                       "--initial-advertise-peer-urls", self.peer_url,
                       "--initial-cluster", self.initial_cluster,
                       "--initial-cluster-state", self.initial_state,
                       "--enable-v2"] + self.cluster.timing
        if self.ns:
            args = ["ip", "netns", "exec", self.ns] + args
        return args

    def mark(self, text):
        """Appends a marker line to this member's log (the member writes to it too; both
        append, so lines do not tear)."""
        line = "=== [faults %s t=%.3f] %s\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), self.cluster.now(), text)
        with open(self.log_path, "a") as f:
            f.write(line)

    def start(self):
        with self.lock:
            if self.alive():
                return self
            self.mark("start: %s" % " ".join(self.argv()))
            log = open(self.log_path, "ab")
            try:
                # `ip netns exec` execs the program, so this pid is the member's own.
                self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            finally:
                log.close()
            self.paused = False
            self.killed = False
            return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        """kill -9."""
        with self.lock:
            if self.proc is None:
                return
            self.killed = True
            self.signal(signal.SIGKILL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self.paused = False

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.paused = False

    def fresh_data_dir(self):
        """A new, empty data dir for the next start (after a removal)."""
        self.incarnation += 1
        self.data_dir = os.path.join(self.cluster.workdir, "%s.data.%d" % (self.name, self.incarnation))

    def request(self, method, path, body=None, timeout=3.0, headers=None):
        return http(self.client_host, self.client_port, method, path, body, timeout, headers)

    def serving(self):
        try:
            return self.request("GET", "/version", timeout=1.0)[0] == 200
        except OSError:
            return False

    def stats(self, timeout=1.0):
        st, _, body = self.request("GET", "/v2/stats/self", timeout=timeout)
        return body if st == 200 and isinstance(body, dict) else None

    def crashed(self):
        """Exited by itself (not killed by the test): the exit code, else None."""
        if self.proc is None or self.killed:
            return None
        return self.proc.poll()

    def process_state(self):
        if self.proc is None:
            return "never started"
        rc = self.proc.poll()
        if rc is None:
            return "paused" if self.paused else "running"
        return "exited with %d" % rc


class Cluster:
    """`size` members of `kind` (musubi or etcd), on loopback or in namespaces."""

    def __init__(self, kind, size, use_netns=False, workdir=None, timing=None, t0=None):
        self.kind = kind
        self.size = size
        self.use_netns = use_netns
        self.own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="faults-%s-" % kind)
        self.timing = list(TIMING if timing is None else timing)
        self.t0 = t0 if t0 is not None else time.monotonic_ns()
        self.wall0 = time.time() - (time.monotonic_ns() - self.t0) / 1e9
        self.net = None
        self.nodes = []
        self.binary = None

    def now(self):
        """Seconds since the run's start (the clock of every op and event)."""
        return (time.monotonic_ns() - self.t0) / 1e9

    def _private_binary(self):
        src = target_binary(self.kind)
        if not os.path.exists(src):
            raise RuntimeError("%s does not exist (build it: cargo build --release -p musubi; "
                               "etcd: apt-get install etcd-server)" % src)
        dst = os.path.join(self.workdir, "faults-member")
        shutil.copy2(src, dst)
        return dst

    def start(self, timeout=60.0):
        self.binary = self._private_binary()
        if self.use_netns:
            netns.sweep_leftovers()
            self.net = netns.Network(self.size).build()
            for i in range(1, self.size + 1):
                ip = self.net.ip(i)
                self.nodes.append(Node(self, i, ip, netns.CLIENT_PORT, ip, netns.PEER_PORT,
                                       ns=self.net.ns(i)))
        else:
            for i in range(1, self.size + 1):
                self.nodes.append(Node(self, i, "127.0.0.1", harness.free_port(),
                                       "127.0.0.1", harness.free_port()))
        spec = ",".join("%s=%s" % (n.name, n.peer_url) for n in self.nodes)
        for n in self.nodes:
            n.initial_cluster = spec
            n.initial_state = "new"
            n.start()
        deadline = time.time() + timeout
        for n in self.nodes:
            while not n.serving():
                if not n.alive():
                    raise RuntimeError("%s exited at start (%s):\n%s" % (n, n.process_state(),
                                                                         self.log_tail(n, 30)))
                if time.time() > deadline:
                    raise RuntimeError("%s does not serve /version:\n%s" % (n, self.log_tail(n, 30)))
                time.sleep(0.05)
        self.wait_leader(timeout=max(5.0, deadline - time.time()))
        self.refresh_ids()
        return self

    def close(self, keep=False):
        for n in self.nodes:
            try:
                if n.paused:
                    n.resume()
                n.kill()
            except Exception:  # noqa: BLE001 - tear down the rest regardless
                pass
        if self.net is not None:
            try:
                self.net.destroy()
            except Exception:  # noqa: BLE001
                pass
            self.net = None
        if self.own_dir and not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.binary:
            try:
                os.unlink(self.binary)     # a copy of $MUSUBI_BIN / etcd; logs and data stay
            except OSError:
                pass

    # -- observing ---------------------------------------------------------------------

    def live(self):
        return [n for n in self.nodes if n.alive() and not n.paused]

    def leader(self):
        """The member that says StateLeader and that a majority of those answering names
        as leader, or None."""
        stats = {}
        for n in self.live():
            try:
                s = n.stats(timeout=0.5)
            except OSError:
                s = None
            if s:
                stats[n] = s
        leaders = [n for n, s in stats.items() if s.get("state") == "StateLeader"]
        for n in leaders:
            lid = stats[n].get("id")
            agree = sum(1 for s in stats.values() if s.get("leaderInfo", {}).get("leader") == lid)
            if agree * 2 > len(self.nodes):
                return n
        return None

    def wait_leader(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            n = self.leader()
            if n is not None:
                return n
            time.sleep(0.1)
        raise RuntimeError("no leader within %.0fs; logs:\n%s" % (timeout, self.logs(20)))

    def members(self, via=None):
        """GET /v2/members through `via` (default: any live member): [{id, name, peerURLs,
        clientURLs}], or None."""
        for n in ([via] if via else self.live()):
            try:
                st, _, body = n.request("GET", "/v2/members", timeout=2.0)
            except OSError:
                continue
            if st == 200 and isinstance(body, dict):
                return body.get("members", [])
        return None

    def refresh_ids(self):
        listed = self.members() or []
        by_peer = {u: m["id"] for m in listed for u in m.get("peerURLs", [])}
        for n in self.nodes:
            n.member_id = by_peer.get(n.peer_url)
        return listed

    # -- faults ------------------------------------------------------------------------

    def mark_all(self, text):
        for n in self.nodes:
            try:
                n.mark(text)
            except OSError:
                pass

    def partition(self, groups):
        """Cuts traffic between the groups (lists of nodes); the test's own address (the
        bridge) still reaches everyone. Needs netns."""
        for g in groups:
            others = [o for h in groups if h is not g for o in h]
            for n in g:
                self._drop(n, [o.peer_host for o in others], "both")

    def drop_one_way(self, node, direction):
        """`node` drops packets from (direction "in") or to ("out") every other member."""
        self._drop(node, [o.peer_host for o in self.nodes if o is not node], direction)

    def isolate(self, node):
        """Drops every packet but the test's own (tests/netns.py's packet drop)."""
        self.net.drop_packets(node.slot)

    def link_down(self, node):
        self.net.link_down(node.slot)

    def _drop(self, node, addrs, direction):
        if not addrs:
            return
        s = "{ %s }" % ", ".join(addrs)
        rules = ["table inet faults {"]
        if direction in ("in", "both"):
            rules.append("  chain in { type filter hook input priority 0; policy accept; "
                         "ip saddr %s drop; }" % s)
        if direction in ("out", "both"):
            rules.append("  chain out { type filter hook output priority 0; policy accept; "
                         "ip daddr %s drop; }" % s)
        rules.append("}")
        subprocess.run(["ip", "netns", "exec", node.ns, "nft", "-f", "-"], input="\n".join(rules),
                       text=True, check=True, capture_output=True)

    def heal_network(self):
        if self.net is None:
            return
        for n in self.nodes:
            self.net.heal(n.slot)
            netns.sh("ip", "netns", "exec", n.ns, "nft", "delete", "table", "inet", "faults",
                     check=False)

    # -- logs --------------------------------------------------------------------------

    def log_tail(self, node, lines=40):
        try:
            with open(node.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        kept = [l for l in text.splitlines() if not NOISE.search(l)]
        return "\n".join(kept[-lines:])

    def logs(self, lines=40):
        return "".join("\n--- log of %s, %s (tail; whole log in %s) ---\n%s\n"
                       % (n, n.process_state(), n.log_path, self.log_tail(n, lines))
                       for n in self.nodes)

    def log_window(self, node, lo, hi, limit=60):
        """The lines of `node`'s log written between run times lo and hi (seconds; by the
        timestamp the line carries, or by the nemesis marker lines), noise left out."""
        try:
            with open(node.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        out = []
        current = None
        for line in text.splitlines():
            t = self.line_time(line)
            if t is not None:
                current = t
            if current is not None and lo <= current <= hi and not NOISE.search(line):
                out.append(line)
        if len(out) > limit:
            out = out[:limit // 3] + ["    ... %d lines ..." % (len(out) - limit)] + out[-(limit - limit // 3):]
        return out

    _marker = re.compile(r"^=== \[faults \S+ t=([0-9.]+)\]")
    _stamp = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z)?")

    def line_time(self, line):
        m = self._marker.match(line)
        if m:
            return float(m.group(1))
        m = self._stamp.search(line[:60])
        if not m:
            return None
        y, mo, d = (int(x) for x in m.group(1).split("-"))
        tup = (y, mo, d, int(m.group(2)), int(m.group(3)), int(m.group(4)), 0, 0, -1)
        wall = calendar.timegm(tup) if m.group(6) else time.mktime(tup)
        wall += float(m.group(5) or 0)
        return wall - self.wall0


def port_open(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
