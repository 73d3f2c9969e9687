"""One fault-injection run: a cluster, the clients, the nemesis, then the checks.

    report = run(Config(seed=7, target="musubi", members=3, duration=60,
                        families=["kill", "pause"]))
    print(report.summary()); print(report.details)

At the end of a run everything is healed (resumed, network healed, removed members added
back, dead ones started), then every member is killed and restarted at once (a last power
cut: acknowledged writes must survive it), a leader is awaited, and:
  1. every register key is read with quorum on every member (the reads join the history)
     and the history is checked for linearizability, key by key;
  2. every acknowledged write-once key is on every member with its value, read locally
     and with quorum (and no key a refused write named, none nobody wrote);
  3. all members converge to the same keyspace (values, without indexes) and the same
     X-Etcd-Index.
A failure prints the seed, the witness, the nemesis events around it and the lines of
each member's log from that time.
"""

import json
import os
import random
import time

from cluster import Cluster, netns_unavailable  # noqa: F401 (run uses it)
from linearizability import INF, Op, check
from nemesis import Nemesis
from workload import History, Workload


class Config:
    def __init__(self, seed=None, target="musubi", members=3, duration=60.0,
                 families=("kill", "pause", "partition", "membership"), use_netns=None,
                 workers=8, key_period=5.0, timeout=2.5, final_restart=True, log=print,
                 keep_logs=False, check_time_limit=60.0):
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
        self.target = target
        self.members = members
        self.duration = duration
        self.families = list(families)
        self.use_netns = use_netns        # None: when root with ip netns, else loopback
        self.workers = workers
        self.key_period = key_period
        self.timeout = timeout
        self.final_restart = final_restart
        self.log = log
        self.keep_logs = keep_logs
        self.check_time_limit = check_time_limit

    def describe(self):
        return "seed=%d target=%s members=%d duration=%gs nemesis=%s %s" % (
            self.seed, self.target, self.members, self.duration,
            ",".join(self.families) or "none", "netns" if self.use_netns else "loopback")


class Report:
    def __init__(self, cfg):
        self.cfg = cfg
        self.counts = {"ok": 0, "fail": 0, "unknown": 0}
        self.fails = {}              # why: cas mismatch/missing (definite answers), refused, other
        self.ops = 0
        self.keys = 0
        self.undecided = []
        self.anomalies = []          # one-line descriptions
        self.details = ""            # the long failure text
        self.failovers = []          # seconds from each leader kill to the next acked write
        self.events = 0
        self.skipped = []            # nemesis families not run, and why
        self.once_acked = 0
        self.seconds = 0.0
        self.check_seconds = 0.0
        self.error = None
        self.nemesis_errors = []     # faults that could not be carried out (not findings)

    @property
    def passed(self):
        return not self.anomalies and self.error is None

    def summary(self):
        fo = ", ".join("%.2fs" % f if f is not None else "none" for f in self.failovers) or "-"
        s = ("seed=%d: %d ops (ok %d, fail %d [%s], unknown %d), %d register keys, %d write-once "
             "acked, %d nemesis events; anomalies: %d%s; failover after leader kills: %s"
             % (self.cfg.seed, self.ops, self.counts["ok"], self.counts["fail"],
                fail_text(self.fails), self.counts["unknown"], self.keys, self.once_acked, self.events,
                len(self.anomalies), " (%d keys undecided)" % len(self.undecided)
                if self.undecided else "", fo))
        if self.nemesis_errors:
            s += "; %d faults could not be carried out: %s" % (len(self.nemesis_errors),
                                                              "; ".join(self.nemesis_errors[:3]))
        if self.error:
            s += "; ERROR: " + self.error
        return s


def fail_text(fails):
    names = {"mismatch": "cas 101", "missing": "cas 100", "refused": "not sent", "other": "read error"}
    return ", ".join("%s %d" % (names[k], fails[k]) for k in names if fails.get(k))


