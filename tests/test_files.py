"""`musubi files`: a directory shared through the store (docs/files.md), with real
processes, over v2 (`--api 2`) and v3 (`--api 3`), against musubi or etcd 3.4
(MUSUBI_TEST_TARGET=etcd; the harness starts it with --enable-v2).

Seed 003's Fileconsul demo is replayed with its command shapes and output lines; the
rest checks the guarantees: files of any size and their modes round-trip, a pusher
killed anywhere never leaves a reader with a mix of two revisions, of five pushers
racing from one base exactly one wins (the others exit 3), and a corrupted blob makes
`pull` exit 5 without touching the tree."""

import base64
import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import time
import types
import urllib.parse

import pytest

import harness
from grpc_proxy import AnswerLosingProxy
from v3util import Gateway

APIS = ["2", "3"]

# Seed 003's share (/consul/share in the Fileconsul demo).
SEED_FILES = [
    "bin/ntp", "bin/apache2", "bin/loadavg",
    "config/service/apache2.json", "config/service/ntp.json",
    "config/template/server/check_loadavg.json", "config/template/server/service_apache2.json",
    "config/template/server/agent_server.json", "config/template/server/service_ntp.json",
    "config/template/client/check_loadavg.json", "config/template/client/agent_client.json",
    "config/template/client/service_ntp.json", "config/check/loadavg.json",
]


class Files:
    """`musubi files ...` on one directory against one server."""

    def __init__(self, server, api, path, share="default"):
        self.server, self.api, self.path, self.share = server, api, path, share
        os.makedirs(path, exist_ok=True)

    def argv(self, *args):
        return [harness.musubi_bin(), "files", "--endpoints", self.server.url,
                "--api", self.api, "--share", self.share, "--dir", self.path] + list(args)

    def run(self, *args, rc=0, timeout=120):
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)
        if rc is not None:
            assert p.returncode == rc, "files %s -> %d (want %d)\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(args), p.returncode, rc, p.stdout, p.stderr)
        return p

    def json(self, *args, rc=0):
        return json.loads(self.run("--format", "json", *args, rc=rc).stdout)

    def popen(self, *args):
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def write(self, rel, data, mode=0o644):
        full = os.path.join(self.path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.chmod(full, mode)

    def read(self, rel):
        with open(os.path.join(self.path, rel), "rb") as f:
            return f.read()

    def mode(self, rel):
        return stat.S_IMODE(os.lstat(os.path.join(self.path, rel)).st_mode)

    def tree(self):
        """{relative path: (sha256, mode)} of everything but the state directory."""
        out = {}
        for root, dirs, names in os.walk(self.path):
            dirs[:] = [d for d in dirs if not (root == self.path and d == ".musubi-files")]
            for name in names:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, self.path)
                if os.path.islink(full):
                    out[rel] = ("link:" + os.readlink(full), None)
                else:
                    with open(full, "rb") as f:
                        out[rel] = (hashlib.sha256(f.read()).hexdigest(), self.mode(rel))
        return out


