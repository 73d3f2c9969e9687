"""Clusters whose members each live in their own network namespace.

Every member gets a namespace, a veth pair into a shared bridge and a real (non-loopback)
address 10.77.X.<i>/24, so a partition is a real one: the member's link goes down, or its
namespace drops every packet but the test's own. The test process itself stays in the
root namespace and reaches the members through the bridge, which holds 10.77.X.254.

Names: every bridge, veth and namespace made here starts with `mu<pid in base 36>_<k>`
(`ma...` for the agent tests' networks, which also take their subnets from 10.78 rather
than 10.77, so the store's and the agent's tests can run side by side), unique per test,
so a leftover from a crashed run cannot collide with a new one, and `sweep_leftovers` can
tell by the pid whether its owner is gone.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness import musubi_bin, raw_request

CLIENT_PORT = 2379
PEER_PORT = 2380
HOST_OCTET = 254
SUBNET_LOCK = "/tmp/musubi-tests-subnets.lock"
# Short Raft timers so elections, partitions and catch-up take a second, not ten.
TIMING = ["--heartbeat-interval", "50", "--election-timeout", "500"]
OWN_NAME = re.compile(r"^m[ua]([0-9a-z]+)_\d+")
# Log lines repeated every heartbeat or election while a member is cut off.
NOISE = re.compile(r"failed to send a heartbeat|while requesting (pre-)?vote")

_created = 0


def sh(*argv, check=True):
    """Runs one command (ip, nft); a failure raises with its stderr."""
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r.stdout


def base36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


def why_unavailable():
    """None if namespaces, veth, bridges and nft can be used here; else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return "%s is not installed (tests/run-all.sh installs it)" % tool
    probe = "mu%s_probe" % base36(os.getpid())
    try:
        sh("ip", "netns", "add", probe)
        sh("ip", "netns", "exec", probe, "nft", "list", "ruleset")
    except RuntimeError as e:
        return "ip netns / nft unusable: %s" % e
    finally:
        sh("ip", "netns", "del", probe, check=False)
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _owner_gone(name):
    m = OWN_NAME.match(name)
    return bool(m) and not _pid_alive(int(m.group(1), 36))


def sweep_leftovers():
    """Removes namespaces and links that a crashed earlier run left behind (their owner
    pid is dead), killing whatever still runs inside those namespaces."""
    for line in sh("ip", "netns", "list", check=False).splitlines():
        ns = line.split()[0] if line.split() else ""
        if _owner_gone(ns):
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
    for line in sh("ip", "-o", "link", "show", check=False).splitlines():
        parts = line.split(":")
        name = parts[1].strip().split("@")[0] if len(parts) > 1 else ""
        if _owner_gone(name):
            sh("ip", "link", "del", name, check=False)


def _free_subnet(base="10.77"):
    """The first <base>.X (X from 0) that no interface of this machine uses."""
    used = sh("ip", "-4", "-o", "addr", "show")
    for x in range(256):
        if " %s.%d." % (base, x) not in used:
            return "%s.%d" % (base, x)
    raise RuntimeError("every %s.X.0/24 is in use" % base)


