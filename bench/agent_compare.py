#!/usr/bin/env python3
"""Side-by-side gossip benchmark: CLUSTER agents of musubi and of Debian's `serf agent`
on loopback, same default (LAN) profile, measured the same way. Prints a markdown
section (see bench/agent-compare.sh, which appends it to docs/benchmarks.md).

Per round and side, a fresh cluster (every agent joins the first) is measured for:
  idle bandwidth    gossip bytes per member per second over IDLE_SECONDS of quiet;
  loaded bandwidth  the same while one `serf event` a second (PAYLOAD bytes) goes out;
  dissemination     `serf event -coalesce=false probe` from one agent until the last
                    agent's handler has run (handler timestamps), EVENTS times;
  failure detection kill -9 of one agent until every other one (a) lists it as failed
                    over RPC (`members`, polled every POLL seconds) and (b) has run its
                    member-failed handler. Serf's agent coalesces member events (3 s
                    period, 1 s quiescence) before handlers see them, so (b) includes that
                    deliberate delay on Serf's side; (a) is the membership view alone.
Bytes are real ones: an nftables table counts, on the loopback output hook, every UDP
datagram to the cluster's gossip ports and every TCP segment to or from them (Serf's
push-pull state sync runs over TCP), IP headers included. RPC ports are outside the
range, so the benchmark's own polling is not counted.

Needs root (nft) and both binaries. Environment: MUSUBI_BIN, SERF_BIN, CLUSTER (20),
ROUNDS (3), IDLE_SECONDS (20), EVENTS (5), PAYLOAD (100), POLL (0.05).
"""

import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