class Raw:
    """The share's keys read and written behind musubi's back, through the same API."""

    def __init__(self, server, api, share="default"):
        self.server, self.api = server, api
        self.prefix = "/_musubi/files/%s/" % share

    def get(self, name):
        key = self.prefix + name
        if self.api == "2":
            status, _, body = harness.raw_request(
                self.server.client_port, "GET", "/v2/keys" + urllib.parse.quote(key))
            assert status == 200, body
            return json.loads(body)["node"]["value"].encode()
        kvs = Gateway(self.server).get(key).get("kvs", [])
        assert kvs, key
        return base64.b64decode(kvs[0]["value"])

    def put(self, name, value):
        key = self.prefix + name
        if self.api == "2":
            status, _, body = harness.raw_request(
                self.server.client_port, "PUT", "/v2/keys" + urllib.parse.quote(key),
                body=urllib.parse.urlencode({"value": value}),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert status in (200, 201), body
        else:
            Gateway(self.server).put(key, value)

    def manifest(self):
        head = json.loads(self.get("HEAD"))
        return head, json.loads(self.get("manifests/" + head["root"].split(":", 1)[1]))


def seed_tree(d):
    for rel in SEED_FILES:
        if rel.startswith("bin/"):
            d.write(rel, "#!/bin/sh\n# %s check\nexit 0\n" % rel, 0o755)
        else:
            d.write(rel, json.dumps({"name": rel}) + "\n")


def lines(text):
    return text.splitlines()


@pytest.mark.parametrize("api", APIS)
def test_seed_003_demo_replayed(target, tmp_path, api):
    server = Files(target, api, str(tmp_path / "server"))
    client = Files(target, api, str(tmp_path / "client"))
    seed_tree(server)

    # First push from the server: every file is to be added.
    p = server.run("status", rc=2)
    assert lines(p.stdout) == [
        "Changes to be pushed:",
        '  (use "musubi files push [command options]" to synchronize local files)',
    ] + ["    add remote file:    %s" % f for f in sorted(SEED_FILES)]
    p = server.run("push")
    assert lines(p.stdout) == ["push new file:  %s" % f for f in sorted(SEED_FILES)]
    assert server.run("status").stdout == "Already up-to-date.\n"

    # The client pulls the share, edits bin/apache2 and pushes it.
    p = client.run("pull")
    assert lines(p.stdout) == (["Synchronize remote files:"]
                               + ["    new file:   %s" % f for f in sorted(SEED_FILES)]
                               + ["Already up-to-date."])
    assert client.tree() == server.tree()
    assert client.mode("bin/apache2") == 0o755
    client.write("bin/apache2", client.read("bin/apache2") + b"# edited on the client\n", 0o755)
    p = client.run("status", rc=2)
    assert lines(p.stdout) == [
        "Changes to be pushed:",
        '  (use "musubi files push [command options]" to synchronize local files)',
        "    modify remote file: bin/apache2",
    ]
    assert client.run("push").stdout == "push modified file: bin/apache2\n"

    # The server sees it to pull, and pulls it.
    p = server.run("status", rc=2)
    assert lines(p.stdout) == [
        "Changes to be pulled:",
        '  (use "musubi files pull [command options]" to synchronize remote files)',
        "    modify local file:  bin/apache2",
    ]
    status = server.json("status", rc=2)
    assert status["pull"] == [{"path": "bin/apache2", "op": "modify"}]
    assert status["push"] == [] and status["conflicts"] == []
    assert status["remote"]["rev"] == 2 and status["base"]["rev"] == 1
    p = server.run("pull")
    assert p.stdout == "Synchronize remote files:\n    modified:   bin/apache2\nAlready up-to-date.\n"
    assert server.tree() == client.tree()
    assert server.run("status").stdout == "Already up-to-date.\n"


@pytest.mark.parametrize("api", APIS)
def test_both_sides_changed_is_a_conflict(target, tmp_path, api):
    a = Files(target, api, str(tmp_path / "a"))
    b = Files(target, api, str(tmp_path / "b"))
    a.write("bin/loadavg", "v1\n", 0o755)
    a.write("keep", "k\n")
    a.run("push")
    b.run("pull")
    a.write("bin/loadavg", "from a\n", 0o755)
    a.run("push")
    b.write("bin/loadavg", "from b\n", 0o755)
    b.write("keep", "changed only in b\n")
    p = b.run("status", rc=3)
    assert "Conflicts (changed on both sides since rev 1):" in p.stdout
    assert "    both modified:      bin/loadavg" in lines(p.stdout)
    assert "    modify remote file: keep" in lines(p.stdout)
    b.run("push", rc=3)
    # pull leaves the conflict and the local-only change alone.
    b.run("pull", rc=3)
    assert b.read("bin/loadavg") == b"from b\n" and b.read("keep") == b"changed only in b\n"
    b.run("pull", "--force")
    assert b.read("bin/loadavg") == b"from a\n"
    assert b.run("status", rc=2).stdout.endswith("    modify remote file: keep\n")


@pytest.mark.parametrize("api", APIS)
def test_big_binary_script_and_link_round_trip_with_modes(target, tmp_path, api):
    size = 100 * 1000 * 1000
    a = Files(target, api, str(tmp_path / "a"))
    b = Files(target, api, str(tmp_path / "b"))
    block = os.urandom(1 << 20)
    with open(os.path.join(a.path, "big.bin"), "wb") as f:
        for i in range(size // len(block)):
            f.write(hashlib.sha256(b"%d" % i).digest() + block[32:])
        f.write(block[: size % len(block)])
    os.chmod(os.path.join(a.path, "big.bin"), 0o640)
    a.write("bin/run.sh", "#!/bin/sh\necho ok\n", 0o755)
    a.write("empty", b"", 0o600)
    os.symlink("bin/run.sh", os.path.join(a.path, "run"))
    started = time.time()
    a.run("push", "-m", "big")
    pushed = time.time() - started
    b.run("pull")
    pulled = time.time() - started - pushed
    print("api %s: %d bytes pushed in %.1fs, pulled in %.1fs" % (api, size, pushed, pulled))
    assert b.tree() == a.tree()
    assert b.mode("bin/run.sh") == 0o755 and b.mode("big.bin") == 0o640
    assert subprocess.run([os.path.join(b.path, "run")], capture_output=True).stdout == b"ok\n"
    head, manifest = Raw(target, api).manifest()
    assert head["rev"] == 1 and head["msg"] == "big"
    assert manifest["files"]["big.bin"]["size"] == size
    assert manifest["files"]["bin/run.sh"]["mode"] == "0755"
    assert manifest["links"] == {"run": "bin/run.sh"}
    # A push that changes nothing writes nothing.
    assert a.run("push").stdout == "Everything up-to-date.\n"


@pytest.mark.parametrize("api", APIS)
def test_five_pushers_racing_from_one_base_one_wins(target, tmp_path, api):
    base = Files(target, api, str(tmp_path / "base"))
    base.write("shared.conf", "base\n")
    base.run("push")
    racers = [Files(target, api, str(tmp_path / ("r%d" % i))) for i in range(5)]
    for i, r in enumerate(racers):
        r.run("pull")
        r.write("shared.conf", "racer %d\n" % i)
        r.write("own-%d" % i, os.urandom(300 * 1024))
    procs = [r.popen("push") for r in racers]
    codes = [p.wait(timeout=120) for p in procs]
    assert sorted(codes) == [0, 3, 3, 3, 3], [(c, p.stderr.read()) for c, p in zip(codes, procs)]
    winner = codes.index(0)
    head, manifest = Raw(target, api).manifest()
    assert head["rev"] == 2
    assert sorted(manifest["files"]) == ["own-%d" % winner, "shared.conf"]
    base.run("pull")
    assert base.read("shared.conf") == b"racer %d\n" % winner
    revisions = base.json("log")["revisions"]
    assert [r["rev"] for r in revisions] == [2, 1]


@pytest.mark.parametrize("api", APIS)
def test_a_killed_pusher_never_leaves_readers_a_mix_of_two_revisions(target, tmp_path, api):
    pusher = Files(target, api, str(tmp_path / "pusher"))
    reader = Files(target, api, str(tmp_path / "reader"))
    names = ["f%02d" % i for i in range(20)]

    def generation(g):
        for n in names:
            pusher.write(n, "gen %d of %s\n" % (g, n) + "x" * 40000)
        # Big enough that a kill often lands mid-upload.
        pusher.write("blob", str(g).encode() * (3 << 20))

    def generations_seen(d):
        return {d.read(n).split(b" ")[1] for n in names} | {d.read("blob")[:1]}

    generation(0)
    pusher.run("push")
    reader.run("pull")
    rng = random.Random(3)
    published = 0
    for g in range(1, 7):
        generation(g)
        p = pusher.popen("push")
        time.sleep(rng.uniform(0, 0.6))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        fresh = Files(target, api, str(tmp_path / ("fresh%d" % g)))
        fresh.run("pull")
        seen = generations_seen(fresh)
        assert len(seen) == 1, "a fresh pull saw revisions %s mixed" % seen
        reader.run("pull")
        assert generations_seen(reader) == seen
        published = int(seen.pop())
    # Pushing again finishes what a killed push began (reusing what it uploaded on v3).
    if published != 6:
        pusher.run("push")
    reader.run("pull")
    assert generations_seen(reader) == {b"6"}


@pytest.mark.parametrize("api", APIS)
def test_a_killed_puller_leaves_whole_files_only(target, tmp_path, api):
    pusher = Files(target, api, str(tmp_path / "pusher"))
    reader = Files(target, api, str(tmp_path / "reader"))
    names = ["f%d" % i for i in range(8)]
    contents = {}
    for g in (1, 2):
        for n in names:
            contents[(g, n)] = os.urandom(1 << 20)
    rng = random.Random(5)
    for attempt in range(4):
        old, new = (1, 2) if attempt % 2 == 0 else (2, 1)
        for n in names:
            pusher.write(n, contents[(old, n)])
        pusher.run("push")
        reader.run("pull")
        for n in names:
            pusher.write(n, contents[(new, n)])
        pusher.run("push")
        p = reader.popen("pull")
        time.sleep(rng.uniform(0, 0.5))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        for n in names:
            assert reader.read(n) in (contents[(old, n)], contents[(new, n)]), n
        reader.run("pull")
        assert all(reader.read(n) == contents[(new, n)] for n in names)
        assert reader.run("status").stdout == "Already up-to-date.\n"


@pytest.mark.parametrize("api", APIS)
def test_a_corrupted_blob_makes_pull_exit_5_and_touches_nothing(target, tmp_path, api):
    a = Files(target, api, str(tmp_path / "a"))
    b = Files(target, api, str(tmp_path / "b"))
    a.write("one", "first\n")
    a.write("two", os.urandom(2 << 20))
    a.run("push")
    b.run("pull")
    before = b.tree()
    a.write("one", "second\n")
    a.write("two", os.urandom(2 << 20))
    a.run("push")
    raw = Raw(target, api)
    _, manifest = raw.manifest()
    victim = manifest["files"]["two"]["chunks"][1]
    raw.put("blobs/" + victim, base64.urlsafe_b64encode(b"not the chunk").decode().rstrip("="))
    p = b.run("pull", rc=5)
    assert "does not match its hash" in p.stderr
    assert b.tree() == before
    assert os.listdir(os.path.join(b.path, ".musubi-files", "tmp")) == []
    assert b.json("status", rc=2)["pull"] == [{"path": "one", "op": "modify"},
                                              {"path": "two", "op": "modify"}]
    # The next revision names other blobs, and the pull goes through.
    a.write("two", os.urandom(2 << 20))
    a.run("push")
    b.run("pull")
    assert b.tree() == a.tree()


@pytest.mark.parametrize("api", APIS)
def test_watch_pulls_each_new_revision(target, tmp_path, api):
    a = Files(target, api, str(tmp_path / "a"))
    w = Files(target, api, str(tmp_path / "w"))
    watcher = w.popen("watch")
    try:
        for i in range(3):
            a.write("conf", "rev %d\n" % i)
            a.write("bin/x", "#!/bin/sh\n", 0o700)
            a.run("push")
            harness.wait_for("the watcher pulls rev %d" % (i + 1), lambda: w.tree() == a.tree())
        a.run("push")  # nothing to push: no new revision
        os.remove(os.path.join(a.path, "conf"))
        a.run("push")
        harness.wait_for("the watcher deletes conf", lambda: w.tree() == a.tree())
        assert w.run("status").stdout == "Already up-to-date.\n"
    finally:
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=10) == 0


@pytest.mark.parametrize("api", APIS)
def test_gc_keeps_the_last_revisions_and_log_lists_them(target, tmp_path, api):
    a = Files(target, api, str(tmp_path / "a"))
    for i in range(5):
        a.write("data", os.urandom(100 * 1024))
        a.run("push", "-m", "push %d" % i)
    log = a.json("log")["revisions"]
    assert [r["rev"] for r in log] == [5, 4, 3, 2, 1]
    assert log[0]["msg"] == "push 4" and log[0]["parent"] == log[1]["root"]
    result = a.json("gc", "--keep", "2")
    assert result["deleted"] == {"history": 3, "manifests": 3, "blobs": 3}
    assert [r["rev"] for r in a.json("log")["revisions"]] == [5, 4]
    fresh = Files(target, api, str(tmp_path / "fresh"))
    fresh.run("pull")
    assert fresh.tree() == a.tree()
    assert a.json("gc", "--keep", "2")["deleted"] == {"history": 0, "manifests": 0, "blobs": 0}


def test_a_push_whose_published_answer_was_lost_is_not_reported_beaten(target, tmp_path):
    """The Txn that publishes HEAD is applied, but its answer never reaches the pusher (a
    proxy holds it past --timeout, then drops it). The push finds its own HEAD by reading
    it: sending the Txn again would fail its compare and report the push beaten (exit 3)."""
    txn = "/etcdserverpb.KV/Txn"
    proxy = AnswerLosingProxy("127.0.0.1:%d" % target.client_port,
                              lose=lambda method, n: method == txn and n == 1)
    try:
        a = Files(types.SimpleNamespace(url=proxy.url), "3", str(tmp_path / "a"))
        a.write("bin/run.sh", "#!/bin/sh\necho ok\n", 0o755)
        p = a.run("--timeout", "1s", "push", "-m", "answer lost")
        assert proxy.calls.count(txn) == 1, proxy.calls
    finally:
        proxy.close()
    head, _ = Raw(target, "3").manifest()
    assert head["rev"] == 1 and head["msg"] == "answer lost", (head, p.stderr)
    b = Files(target, "3", str(tmp_path / "b"))
    b.run("pull")
    assert b.tree() == a.tree()
    assert Files(target, "3", a.path).run("status").stdout == "Already up-to-date.\n"


@pytest.mark.parametrize("api", APIS)
def test_exit_codes_for_an_empty_share_and_a_store_that_is_down(target, tmp_path, api):
    a = Files(target, api, str(tmp_path / "a"))
    assert "is empty" in a.run("pull", rc=5).stderr
    a.run("pull", "--allow-empty")
    assert a.run("status").stdout == "Already up-to-date.\n"
    down = harness.Server("musubi", str(tmp_path))  # never started: nothing listens there
    d = Files(down, api, str(tmp_path / "d"))
    d.run("--timeout", "1s", "status", rc=4)
    p = subprocess.run([harness.musubi_bin(), "files", "--dir", str(tmp_path / "missing"),
                        "status"], capture_output=True, text=True)
    assert p.returncode == 1