class Network:
    """A bridge and `size` namespaces, each joined to it by a veth pair."""

    def __init__(self, size, prefix="mu", subnet_base="10.77"):
        global _created
        _created += 1
        self.size = size
        self.tag = "%s%s_%d" % (prefix, base36(os.getpid()), _created)
        self.bridge = self.tag
        self.subnet_base = subnet_base
        self.subnet = None

    def ns(self, i):
        return "%sn%d" % (self.tag, i)

    def veth(self, i):
        """The host (bridge) end of member i's veth pair; the namespace end is eth0."""
        return "%sv%d" % (self.tag, i)

    def ip(self, i):
        return "%s.%d" % (self.subnet, i)

    @property
    def host_ip(self):
        return self.ip(HOST_OCTET)

    def build(self):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        # Choosing a subnet and taking it is one step under a machine-wide lock: the
        # suite's workers (pytest-xdist) build networks at the same time.
        with open(SUBNET_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.subnet = _free_subnet(self.subnet_base)
            sh("ip", "addr", "add", "%s/24" % self.host_ip, "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i in range(1, self.size + 1):
            self._add_namespace(i)
        return self

    def _add_namespace(self, i):
        ns = self.ns(i)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", self.veth(i), "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", self.veth(i), "master", self.bridge, "up")
        sh("ip", "-n", ns, "addr", "add", "%s/24" % self.ip(i), "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    # Two kinds of partition. A link down is a pulled cable: the member reaches nobody,
    # not even the test. A packet drop is a firewall inside the member's namespace that
    # lets only the test's own address through, so the test can still watch the member.

    def link_down(self, i):
        sh("ip", "link", "set", self.veth(i), "down")

    def link_up(self, i):
        sh("ip", "link", "set", self.veth(i), "up")

    def drop_packets(self, i):
        rules = """
table inet partition {
  chain in  { type filter hook input  priority 0; policy drop; iif "lo" accept; ip saddr %(h)s accept; }
  chain out { type filter hook output priority 0; policy drop; oif "lo" accept; ip daddr %(h)s accept; }
}
""" % {"h": self.host_ip}
        subprocess.run(["ip", "netns", "exec", self.ns(i), "nft", "-f", "-"], input=rules,
                       text=True, check=True, capture_output=True)

    def stop_dropping(self, i):
        sh("ip", "netns", "exec", self.ns(i), "nft", "delete", "table", "inet", "partition", check=False)

    def cut(self, i, how):
        {"link-down": self.link_down, "packet-drop": self.drop_packets}[how](i)

    def heal(self, i):
        """Undoes either kind of partition (each undo is harmless if it was not applied)."""
        self.link_up(i)
        self.stop_dropping(i)

    def destroy(self):
        """Kills whatever still runs in the namespaces, then removes them and the links."""
        for i in range(1, self.size + 1):
            for pid in sh("ip", "netns", "pids", self.ns(i), check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", self.ns(i), check=False)
            sh("ip", "link", "del", self.veth(i), check=False)
        sh("ip", "link", "del", self.bridge, check=False)


def wait_until(what, probe, timeout=20.0, interval=0.05):
    """Polls `probe` until it returns something truthy, and returns that; fails the test
    with `what` (and the last value seen) at the deadline. Exceptions count as not yet."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - a member mid-election or unreachable
            last = repr(e)
        if time.time() >= deadline:
            raise AssertionError("timed out after %.0fs waiting until %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)


def acked(status):
    return 200 <= status < 300


class Member:
    """One `musubi serve` running inside namespace i of `net`."""

    def __init__(self, net, i, workdir, initial_cluster, binary):
        self.binary = binary
        self.net = net
        self.index = i
        self.name = "n%d" % i
        self.ip = net.ip(i)
        self.data_dir = os.path.join(workdir, self.name + ".data")
        self.log_path = os.path.join(workdir, self.name + ".log")
        self.initial_cluster = initial_cluster
        self.proc = None

    def __repr__(self):
        return "%s(%s)" % (self.name, self.ip)

    def argv(self):
        client = "http://%s:%d" % (self.ip, CLIENT_PORT)
        peer = "http://%s:%d" % (self.ip, PEER_PORT)
        return ["ip", "netns", "exec", self.net.ns(self.index), self.binary, "serve",
                "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-state", "new"] + TIMING

    def start(self):
        """Starts the process; a restart reuses the data dir (the flags then only name it)."""
        with open(self.log_path, "ab") as log:
            log.write(("\n=== start: %s\n" % " ".join(self.argv())).encode())
            log.flush()
            # `ip netns exec` execs musubi itself, so this pid is musubi's.
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_serving(self, timeout=20.0):
        def serving():
            assert self.alive(), "%s exited with %s" % (self, self.proc.returncode)
            return self.request("GET", "/version", timeout=1.0)[0] == 200
        wait_until("%s serves /version" % self, serving, timeout)

    def process_state(self):
        if self.proc is None:
            return "never started"
        rc = self.proc.poll()
        return "running" if rc is None else "exited with %d" % rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9: no chance to flush or say goodbye."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def log_tail(self, lines=40):
        """The last lines of the log, without the per-heartbeat warnings a partition
        floods it with (they would push everything else out of the tail)."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        kept = [l for l in text.splitlines() if not NOISE.search(l)]
        return "\n".join(kept[-lines:])

    def request(self, method, path, body=None, timeout=3.0):
        return raw_request(CLIENT_PORT, method, path, body, timeout=timeout, host=self.ip)

    def put(self, key, value, timeout=5.0):
        """(status, body) of one PUT /v2/keys/<key>."""
        st, _, body = self.request("PUT", "/v2/keys/" + key, "value=" + value, timeout)
        return st, body

    def value(self, key):
        """The value of `key` as this member serves it locally, or None."""
        st, _, body = self.request("GET", "/v2/keys/" + key)
        return json.loads(body)["node"].get("value") if st == 200 else None

    def stats(self):
        st, _, body = self.request("GET", "/v2/stats/self", timeout=1.0)
        assert st == 200, (st, body)
        return json.loads(body)

    def raft_position(self):
        """(X-Etcd-Index, X-Raft-Index, X-Raft-Term) of a local read."""
        _, h, _ = self.request("GET", "/v2/keys/", timeout=1.0)
        return int(h["x-etcd-index"]), int(h["x-raft-index"]), int(h["x-raft-term"])

    def term(self):
        return self.raft_position()[2]

    def keyspace_digest(self):
        """A hash of the whole node tree (values and indexes) as this member serves it."""
        st, _, body = self.request("GET", "/v2/keys/?recursive=true&sorted=true", timeout=5.0)
        assert st == 200, (st, body)
        tree = json.loads(body)["node"]
        return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


class Cluster:
    """`size` members on one Network, each with its own data dir and log."""

    def __init__(self, size):
        self.net = Network(size)
        self.workdir = tempfile.mkdtemp(prefix="netns-cluster-")
        self.binary = self._private_binary_name()
        self.members = []

    def _private_binary_name(self):
        """A symlink to musubi under a name of its own: other people on this machine stop
        their own servers with `pkill musubi` and the like, which took down whole clusters
        mid-test (every member logged "shutting down" at the same instant)."""
        link = os.path.join(self.workdir, "netns-member")
        os.symlink(os.path.abspath(musubi_bin()), link)
        return link

    def start(self):
        sweep_leftovers()
        self.net.build()
        spec = ",".join("n%d=http://%s:%d" % (i, self.net.ip(i), PEER_PORT)
                        for i in range(1, self.net.size + 1))
        self.members = [Member(self.net, i, self.workdir, spec, self.binary)
                        for i in range(1, self.net.size + 1)]
        for m in self.members:
            m.start()
        for m in self.members:
            m.wait_serving()
        return self

    def close(self, keep_logs=False):
        for m in self.members:
            try:
                m.kill()
            except Exception:  # noqa: BLE001 - tear down the rest regardless
                pass
        self.net.destroy()
        if not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self):
        return "".join("\n--- log of %s, %s (tail; whole log in %s) ---\n%s\n"
                       % (m, m.process_state(), m.log_path, m.log_tail()) for m in self.members)

    def others(self, *excluded):
        return [m for m in self.members if m not in excluded]

    def leader(self, among=None, timeout=20.0):
        """The member that `among` (default: all) agree leads: it says StateLeader and every
        one of them names it in leaderInfo. Waits for an election if there is none."""
        among = among or self.members

        def agreed():
            stats = {m: m.stats() for m in among}
            named = {s.get("leaderInfo", {}).get("leader") for s in stats.values()}
            leaders = [m for m, s in stats.items() if s["state"] == "StateLeader"]
            if len(named) == 1 and len(leaders) == 1 and stats[leaders[0]]["id"] in named:
                return leaders[0]
            return None
        return wait_until("%s agree on one leader" % among, agreed, timeout)

    def put_acked(self, members, key, value, timeout=15.0):
        """Writes key=value through `members` in turn until one acknowledges it (a write
        may be refused while an election is under way). PUT of the same value twice is
        harmless, so retrying cannot corrupt what the test checks."""
        members = list(members)
        attempts = [0]

        def one_try():
            m = members[attempts[0] % len(members)]
            attempts[0] += 1
            st, body = m.put(key, value)
            assert acked(st), "%s answered %d %s" % (m, st, body[:300])
            return True
        wait_until("a write of %s is acknowledged by one of %s" % (key, members), one_try, timeout)

    def converged(self, members=None, timeout=20.0):
        """Waits until `members` (default: all) report the same X-Etcd-Index, X-Raft-Index
        and keyspace digest; returns the digest."""
        members = members or self.members

        def same_state():
            seen = {(m.raft_position()[:2], m.keyspace_digest()) for m in members}
            return len(seen) == 1 and next(iter(seen))[1]
        return wait_until("%s converge on one state" % members, same_state, timeout)