import msgpack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUSUBI_BIN = os.environ.get("MUSUBI_BIN", os.path.join(ROOT, "target/release/musubi"))
SERF_BIN = os.environ.get("SERF_BIN", "/usr/bin/serf")
CLUSTER = int(os.environ.get("CLUSTER", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
IDLE_SECONDS = float(os.environ.get("IDLE_SECONDS", "20"))
EVENTS = int(os.environ.get("EVENTS", "5"))
PAYLOAD = int(os.environ.get("PAYLOAD", "100"))
POLL = float(os.environ.get("POLL", "0.05"))
# An event not handled everywhere this long after it was sent counts as lost.
DELIVERY_PATIENCE = 15.0
# Gossip ports: a block per side, away from Serf's defaults and from ephemeral ports.
GOSSIP_BASE = {"musubi": 17000, "serf": 18000}
RPC_BASE = {"musubi": 19000, "serf": 20000}
NFT_TABLE = "musubi_agent_bench"

STAMP_HANDLER = """#!/bin/sh
# one line per event: wall-clock time, event type, user event name
t=$(date +%s.%N)
cat >/dev/null
echo "$t $SERF_EVENT $SERF_USER_EVENT" >> "$1"
"""


class RpcClient:
    """Serf's RPC protocol, just enough to poll `members`."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.seq = 0
        self.call("handshake", {"Version": 1}, body=False)

    def _read(self):
        while True:
            for obj in self.unpacker:
                return obj
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("RPC connection closed")
            self.unpacker.feed(data)

    def call(self, command, args=None, body=True):
        self.seq += 1
        out = msgpack.packb({"Command": command, "Seq": self.seq})
        if args is not None:
            out += msgpack.packb(args)
        self.sock.sendall(out)
        header = self._read()
        if header.get("Error"):
            raise RuntimeError("%s: %s" % (command, header["Error"]))
        return self._read() if body else None

    def statuses(self):
        return {m["Name"]: m["Status"] for m in self.call("members")["Members"]}

    def close(self):
        self.sock.close()


class Agent:
    def __init__(self, side, i, workdir):
        self.side = side
        self.name = "%s%02d" % (side, i)
        self.gossip_port = GOSSIP_BASE[side] + i
        self.rpc_port = RPC_BASE[side] + i
        self.stamps = os.path.join(workdir, self.name + ".stamps")
        self.log = os.path.join(workdir, self.name + ".log")
        self.handler = "member-failed,user:probe=%s %s" % (
            os.path.join(os.path.dirname(workdir), "stamp.sh"), self.stamps)
        self.proc = None
        self.rpc = None

    @property
    def gossip_addr(self):
        return "127.0.0.1:%d" % self.gossip_port

    def start(self, join=None):
        binary = SERF_BIN if self.side == "serf" else MUSUBI_BIN
        argv = [binary, "agent", "-node", self.name, "-bind", self.gossip_addr,
                "-rpc-addr", "127.0.0.1:%d" % self.rpc_port, "-event-handler", self.handler]
        if join:
            argv += ["-join", join]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def connect(self, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                self.rpc = RpcClient(self.rpc_port)
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("%s never answered RPC; see %s" % (self.name, self.log))
                time.sleep(0.1)

    def cli(self, *args):
        return subprocess.run([SERF_BIN, args[0], "-rpc-addr=127.0.0.1:%d" % self.rpc_port,
                               *args[1:]], capture_output=True, text=True, timeout=30)

    def stamps_of(self, what):
        """Times at which this agent's handler ran for `what` ("member-failed" or a user
        event name)."""
        try:
            with open(self.stamps) as f:
                lines = [line.split() for line in f]
        except FileNotFoundError:
            return []
        return [float(p[0]) for p in lines
                if p[1] == what or (p[1] == "user" and len(p) > 2 and p[2] == what)]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.rpc:
            self.rpc.close()
            self.rpc = None


def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)


def counters_install(side):
    lo, hi = GOSSIP_BASE[side], GOSSIP_BASE[side] + CLUSTER - 1
    nft("""
table inet %(t)s {
  chain out {
    type filter hook output priority 0; policy accept;
    oif "lo" udp dport %(lo)d-%(hi)d counter
    oif "lo" tcp dport %(lo)d-%(hi)d counter
    oif "lo" tcp sport %(lo)d-%(hi)d counter
  }
}
""" % {"t": NFT_TABLE, "lo": lo, "hi": hi})


def counters_bytes():
    out = subprocess.run(["nft", "list", "table", "inet", NFT_TABLE], capture_output=True,
                         text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        if "counter packets" in line:
            total += int(line.split("bytes")[1].split()[0])
    return total


def counters_remove():
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True)


def wait_until(what, probe, timeout):
    deadline = time.time() + timeout
    while not probe():
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(POLL)


def everyone_alive(agents):
    names = {a.name for a in agents}
    for a in agents:
        st = a.rpc.statuses()
        if {n for n, s in st.items() if s == "alive"} != names:
            return False
    return True


def bandwidth(agents, seconds, load):
    """Gossip bytes per member per second over `seconds`, sending one event a second when
    `load` (from a different agent each time)."""
    start_bytes, start = counters_bytes(), time.time()
    n = 0
    while time.time() - start < seconds:
        if load:
            agents[n % len(agents)].cli("event", "-coalesce=false", "load", "x" * PAYLOAD)
            n += 1
        time.sleep(max(0.0, start + n - time.time()) if load else seconds)
    elapsed = time.time() - start
    return (counters_bytes() - start_bytes) / len(agents) / elapsed


def dissemination(agents, k):
    """Seconds until every agent's probe handler ran, or None if some agent had not run
    it DELIVERY_PATIENCE seconds later; and the agents that had not."""
    sender = agents[k % len(agents)]
    before = {a.name: len(a.stamps_of("probe")) for a in agents}
    sent = time.time()
    out = sender.cli("event", "-coalesce=false", "probe", "p%d" % k)
    assert out.returncode == 0, out.stdout + out.stderr
    missing = lambda: [a for a in agents if len(a.stamps_of("probe")) <= before[a.name]]
    deadline = sent + DELIVERY_PATIENCE
    while missing() and time.time() < deadline:
        time.sleep(POLL)
    missed = missing()
    if missed:
        return None, [a.name for a in missed]
    return max(a.stamps_of("probe")[-1] for a in agents) - sent, []


def detection(agents):
    victim = random.choice(agents[1:])
    others = [a for a in agents if a is not victim]
    victim.kill()
    killed = time.time()
    seen = {}
    deadline = killed + 120
    while len(seen) < len(others):
        for a in others:
            if a.name not in seen and a.rpc.statuses().get(victim.name) == "failed":
                seen[a.name] = time.time()
        if time.time() > deadline:
            raise RuntimeError("not every agent saw %s failed" % victim.name)
        time.sleep(POLL)
    view = max(seen.values()) - killed
    wait_until("every member-failed handler", lambda: all(a.stamps_of("member-failed")
                                                          for a in others), 60)
    handler = max(min(a.stamps_of("member-failed")) for a in others) - killed
    return view, handler


def one_round(side, workdir):
    """A fresh cluster in a fresh directory (handler stamps are per round)."""
    workdir = tempfile.mkdtemp(prefix=side + "-", dir=workdir)
    agents = [Agent(side, i, workdir) for i in range(CLUSTER)]
    try:
        agents[0].start()
        agents[0].connect()
        for a in agents[1:]:
            a.start(join=agents[0].gossip_addr)
        for a in agents[1:]:
            a.connect()
        wait_until("%d %s agents to see each other alive" % (CLUSTER, side),
                   lambda: everyone_alive(agents), 120)
        time.sleep(2)  # let the join gossip settle before measuring the idle rate
        counters_install(side)
        idle = bandwidth(agents, IDLE_SECONDS, load=False)
        loaded = bandwidth(agents, IDLE_SECONDS, load=True)
        counters_remove()
        spread = [dissemination(agents, k) for k in range(EVENTS)]
        delivered = [t for t, _ in spread if t is not None]
        for k, (_, missed) in enumerate(spread):
            if missed:
                print("  %s event %d: never handled by %s" % (side, k, ", ".join(missed)),
                      flush=True)
        view, handler = detection(agents)
        return {"idle": idle, "loaded": loaded,
                "dissemination": statistics.median(delivered) if delivered else float("nan"),
                "lost": sum(1 for t, _ in spread if t is None),
                "detect_view": view, "detect_handler": handler}
    finally:
        counters_remove()
        for a in agents:
            a.kill()


def main():
    workdir = tempfile.mkdtemp(prefix="agent-bench-")
    stamp = os.path.join(workdir, "stamp.sh")  # shared by the rounds' subdirectories
    with open(stamp, "w") as f:
        f.write(STAMP_HANDLER)
    os.chmod(stamp, 0o755)
    results = {"musubi": [], "serf": []}
    try:
        for r in range(ROUNDS):
            for side in ("musubi", "serf"):  # interleaved: both see the same machine load
                res = one_round(side, workdir)
                results[side].append(res)
                print("round %d %s: %s" % (r + 1, side, {k: round(v, 3) for k, v in res.items()}),
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results)


ROWS = [
    ("detect_view", "failure detection, RPC members view (s)", "%.2f"),
    ("detect_handler", "failure detection, member-failed handler ran (s)", "%.2f"),
    ("dissemination", "event dissemination, last handler ran (s; events handled everywhere)",
     "%.3f"),
    ("idle", "gossip bytes/member/s, idle", "%.0f"),
    ("loaded", "gossip bytes/member/s, 1 event/s of %d B" % PAYLOAD, "%.0f"),
]


def report(results):
    binary = "release" if "/release/" in MUSUBI_BIN else "debug"
    print("\n## %s — agents: %d on loopback, LAN profile, %d rounds, 2 cores\n"
          % (time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), CLUSTER, ROUNDS))
    print("Command: `bench/agent-compare.sh` (musubi %s build, Debian serf %s). Medians over"
          " the rounds; ratio = musubi / serf (below 1: musubi is faster or lighter).\n"
          % (binary, serf_version()))
    print("| measure | musubi | serf | ratio |")
    print("|---|---|---|---|")
    for key, label, fmt in ROWS:
        m = statistics.median(r[key] for r in results["musubi"])
        s = statistics.median(r[key] for r in results["serf"])
        print("| %s | %s | %s | %.2f |" % (label, fmt % m, fmt % s, m / s if s else float("nan")))
    sent = ROUNDS * EVENTS
    print("| probe events not handled by every agent within %.0f s | %d of %d | %d of %d | |"
          % (DELIVERY_PATIENCE, sum(r["lost"] for r in results["musubi"]), sent,
             sum(r["lost"] for r in results["serf"]), sent))
    print()


def serf_version():
    out = subprocess.run([SERF_BIN, "version"], capture_output=True, text=True).stdout
    return out.split()[0] if out.split() else "?"


if __name__ == "__main__":
    main()
