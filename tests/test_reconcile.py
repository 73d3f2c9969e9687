"""`musubi reconcile` with real processes: instances of one reconciler racing for leadership
under kill -9, a leader frozen past its lease, and an agent member that flaps.

Each test runs on the v3 path (`--api 3`) and the v2 path (`--api 2`); with
MUSUBI_TEST_TARGET=etcd the store is etcd 3.4 (started with --enable-v2) and the
reconcilers are still musubi's.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

import harness
from agents import agents, statuses, wait_for  # noqa: F401 - agents is a fixture
from v3util import Gateway

NAME = "web"

# Logs "<action id> <token> start", maybe sleeps, writes the actual state, logs "end".
HANDLER = r'''
import base64, json, os, sys, time, urllib.parse, urllib.request
action = json.load(sys.stdin)
log = os.environ["RECONCILE_TEST_LOG"]
def note(word):
    with open(log, "a") as f:
        f.write("%s %s %s %s\n" % (os.environ["MUSUBI_ACTION_ID"], os.environ["MUSUBI_FENCE_TOKEN"],
                                   action["token"], word))
note("start")
slow = os.environ.get("RECONCILE_TEST_SLOW", "")
if action["target"] == slow:
    marker = log + ".slow"
    if not (os.environ.get("RECONCILE_TEST_SLOW_ONCE") and os.path.exists(marker)):
        open(marker, "w").close()
        time.sleep(60)
if action["target"] == os.environ.get("RECONCILE_TEST_FAIL", ""):
    sys.exit(1)
time.sleep(float(os.environ.get("RECONCILE_TEST_SLEEP", "0")) * (hash(action["action_id"]) % 100) / 100)
url = os.environ["RECONCILE_TEST_URL"]
key = "/musubi/actual/%s/%s" % (action["name"], action["target"])
if os.environ["RECONCILE_TEST_API"] == "3":
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode((action["desired"] or "").encode()).decode()})
    urllib.request.urlopen(urllib.request.Request(url + "/v3/kv/put", data=body.encode()), timeout=5).read()
else:
    data = urllib.parse.urlencode({"value": action["desired"] or ""}).encode()
    urllib.request.urlopen(urllib.request.Request(url + "/v2/keys" + key, data=data, method="PUT"), timeout=5).read()
note("end")
'''


class Store:
    """Writes and reads of the test's trees, on the API under test."""

    def __init__(self, server, api):
        self.server = server
        self.api = api
        self.gw = Gateway(server) if api == "3" else None

    def put(self, key, value):
        if self.api == "3":
            self.gw.put(key, value)
        else:
            status, _, body = self.server.request(
                "PUT", "/v2/keys" + key, body=urllib.parse.urlencode({"value": value}),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert status in (200, 201), body

    def close(self):
        if self.gw:
            self.gw.close()


class Reconciler:
    """One `musubi reconcile run` instance, restartable under the same instance name."""

    def __init__(self, workdir, server, api, instance, extra=(), env=None):
        self.instance = instance
        self.log_path = os.path.join(workdir, "reconcile.%s.log" % instance)
        self.argv = [harness.musubi_bin(), "reconcile", "run", NAME,
                     "--endpoints", server.url, "--api", api, "--instance", instance,
                     "--handler", "%s %s" % (sys.executable, os.path.join(workdir, "handler.py")),
                     *extra]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         start_new_session=True)
        return self

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def cli(server, api, *args):
    out = subprocess.run([harness.musubi_bin(), "reconcile", *args, NAME,
                          "--endpoints", server.url, "--api", api],
                         capture_output=True, text=True, timeout=30)
    return out


def cli_json(server, api, command):
    out = cli(server, api, command, "--format", "json")
    assert out.returncode in (0, 2, 3), (out.returncode, out.stdout, out.stderr)
    return out.returncode, json.loads(out.stdout)


def reported(server, api):
    """The leader's status, or None before any leader has reported (exit 5)."""
    out = cli(server, api, "status", "--format", "json")
    return json.loads(out.stdout) if out.returncode in (0, 2, 3) else None