def leaves(body):
    """{key: value} of every leaf of a v2 listing."""
    out = {}

    def walk(node):
        for child in node.get("nodes", []) or []:
            walk(child)
        if not node.get("dir") and "key" in node:
            out[node["key"].lstrip("/")] = node.get("value")
    if isinstance(body, dict) and "node" in body:
        walk(body["node"])
    return out


def strip_indexes(node):
    if isinstance(node, dict):
        return {k: strip_indexes(v) for k, v in node.items()
                if k not in ("createdIndex", "modifiedIndex", "expiration", "ttl")}
    if isinstance(node, list):
        return [strip_indexes(v) for v in node]
    return node


def run(cfg):
    """Runs one seeded run; returns its Report (never raises for a finding)."""
    if cfg.use_netns is None:
        cfg.use_netns = netns_unavailable() is None
    log = cfg.log
    rep = Report(cfg)
    if cfg.use_netns is False and "partition" in cfg.families:
        rep.skipped.append("partition (needs root and ip netns: %s)"
                           % (netns_unavailable() or "loopback run"))
    rng = random.Random(cfg.seed)
    started = time.time()
    t0 = time.monotonic_ns()
    cluster = Cluster(cfg.target, cfg.members, use_netns=cfg.use_netns, t0=t0)
    history = History(t0)
    workload = nemesis = None
    log("run %s (logs in %s)" % (cfg.describe(), cluster.workdir))
    keep = False
    try:
        cluster.start()
        log("  cluster up at %.1fs, leader %s" % (cluster.now(), cluster.leader()))
        workload = Workload(cluster, history, random.Random(rng.getrandbits(64)),
                            workers=cfg.workers, timeout=cfg.timeout, key_period=cfg.key_period)
        nemesis = Nemesis(cluster, random.Random(rng.getrandbits(64)), cfg.families, log=log)
        begin = cluster.now()
        workload.start()
        nemesis.start(until=begin + cfg.duration)
        while cluster.now() < begin + cfg.duration:
            time.sleep(0.2)
        nemesis.stop()
        workload.stop()
        if workload.errors:
            rep.error = "client errors: %s" % workload.errors[:3]
        nemesis.check_crashes()
        nemesis.record("final", "heal everything")
        nemesis.heal_all()
        if cfg.final_restart:
            nemesis.record("final", "kill -9 all members and restart them at once")
            for n in cluster.nodes:
                n.kill()
            for n in cluster.nodes:
                n.start()
            nemesis.heal_all()
        leader = cluster.wait_leader(timeout=60)
        nemesis.record("final", "leader %s; final reads and checks" % leader.name)
        final_reads(cluster, history, workload)
        check_all(cfg, cluster, history, nemesis, rep)
    except Exception as e:  # noqa: BLE001 - a broken run is reported, not raised
        import traceback
        rep.error = "%r" % e
        rep.details += "\nthe run broke: %s\n%s" % (e, traceback.format_exc())
        rep.details += cluster.logs(30)
    finally:
        if nemesis is not None:
            nemesis.stop()
        if workload is not None:
            workload.stop(join_timeout=10)
        keep = cfg.keep_logs or not rep.passed
        try:
            dump_history(history, os.path.join(cluster.workdir, "history.jsonl"))
        except OSError:
            pass
        rep.seconds = time.time() - started
        ops = history.snapshot()
        rep.ops = len(ops)
        for o in ops:
            rep.counts[o.status] += 1
            if o.status == "fail":
                why = o.output if o.output in ("mismatch", "missing", "refused") else "other"
                rep.fails[why] = rep.fails.get(why, 0) + 1
        if nemesis is not None:
            rep.nemesis_errors = list(nemesis.errors)
            rep.events = len([e for e in nemesis.events if e.kind not in ("final", "restart", "resume", "heal")])
            rep.failovers = failover_times(nemesis.leader_kills, ops, t0)
        cluster.close(keep=keep)
        if keep:
            rep.details += "\nmember logs and data kept in %s\n" % cluster.workdir
    return rep


FIELDS = ("id", "process", "key", "f", "value", "expected", "status", "output", "invoke",
          "complete", "member", "note")


