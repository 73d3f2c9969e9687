"""`musubi conf`: a key tree rendered as one JSON config file and kept current
(docs/conf.md), against the target store through its v2 API (`--api 2`) and its v3 API
(`--api 3`). With MUSUBI_TEST_TARGET=etcd the store is etcd 3.4 (`--enable-v2`): its v2
and v3 keyspaces are apart, so each test writes through the API it renders from.

- seed 000's tree, written with Debian's etcdctl (v2) and with `musubi kv`, renders as the
  seed's document (`perl serf-etcdconf.pl | jq .`), equal as JSON;
- import then render gives the document back; importing it again changes nothing;
- `conf watch` under 1,000 writes: every reload sees valid JSON, the last file is the last
  render; a watcher stopped (SIGSTOP) past the v2 watch window (1,000 events) or a v3
  compaction recovers; a failing check keeps the old file; a failed reload with --backup
  rolls back; the store killed: the file stays, and the watcher catches up after;
- `--check` exits 2 when the file would change; `conf consumers` lists a reporting watcher.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from harness import ETCDCTL_BIN, musubi_bin, target_kind, wait_for

SEED_DOCUMENT = {
    "bind": "192.168.39.3",
    "event_handlers": ["test2", "test2", "test3", "aaa"],
    "node_name": "manager",
    "keys": {"role": "develop", "network": "local", "test": "develop"},
}

APIS = ["2", "3"]


def conf(server, api, *args, stdin=None, timeout=60):
    p = subprocess.run([musubi_bin(), "conf", "--endpoints", server.url, "--api", api] + list(args),
                       input=stdin, capture_output=True, text=True, timeout=timeout)
    return p


def conf_ok(server, api, *args, stdin=None):
    p = conf(server, api, *args, stdin=stdin)
    assert p.returncode == 0, "conf %s -> %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def render(server, api, prefix, *args):
    return json.loads(conf_ok(server, api, "render", prefix, *args))


def etcdctl2(server, *args):
    env = dict(os.environ, ETCDCTL_API="2")
    p = subprocess.run([ETCDCTL_BIN, "--endpoints", server.url] + list(args),
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 0, "etcdctl %s: %s" % (args, p.stderr)


def musubi_kv(server, *args):
    p = subprocess.run([musubi_bin(), "kv", "--endpoints", server.url] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "musubi kv %s: %s" % (args, p.stderr)


class Writer:
    """Fast writes through one keep-alive connection: v2 PUTs or v3 gateway puts."""

    def __init__(self, server, api):
        self.server, self.api = server, api
        self.http = requests.Session()

    def put(self, key, value):
        if self.api == "2":
            r = self.http.put(self.server.url + "/v2/keys" + key, data={"value": value}, timeout=10)
            assert r.status_code in (200, 201), r.text
        else:
            b64 = lambda s: base64.b64encode(s.encode()).decode()
            r = self.http.post(self.server.url + "/v3/kv/put", timeout=10,
                               data=json.dumps({"key": b64(key), "value": b64(value)}))
            assert r.status_code == 200, r.text

    def compact_all(self):
        r = self.http.post(self.server.url + "/v3/kv/range", timeout=10,
                           data=json.dumps({"key": base64.b64encode(b"\0").decode()}))
        rev = int(r.json()["header"]["revision"])
        r = self.http.post(self.server.url + "/v3/kv/compaction", timeout=10,
                           data=json.dumps({"revision": str(rev), "physical": True}))
        assert r.status_code == 200, r.text


def write_seed_etcdctl(server):
    """The seed's tree as its author made it, with etcdctl's v2 commands."""
    etcdctl2(server, "set", "/serf/manager/node_name", "manager")
    etcdctl2(server, "set", "/serf/manager/bind", "192.168.39.3")
    etcdctl2(server, "mkdir", "/serf/manager/keys")
    for k, v in [("role", "develop"), ("network", "local"), ("test", "develop")]:
        etcdctl2(server, "set", "/serf/manager/keys/" + k, v)
    etcdctl2(server, "mkdir", "/serf/manager/event_handlers")
    for v in ["test2", "test2", "test3", "aaa"]:
        etcdctl2(server, "mk", "--in-order", "/serf/manager/event_handlers", v)


def write_seed_musubi(server, api):
    """The same tree with `musubi kv`: v2 `set` and `mk --in-order`; v3 `put` (no in-order
    keys in v3: the handlers are numbered)."""
    if api == "2":
        for k, v in [("node_name", "manager"), ("bind", "192.168.39.3"), ("keys/role", "develop"),
                     ("keys/network", "local"), ("keys/test", "develop")]:
            musubi_kv(server, "set", "/serf/manager/" + k, v)
        for v in ["test2", "test2", "test3", "aaa"]:
            musubi_kv(server, "mk", "--in-order", "/serf/manager/event_handlers", v)
    else:
        for k, v in [("node_name", "manager"), ("bind", "192.168.39.3"), ("keys/role", "develop"),
                     ("keys/network", "local"), ("keys/test", "develop"),
                     ("event_handlers/0", "test2"), ("event_handlers/1", "test2"),
                     ("event_handlers/2", "test3"), ("event_handlers/3", "aaa")]:
            musubi_kv(server, "--api", "3", "put", "/serf/manager/" + k, v)


def apis_reading_v2_writes():
    # musubi has one keyspace for both APIs; etcd 3.4 keeps v2 apart.
    return ["2"] if target_kind() == "etcd" else ["2", "3"]


def test_seed000_tree_written_with_etcdctl_renders_the_seed_document(target):
    write_seed_etcdctl(target)
    for api in apis_reading_v2_writes():
        assert render(target, api, "/serf/manager") == SEED_DOCUMENT, api
        assert render(target, api, "/serf/manager", "--schema", "serf") == SEED_DOCUMENT, api


@pytest.mark.parametrize("api", APIS)
def test_seed000_tree_written_with_musubi_kv_renders_the_seed_document(target, api):
    write_seed_musubi(target, api)
    assert render(target, api, "/serf/manager/") == SEED_DOCUMENT
    out = json.loads(conf_ok(target, api, "render", "/serf/manager", "--format", "json"))
    assert out["prefix"] == "/serf/manager" and out["document"] == SEED_DOCUMENT
    assert len(out["sha256"]) == 64 and out["index"] > 0
    # Text is the document with a 2-space indent, keys sorted.
    text = conf_ok(target, api, "render", "/serf/manager")
    assert text == json.dumps(SEED_DOCUMENT, indent=2, sort_keys=True,
                              separators=(",", ": ")) + "\n"


def random_document(rng, depth=0):
    def leaf():
        return rng.choice(["", "x", "a b", "10.0.0.%d" % rng.randrange(255), "%d" % rng.randrange(9)])
    doc = {}
    for _ in range(rng.randrange(1, 5)):
        name = rng.choice("abcdefgh") + rng.choice(["", "_x", "-1", ".y"])
        kind = rng.randrange(3) if depth < 3 else 0
        if kind == 0:
            doc[name] = leaf()
        elif kind == 1:
            doc[name] = [leaf() if rng.randrange(2) else random_document(rng, depth + 1)
                         for _ in range(rng.randrange(1, 4))]
        else:
            doc[name] = random_document(rng, depth + 1)
    return doc


@pytest.mark.parametrize("api", APIS)
def test_import_then_render_gives_the_document_back(target, api):
    import random
    rng = random.Random(13)
    documents = [SEED_DOCUMENT] + [random_document(rng) for _ in range(5)]
    for doc in documents:
        conf_ok(target, api, "import", "/imported", "--prune", stdin=json.dumps(doc))
        assert render(target, api, "/imported") == doc
        # Again: nothing to write.
        assert conf_ok(target, api, "import", "/imported", "--prune", stdin=json.dumps(doc)) == ""
    typed = {"retry_max_attempts": 3, "replay_on_join": True, "tags": {"0": "zero", "role": "db"},
             "event_handlers": [], "node_name": "123"}
    conf_ok(target, api, "import", "/typed", "--schema", "serf", stdin=json.dumps(typed))
    expected = dict(typed)
    if api == "3":
        del expected["event_handlers"]  # v3 has no empty directories
    assert render(target, api, "/typed", "--schema", "serf") == expected
    # A document that would not render back is refused before anything is written.
    p = conf(target, api, "import", "/bad", stdin='{"a": {"0": "x", "1": "y"}}')
    assert p.returncode == 5, p.stderr
    assert conf(target, api, "render", "/bad").returncode == 5


@pytest.mark.parametrize("api", APIS)
def test_render_out_check_and_hooks(target, api, tmp_path):
    w = Writer(target, api)
    w.put("/app/port", "80")
    out = tmp_path / "app.json"
    conf_ok(target, api, "render", "/app", "--out", str(out), "--mode", "0640")
    assert json.loads(out.read_text()) == {"port": "80"}
    assert oct(out.stat().st_mode & 0o777) == "0o640"
    assert conf(target, api, "render", "/app", "--out", str(out), "--check").returncode == 0
    w.put("/app/port", "81")
    assert conf(target, api, "render", "/app", "--out", str(out), "--check").returncode == 2
    assert json.loads(out.read_text()) == {"port": "80"}
    # A failing check keeps the old file (exit 6); the mode is kept on rewrite.
    p = conf(target, api, "render", "/app", "--out", str(out), "--check-cmd", "grep -q 82 {}")
    assert p.returncode == 6, p.stderr
    assert json.loads(out.read_text()) == {"port": "80"}
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []
    # A failed reload with --backup puts the old file back (exit 6).
    p = conf(target, api, "render", "/app", "--out", str(out), "--reload-cmd", "false", "--backup")
    assert p.returncode == 6, p.stderr
    assert json.loads(out.read_text()) == {"port": "80"}
    log = tmp_path / "reloads"
    conf_ok(target, api, "render", "/app", "--out", str(out), "--shell",
            "--reload-cmd", "echo reloaded >> %s" % log)
    assert json.loads(out.read_text()) == {"port": "81"} and log.read_text() == "reloaded\n"
    assert oct(out.stat().st_mode & 0o777) == "0o640"
    # Unchanged: no reload.
    conf_ok(target, api, "render", "/app", "--out", str(out), "--shell",
            "--reload-cmd", "echo reloaded >> %s" % log)
    assert log.read_text() == "reloaded\n"
    # Missing prefix: 5, or {} when allowed.
    assert conf(target, api, "render", "/nothing").returncode == 5
    assert render(target, api, "/nothing", "--allow-missing") == {}


RELOAD = r'''
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
    line = "ok %s\n" % doc.get("n", "")
except Exception as e:
    line = "bad %r\n" % e
open(sys.argv[2], "a").write(line)
'''


class Watch:
    """A `musubi conf watch` process, its output file and its reload log."""

    def __init__(self, server, api, tmp_path, prefix, *extra):
        self.out = tmp_path / ("%s.json" % prefix.strip("/").replace("/", "_"))
        self.log = tmp_path / ("%s.reloads" % prefix.strip("/").replace("/", "_"))
        script = tmp_path / "reload.py"
        script.write_text(RELOAD)
        self.stderr = open(tmp_path / "watch.stderr", "ab")
        argv = [musubi_bin(), "conf", "--endpoints", server.url, "--api", api, "watch", prefix,
                "--out", str(self.out), "--reload-cmd",
                "%s %s {} %s" % (sys.executable, script, self.log)] + list(extra)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     start_new_session=True)

    def document(self):
        try:
            return json.loads(self.out.read_text())
        except (OSError, ValueError):
            return None

    def reloads(self):
        try:
            return self.log.read_text().splitlines()
        except OSError:
            return []

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.stderr.close()


@pytest.fixture
def watches():
    opened = []
    yield opened
    for w in opened:
        w.close()


@pytest.mark.parametrize("api", APIS)
def test_watch_under_a_thousand_writes_reloads_only_valid_json_and_ends_current(
        target, api, tmp_path, watches):
    w = Writer(target, api)
    w.put("/load/n", "0")
    watch = Watch(target, api, tmp_path, "/load", "--wait", "20ms:200ms")
    watches.append(watch)
    wait_for("first render", lambda: watch.document() == {"n": "0"})
    for i in range(1, 1001):
        w.put("/load/n", str(i))
        if i % 100 == 0:
            w.put("/load/k%d" % (i // 100), "v")
    final = render(target, api, "/load")
    assert final["n"] == "1000"
    wait_for("last render installed", lambda: watch.document() == final, timeout=30)
    # The reload runs after the rename.
    wait_for("last reload", lambda: watch.reloads()[-1:] == ["ok 1000"])
    reloads = watch.reloads()
    assert all(line.startswith("ok ") for line in reloads), reloads[-5:]
    # One reload per batch: bursts were coalesced, never one reload per write.
    assert len(reloads) < 1000, len(reloads)
    assert watch.proc.poll() is None


@pytest.mark.parametrize("api", APIS)
def test_a_stopped_watcher_past_the_watch_window_recovers(target, api, tmp_path, watches):
    w = Writer(target, api)
    w.put("/stopped/n", "0")
    watch = Watch(target, api, tmp_path, "/stopped")
    watches.append(watch)
    wait_for("first render", lambda: watch.document() == {"n": "0"})
    os.kill(watch.proc.pid, signal.SIGSTOP)
    try:
        # More events than v2 keeps (1,000), then (v3) the history compacted away.
        for i in range(1, 1101):
            w.put("/stopped/n", str(i))
        if api == "3":
            w.compact_all()
    finally:
        os.kill(watch.proc.pid, signal.SIGCONT)
    wait_for("caught up", lambda: watch.document() == {"n": "1100"}, timeout=30)
    w.put("/stopped/n", "after")
    wait_for("watching again", lambda: watch.document() == {"n": "after"}, timeout=30)
    assert all(line.startswith("ok ") for line in watch.reloads())


@pytest.mark.parametrize("api", APIS)
def test_a_failing_check_keeps_the_old_file_while_watching(target, api, tmp_path, watches):
    w = Writer(target, api)
    w.put("/checked/n", "1")
    watch = Watch(target, api, tmp_path, "/checked", "--shell", "--check-cmd", "! grep -q bad {}")
    watches.append(watch)
    wait_for("first render", lambda: watch.document() == {"n": "1"})
    w.put("/checked/n", "bad")
    time.sleep(1.5)
    assert watch.document() == {"n": "1"}
    w.put("/checked/n", "2")
    wait_for("next good render", lambda: watch.document() == {"n": "2"})
    wait_for("its reload", lambda: watch.reloads() == ["ok 1", "ok 2"])


@pytest.mark.parametrize("api", APIS)
def test_the_file_stays_while_every_member_is_down_and_catches_up_after(
        fleet, api, tmp_path, watches):
    members = fleet.cluster(3)
    w = Writer(members[0], api)
    w.put("/down/n", "1")
    endpoints = ",".join(m.url for m in members)
    watch = Watch(members[0], api, tmp_path, "/down", "--timeout", "1s", "--endpoints", endpoints)
    watches.append(watch)
    wait_for("first render", lambda: watch.document() == {"n": "1"})
    for m in members:
        m.kill()
    time.sleep(3)
    assert watch.document() == {"n": "1"} and watch.proc.poll() is None
    fleet.start_together(members)
    Writer(members[1], api).put("/down/n", "2")
    wait_for("caught up after the restart", lambda: watch.document() == {"n": "2"}, timeout=40)
    wait_for("one reload for it", lambda: watch.reloads() == ["ok 1", "ok 2"])


CHILD = r'''
import json, os, signal, sys, time
log = sys.argv[1]
def hup(*_):
    with open(log, "a") as f:
        f.write(json.dumps(json.load(open(os.environ["MUSUBI_CONF_FILE"]))) + "\n")
signal.signal(signal.SIGHUP, hup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))
hup()
while True:
    time.sleep(0.05)
'''


@pytest.mark.parametrize("api", APIS)
def test_exec_starts_the_child_after_the_first_render_signals_it_and_passes_its_exit(
        target, api, tmp_path):
    w = Writer(target, api)
    w.put("/exec/n", "1")
    child, log = tmp_path / "child.py", tmp_path / "child.log"
    child.write_text(CHILD)
    proc = subprocess.Popen([musubi_bin(), "conf", "--endpoints", target.url, "--api", api, "watch",
                             "/exec", "--exec", "%s %s %s" % (sys.executable, child, log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        seen = lambda: log.read_text().splitlines() if log.exists() else []
        wait_for("the child's first read", lambda: seen() == ['{"n": "1"}'])
        w.put("/exec/n", "2")
        wait_for("a SIGHUP with the new file", lambda: seen() == ['{"n": "1"}', '{"n": "2"}'])
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 42, proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.parametrize("api", APIS)
def test_consumers_lists_a_reporting_watcher_and_its_lag(target, api, tmp_path, watches):
    w = Writer(target, api)
    w.put("/reported/n", "1")
    watch = Watch(target, api, tmp_path, "/reported", "--report")
    watches.append(watch)
    wait_for("first render", lambda: watch.document() == {"n": "1"})

    def consumers():
        return json.loads(conf_ok(target, api, "consumers", "/reported", "--format", "json"))

    wait_for("a report", lambda: len(consumers()["consumers"]) == 1)
    w.put("/reported/n", "2")
    wait_for("reported current", lambda: (lambda c: c["consumers"][0]["lag"] == 0
                                          and c["consumers"][0]["index"] >= c["last_change"])(consumers()))
    c = consumers()["consumers"][0]
    assert c["file"] == str(watch.out) and c["ok"] is True
    assert c["sha256"] == json.loads(conf_ok(target, api, "render", "/reported", "--format", "json"))["sha256"]
    # Reports are hidden: the rendered tree of / does not show them over v2.
    if api == "2":
        assert "_musubi" not in render(target, api, "/")


@pytest.mark.parametrize("api", ["auto", "2", "3"])
def test_one_shot_commands_exit_4_when_no_store_answers(api, tmp_path):
    from harness import free_port
    dead = "http://127.0.0.1:%d" % free_port()
    for verb, stdin in [("render", None), ("import", "{}"), ("consumers", None)]:
        p = subprocess.run([musubi_bin(), "conf", "--endpoints", dead, "--api", api, "--timeout", "1s",
                            verb, "/x"], input=stdin, capture_output=True, text=True, timeout=30)
        assert p.returncode == 4, (verb, p.returncode, p.stderr)


def test_watch_retries_while_no_store_answers_and_ends_on_sigterm(tmp_path):
    from harness import free_port
    dead = "http://127.0.0.1:%d" % free_port()
    out = tmp_path / "kept.json"
    out.write_text('{"kept": true}\n')
    p = subprocess.Popen([musubi_bin(), "conf", "--endpoints", dead, "--api", "2", "--timeout", "1s",
                          "watch", "/x", "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(2)
        assert p.poll() is None and out.read_text() == '{"kept": true}\n'
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


@pytest.mark.skipif(target_kind() == "etcd", reason="etcd 3.4's v2 window is fixed at 1,000")
def test_a_watcher_whose_next_index_left_a_small_v2_window_reads_again(fleet, tmp_path, watches):
    """With `--v2-watch-history 10`, a watcher stopped mid-burst gets its pending event, then
    polls from an index the window has left: 401, and a whole re-read."""
    target = fleet.target(extra_args=["--v2-watch-history", "10"]).start()
    w = Writer(target, "2")
    w.put("/small/n", "0")
    watch = Watch(target, "2", tmp_path, "/small", "--wait", "300ms:1s")
    watches.append(watch)
    wait_for("first render", lambda: watch.document() == {"n": "0"})
    os.kill(watch.proc.pid, signal.SIGSTOP)
    try:
        for i in range(1, 201):
            w.put("/small/n", str(i))
    finally:
        os.kill(watch.proc.pid, signal.SIGCONT)
    wait_for("caught up", lambda: watch.document() == {"n": "200"}, timeout=30)
    assert b"gone from the store's history" in (tmp_path / "watch.stderr").read_bytes()
    w.put("/small/n", "after")
    wait_for("watching again", lambda: watch.document() == {"n": "after"}, timeout=30)