def handler_runs(path):
    """[(action id, env token, stdin token, word)] from the handlers' log."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(line.split()) for line in f if line.strip()]


@pytest.fixture
def rig(fleet, tmp_path, request):
    """A store, the handler script, and the reconcilers a test starts (stopped at the end)."""
    server = fleet.target().start()
    (tmp_path / "handler.py").write_text(HANDLER)
    started = []
    stores = []
    log = str(tmp_path / "handler.log")

    class Rig:
        def __init__(self):
            self.server = server
            self.log = log

        def store(self, api):
            s = Store(server, api)
            stores.append(s)
            return s

        def reconciler(self, api, instance, extra=(), env=None):
            env = dict({"RECONCILE_TEST_LOG": log, "RECONCILE_TEST_URL": server.url,
                        "RECONCILE_TEST_API": api}, **(env or {}))
            r = Reconciler(str(tmp_path), server, api, instance, extra, env)
            started.append(r)
            return r.start()

    yield Rig()
    failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False)
                 for w in ("setup", "call"))
    for r in started:
        r.stop()
        if failed:
            print("\n--- log of reconciler %s ---\n%s" % (r.instance, r.log()[-6000:]))
    for s in stores:
        s.close()


FAST = ["--ttl", "4s", "--lock-delay", "1s", "--interval", "200ms", "--grace", "0s", "--fresh-after", "0s",
        "--action-timeout", "20s"]


@pytest.mark.parametrize("api,seconds", [("3", harness.soak_seconds(30, 120)),
                                         ("2", harness.soak_seconds(15, 120))])
def test_kill9_instances_every_second_each_action_once(rig, api, seconds):
    """3 instances, 30 desired entries; a random instance is killed with -9 (and restarted)
    every second, for 30 s on v3 and 15 s on v2 in the suite, 2 minutes each (the
    specification's run) with MUSUBI_SOAK=1. At the end each entry has converged or its
    action is parked and reported, and no action ID ran twice."""
    store = rig.store(api)
    desired = {"svc%02d" % i: "v%d" % i for i in range(30)}
    instances = [rig.reconciler(api, "i%d" % n, FAST, {"RECONCILE_TEST_SLEEP": "0.6"})
                 for n in range(3)]
    for target, value in desired.items():
        store.put("/musubi/desired/%s/%s" % (NAME, target), value)
    rng = random.Random(14)
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(1)
        victim = rng.choice(instances)
        victim.kill9()
        victim.start()

    def settled():
        code, diff = cli_json(rig.server, api, "diff")
        rows = diff["differences"]
        return (code, rows) if all(row["parked"] for row in rows) else None

    code, rows = wait_for(settled, 60, "every difference converged or parked")
    runs = handler_runs(rig.log)
    starts = [run[0] for run in runs if run[3] == "start"]
    assert starts, "no handler ran"
    assert len(starts) == len(set(starts)), "an action ID ran twice: %r" % sorted(starts)
    # Each handler got the token its record was written under, in env and on stdin.
    assert all(run[1] == run[2] for run in runs)
    parked = {row["target"] for row in rows}
    print("api %s: %d handler runs, %d entries converged, %d parked"
          % (api, len(starts), len(desired) - len(parked), len(parked)))
    assert code == (3 if parked else 0)
    # The leader's status catches up within a pass (once there is a leader again); until
    # then it may be one from before the last difference converged, which also shows no
    # parked action but says not converged.
    status = wait_for(lambda: (lambda s: s if (s["parked"], s["converged"]) == (len(parked), not parked)
                               else None)(cli_json(rig.server, api, "status")[1]),
                      30, "status to report the parked actions")
    assert ("v2 (weaker)" in status["guarantee"]) == (api == "2")
    _, actions = cli_json(rig.server, api, "actions")
    shown = {a["target"] for a in actions["actions"] if a["parked"]}
    assert parked <= shown
    # Every entry either converged (its actual value is the desired one) or is parked.
    for target in desired:
        assert target in parked or not any(r["target"] == target for r in rows)


@pytest.mark.parametrize("api", ["3", "2"])
def test_stopped_leader_past_its_lease_is_refused(rig, api):
    """SIGSTOP the leader while its handler runs, past its lease; another instance takes over
    (and parks the action it cannot know the outcome of). SIGCONT: the old leader's next
    action record write is refused for its stale token, and the action never ran again."""
    store = rig.store(api)
    env = {"RECONCILE_TEST_SLOW": "slow"}
    a = rig.reconciler(api, "a", FAST, env)
    wait_for(lambda: "leads" in a.log(), 20, "instance a to lead")
    b = rig.reconciler(api, "b", FAST, env)
    store.put("/musubi/desired/%s/slow" % NAME, "1")
    wait_for(lambda: any(r[3] == "start" for r in handler_runs(rig.log)), 20, "the slow handler")
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: "b leads" in b.log(), 20, "instance b to take over")
        _, actions = cli_json(rig.server, api, "actions")
        wait_for(lambda: any(x["state"] == "unknown" for x in cli_json(rig.server, api, "actions")[1]["actions"]),
                 10, "b to park the action a left started")
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_for(lambda: "refused: stale token" in a.log(), 20, "a's stale record write to be refused")
    runs = handler_runs(rig.log)
    assert [r[3] for r in runs] == ["start"], runs  # killed at the lease deadline, never rerun
    code, status = cli_json(rig.server, api, "status")
    assert status["leader"] == "b" and status["parked"] == 1 and code == 3
    # SIGTERM: b resigns (exit 0), and a, campaigning again, leads before b's lease would end.
    leads = a.log().count(" leads ")
    b.proc.terminate()
    assert b.proc.wait(timeout=10) == 0
    stopped = time.time()
    wait_for(lambda: a.log().count(" leads ") > leads, 10, "a to lead again")
    assert time.time() - stopped < 2, "a waited for b's lease instead of its resignation"


def test_member_flapping_within_grace_triggers_nothing(rig, tmp_path, agents):
    """An agent member killed and back within --grace: no action. Down for longer: one."""
    a1 = agents("a1", tags=["role=web"])
    a2 = agents("a2", join=[a1.gossip_addr])
    a3 = agents("a3", join=[a1.gossip_addr])
    everyone = {"a1": "alive", "a2": "alive", "a3": "alive"}
    wait_for(lambda: statuses(a1) == everyone, 20, "a1 to see all three alive")
    store = rig.store("3")
    store.put("/musubi/desired/%s/a1" % NAME, '{"role":"web"}')
    store.put("/musubi/desired/%s/a2" % NAME, "")
    store.put("/musubi/desired/%s/a3" % NAME, "")
    r = rig.reconciler("3", "r1", ["--actual", "agent", "--rpc-addr", a1.rpc_addr, "--ttl", "3s",
                                   "--interval", "200ms", "--grace", "10s", "--fresh-after", "1s"])
    wait_for(lambda: (reported(rig.server, "3") or {}).get("converged") is True, 20, "converged")
    a3.kill()
    wait_for(lambda: statuses(a1).get("a3") == "failed", 30, "a3 failed on a1")
    down = time.time()
    a3.start()
    wait_for(lambda: statuses(a1).get("a3") == "alive", 20, "a3 alive again")
    assert time.time() - down < 8, "a3 came back too late for a flap within the grace"
    time.sleep(max(0.0, 11 - (time.time() - down)))
    assert handler_runs(rig.log) == [], handler_runs(rig.log)
    assert cli_json(rig.server, "3", "actions")[1]["actions"] == []
    # Control: down for longer than the grace, the member's creation is one action.
    a3.kill()
    wait_for(lambda: handler_runs(rig.log), 60, "the handler for a3")
    time.sleep(1)
    ids = [run[0] for run in handler_runs(rig.log) if run[3] == "start"]
    assert len(ids) == 1 and ids[0].startswith("create:a3:desired@"), ids
    assert "running action" in r.log()


def test_a_leader_cut_off_from_the_gossip_acts_on_nothing_the_others_see(rig, agents):
    """The leader's agent is alone (as in a gossip partition): it sees a1 and a2 missing and
    a3 extra, but the other instances' views, from agents that see a1 and a2 alive, outvote
    it: no action, and status shows the differences it holds back."""
    a1 = agents("a1")
    a2 = agents("a2", join=[a1.gossip_addr])
    a3 = agents("a3")
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 20, "a1 and a2 joined")
    store = rig.store("3")
    store.put("/musubi/desired/%s/a1" % NAME, "")
    store.put("/musubi/desired/%s/a2" % NAME, "")
    # r1 leads, and its --fresh-after gives r2 and r3 time to publish their views.
    fast = ["--actual", "agent", "--ttl", "4s", "--interval", "200ms", "--grace", "0s",
            "--fresh-after", "4s"]
    r1 = rig.reconciler("3", "r1", fast + ["--rpc-addr", a3.rpc_addr])
    wait_for(lambda: "r1 leads" in r1.log(), 20, "r1 to lead")
    others = [rig.reconciler("3", "r2", fast + ["--rpc-addr", a1.rpc_addr]),
              rig.reconciler("3", "r3", fast + ["--rpc-addr", a2.rpc_addr])]
    status = wait_for(lambda: (lambda s: s if s and s["views"] == "3/3" else None)(
        reported(rig.server, "3")), 20, "three fresh views")
    wait_for(lambda: reported(rig.server, "3")["fresh"], 20, "r1's reading to be fresh")
    time.sleep(2)
    status = reported(rig.server, "3")
    assert status["leader"] == "r1" and status["differences"] == 3, status
    assert status["pending"] == 3 and status["views"] == "3/3", status
    assert handler_runs(rig.log) == []
    assert cli_json(rig.server, "3", "actions")[1]["actions"] == []
    # Control: with the other views gone stale, r1 alone is the majority and acts.
    for other in others:
        other.stop()
    wait_for(lambda: len(handler_runs(rig.log)) >= 6, 20, "r1 to act alone")


def test_a_failed_action_is_parked_until_an_operator_releases_it(rig):
    """A handler that fails: the action is parked (not retried without --idempotent), shown
    by `actions` and `status` (exit 3); `retry NAME ID` releases it, and the difference, still
    there, runs again under a new ID."""
    store = rig.store("3")
    store.put("/musubi/desired/%s/ok" % NAME, "1")
    store.put("/musubi/desired/%s/bad" % NAME, "1")
    rig.reconciler("3", "r1", FAST, {"RECONCILE_TEST_FAIL": "bad"})
    wait_for(lambda: (reported(rig.server, "3") or {}).get("parked") == 1, 20, "bad parked")
    out = cli(rig.server, "3", "actions")
    assert out.returncode == 3, out
    line = [l for l in out.stdout.splitlines() if l.startswith("create:bad:")][0]
    bad_id = line.split()[0]
    assert "failed (parked)" in line and "exit=1" in line, line
    out = cli(rig.server, "3", "status")
    assert out.returncode == 3 and "parked=1" in out.stdout and "converged=no" in out.stdout, out
    assert "guarantee: v3" in out.stdout
    out = subprocess.run([harness.musubi_bin(), "reconcile", "retry", NAME, bad_id,
                          "--endpoints", rig.server.url, "--api", "3"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out
    again = bad_id + ":2"
    wait_for(lambda: any(r[0] == again for r in handler_runs(rig.log)), 20, "the new action")
    starts = sorted(r[0] for r in handler_runs(rig.log) if r[3] == "start")
    assert [i.split(":")[1] for i in starts] == ["bad", "bad", "ok"], starts
    assert starts[:2] == [bad_id, again], starts


def test_idempotent_a_new_leader_reruns_an_interrupted_action_under_the_same_id(rig):
    """--idempotent: the leader is killed with -9 inside a handler; the next leader runs the
    action again under the same ID (the handler dedups on it), with its own token."""
    store = rig.store("3")
    env = {"RECONCILE_TEST_SLOW": "slow", "RECONCILE_TEST_SLOW_ONCE": "1"}
    a = rig.reconciler("3", "a", FAST + ["--idempotent"], env)
    wait_for(lambda: "leads" in a.log(), 20, "instance a to lead")
    b = rig.reconciler("3", "b", FAST + ["--idempotent"], env)
    store.put("/musubi/desired/%s/slow" % NAME, "1")
    wait_for(lambda: handler_runs(rig.log), 20, "the slow handler")
    a.kill9()
    wait_for(lambda: [r for r in handler_runs(rig.log) if r[3] == "end"], 30, "the rerun to end")
    runs = [r for r in handler_runs(rig.log) if r[3] == "start"]
    assert len(runs) == 2 and runs[0][0] == runs[1][0], runs
    assert int(runs[1][1]) > int(runs[0][1]), "the rerun carries the new leader's token"
    wait_for(lambda: (reported(rig.server, "3") or {}).get("converged") is True, 20, "converged")
    assert "b leads" in b.log()