def dump_history(history, path):
    """One JSON object per op (times in ns since the run's start; complete null = inf)."""
    with open(path, "w") as f:
        for o in history.snapshot():
            d = {k: getattr(o, k) for k in FIELDS}
            d["invoke"] -= history.t0
            d["complete"] = None if o.complete == INF else o.complete - history.t0
            f.write(json.dumps(d) + "\n")


def load_history(path):
    ops = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            ops.append(Op(d["key"], d["f"], value=d["value"], expected=d["expected"],
                          status=d["status"], output=d["output"], invoke=d["invoke"],
                          complete=d["complete"], process=d["process"], member=d["member"],
                          note=d["note"], id=d["id"]))
    return ops


def final_reads(cluster, history, workload):
    """A quorum read of every register key on every member; they join the history."""
    keys = sorted({o.key for o in history.snapshot() if o.key.startswith("reg/")})
    for key in keys:
        for n in cluster.nodes:
            for attempt in range(5):
                op = workload.read("final", n, key)
                if op.status == "ok":
                    break
                time.sleep(0.2)


def failover_times(kills, ops, t0):
    acked = sorted((o.invoke, o.complete) for o in ops
                   if o.f in ("write", "cas") and o.status == "ok")
    out = []
    for t in kills:
        tk = t0 + int(t * 1e9)
        after = [c for i, c in acked if i >= tk]
        out.append((min(after) - tk) / 1e9 if after else None)
    return out


def check_all(cfg, cluster, history, nemesis, rep):
    t0 = history.t0
    ops = history.snapshot()
    log = cfg.log
    # 0. members that exited by themselves
    for t, name, rc in nemesis.crashes:
        rep.anomalies.append("%s exited by itself with %d at %.3fs" % (name, rc, t))
        rep.details += report_around(cluster, nemesis, t, t, "%s exited by itself (code %d)" % (name, rc))
    # 1. linearizability, per register key
    started = time.time()
    reg = [o for o in ops if o.key.startswith("reg/")]
    result = check(reg, time_limit=cfg.check_time_limit)
    rep.check_seconds = time.time() - started
    rep.keys = len(result.keys)
    rep.undecided = [r.key for r in result.undecided()]
    log("  checked %d register keys (%d ops) in %.1fs: %s" % (
        rep.keys, len(reg), rep.check_seconds,
        "linearizable" if result.valid else "%d not linearizable, %d undecided" % (
            len(result.anomalies()), len(rep.undecided))))
    for r in result.anomalies():
        lo, hi = r.span()
        rep.anomalies.append("key %s is not linearizable (%s at %.3fs)" % (
            r.key, r.blocker.describe(), (r.blocker.invoke - t0) / 1e9))
        rep.details += report_around(cluster, nemesis, (lo - t0) / 1e9, (hi - t0) / 1e9,
                                     r.format(t0))
    for r in result.undecided():
        rep.details += "\n" + r.format(t0) + "\n"
    # 2. durability of write-once keys
    once = [o for o in ops if o.key.startswith("once/")]
    acked = {o.key: o for o in once if o.status == "ok"}
    maybe = {o.key: o for o in once if o.status == "unknown"}
    rep.once_acked = len(acked)
    for n in cluster.nodes:
        for quorum in (False, True):
            path = "/v2/keys/once?recursive=true&sorted=true" + ("&quorum=true" if quorum else "")
            st, _, body = retry_request(n, path)
            got = leaves(body) if st == 200 else {}
            if st == 404 and not acked:
                continue
            how = "%s (%s read)" % (n.name, "quorum" if quorum else "local")
            lost = sorted(k for k, o in acked.items() if got.get(k) != o.value)
            if lost:
                first = min((acked[k] for k in lost), key=lambda o: o.invoke)
                rep.anomalies.append("%s lost %d of %d acknowledged write-once keys, e.g. %s=%s "
                                     "(acked at %.3fs; the member has %r)" % (
                                         how, len(lost), len(acked), first.key, first.value,
                                         (first.complete - t0) / 1e9, got.get(first.key)))
                t = (first.complete - t0) / 1e9
                rep.details += report_around(cluster, nemesis, t, t, "%s: lost keys %s" % (how, lost[:20]))
            phantom = sorted(k for k, v in got.items()
                             if (k not in acked and k not in maybe) or
                             (k in maybe and maybe[k].value != v))
            if phantom:
                rep.anomalies.append("%s has %d write-once keys nobody wrote or a refused write "
                                     "named: %s" % (how, len(phantom), phantom[:5]))
    # 3. convergence
    ok, text = converge(cluster, timeout=30.0)
    if not ok:
        rep.anomalies.append("the members did not converge on one keyspace: " + text.splitlines()[0])
        rep.details += "\n" + text + "\n"
    if rep.anomalies:
        head = ("\n=== FAILED: %s\n=== reproduce: tests/faults/run --runs 1 --seed %d --target %s "
                "--members %d --duration %g --nemesis %s%s\n" % (
                    cfg.describe(), cfg.seed, cfg.target, cfg.members, cfg.duration,
                    ",".join(cfg.families), "" if cfg.use_netns else " --netns no"))
        rep.details = head + "\n".join("  - " + a for a in rep.anomalies) + "\n" + rep.details


def retry_request(node, path, tries=10):
    last = None
    for _ in range(tries):
        try:
            return node.request("GET", path, timeout=10.0)
        except OSError as e:
            last = e
            time.sleep(0.5)
    raise RuntimeError("%s: GET %s failed: %r" % (node.name, path, last))


def converge(cluster, timeout=30.0):
    """Waits until every member serves the same keyspace (values) at the same
    X-Etcd-Index, stable over three polls. (True, "") or (False, what differs)."""
    deadline = time.time() + timeout
    stable = 0
    last = None
    while time.time() < deadline:
        seen = {}
        try:
            for n in cluster.nodes:
                st, h, body = n.request("GET", "/v2/keys/?recursive=true&sorted=true", timeout=5.0)
                seen[n.name] = (h.get("x-etcd-index"), json.dumps(strip_indexes(body), sort_keys=True))
        except OSError:
            seen = None
        if seen and len(set(seen.values())) == 1:
            stable = stable + 1 if seen == last else 1
            if stable >= 3:
                return True, ""
        else:
            stable = 0
        last = seen
        time.sleep(0.3)
    if not last:
        return False, "members unreachable at the end"
    lines = ["members differ after %.0fs:" % timeout]
    trees = {}
    for name, (idx, tree) in sorted(last.items()):
        body = json.loads(tree)
        trees[name] = leaves(body)
        lines.append("  %s: X-Etcd-Index %s, %d keys" % (name, idx, len(trees[name])))
    names = sorted(trees)
    keys = sorted(set().union(*trees.values()))
    diff = [k for k in keys if len({trees[n].get(k) for n in names}) > 1]
    for k in diff[:10]:
        lines.append("  %s: %s" % (k, ", ".join("%s=%r" % (n, trees[n].get(k)) for n in names)))
    if len(diff) > 10:
        lines.append("  ... %d keys differ" % len(diff))
    return False, "\n".join(lines)


def report_around(cluster, nemesis, lo, hi, what, margin=5.0):
    """The finding, the nemesis events within `margin` seconds of [lo, hi] (run seconds),
    and each member's log lines from then."""
    out = ["", what, "", "nemesis events from %.1fs to %.1fs:" % (lo - margin, hi + margin)]
    evs = [e for e in nemesis.events if lo - margin <= e.t <= hi + margin]
    out += ["  " + e.format() for e in evs] or ["  (none)"]
    before = [e for e in nemesis.events if e.t < lo - margin]
    if before:
        out.append("  (the last one before: %s)" % before[-1].format())
    for n in cluster.nodes:
        lines = cluster.log_window(n, lo - margin, hi + margin)
        out.append("log of %s from %.1fs to %.1fs (%s):" % (n.name, lo - margin, hi + margin, n.log_path))
        out += ["  " + l for l in lines] or ["  (nothing)"]
    return "\n".join(out) + "\n"
