"""Backups: Maintenance.Snapshot through `etcdctl snapshot save` and `musubi snapshot save`,
and `musubi snapshot restore` into a NEW 3-member cluster that holds the same keys,
values, revisions, leases and compaction (and, once HashKV is served, equal hashes on all
members); a corrupt or cut file is refused; a snapshot taken under a write load is one
revision's state.

Only the first test (etcdctl's framing: 512*k + 32 bytes ending in the SHA-256 of what
precedes it) applies to etcd 3.4 too; restore reads musubi's own file format, so the
rest skip when MUSUBI_TEST_TARGET=etcd."""

import base64
import hashlib
import json
import os
import subprocess
import threading

import pytest

import harness
from harness import wait_for
from v3util import ChunkedStream, Ctl3, Gateway

musubi_only = pytest.mark.skipif(harness.target_kind() == "etcd",
                                 reason="restore reads musubi's own snapshot format")


def musubi(*args, rc=0):
    p = subprocess.run([harness.musubi_bin()] + list(args), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == rc, "musubi %s: exit %d (want %d)\nstdout: %r\nstderr: %r" % (
        " ".join(args), p.returncode, rc, p.stdout, p.stderr)
    return p


def check_framing(path):
    data = open(path, "rb").read()
    assert len(data) % 512 == 32, len(data)
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    return data


def everything(ctl, *extra):
    """Every key with its revisions, and the header revision, read through etcdctl."""
    got = json.loads(ctl("get", "", "--prefix", "-w", "json", *extra))
    kvs = [(base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")),
            kv["create_revision"], kv["mod_revision"], kv["version"], kv.get("lease", 0))
           for kv in got.get("kvs", [])]
    return got["header"]["revision"], kvs


def restore_cluster(fleet, snapshot, names, token="restored-cluster", extra=()):
    """`musubi snapshot restore` of `snapshot` for each of `names`, then the members started
    from those data dirs with the same flags; returns them ready."""
    peers = {n: harness.free_port() for n in names}
    initial = ",".join("%s=http://127.0.0.1:%d" % (n, peers[n]) for n in names)
    members = []
    for n in names:
        data_dir = os.path.join(fleet.workdir, "restored-%s" % n)
        musubi("snapshot", "restore", snapshot, "--data-dir", data_dir, "--name", n,
               "--initial-cluster", initial, "--initial-cluster-token", token,
               "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peers[n], *extra)
        members.append(fleet.spawn("musubi", name=n, data_dir=data_dir, peer_port=peers[n],
                                   extra_args=["--initial-cluster", initial,
                                               "--initial-cluster-token", token]))
    return fleet.start_together(members)


def test_etcdctl_snapshot_save_takes_the_stream_whole(fleet):
    target = fleet.target().start()
    ctl = Ctl3(target)
    for i in range(200):
        ctl("put", "key%03d" % i, "v" * (i * 10))
    path = os.path.join(fleet.workdir, "etcdctl.db")
    out = ctl("snapshot", "save", path)
    assert out.endswith("Snapshot saved at %s\n" % path), out
    check_framing(path)
    assert not os.path.exists(path + ".part")
    # One member only, as etcdctl insists before it asks anything (exit 5, its code for a
    # failed save).
    code, _, err = Ctl3(target).run("--endpoints", "%s,%s" % (target.url, target.url),
                                    "snapshot", "save", path + "2")
    assert code == 5 and "snapshot must be requested to one selected node" in err, err
    if harness.target_kind() == "musubi":
        err = musubi("snapshot", "save", path + "2", "--endpoints",
                     "%s,%s" % (target.url, target.url), rc=5).stderr
        assert err.startswith("Error: snapshot must be requested to one selected node"), err


def test_the_gateway_streams_the_snapshot(fleet):
    target = fleet.target().start()
    ctl = Ctl3(target)
    for i in range(50):
        ctl("put", "g%02d" % i, "x" * 2000)
    stream = ChunkedStream(target.client_port, "/v3/maintenance/snapshot", {})
    try:
        assert stream.status == 200 and stream.chunked, stream.status_line
        body = b""
        while True:
            data = stream.chunk()
            if not data:
                break
            body += data
    finally:
        stream.close()
    # One JSON object a line (etcd's chunks need not follow the messages: large ones are
    # split by its HTTP buffering).
    results = [json.loads(line)["result"] for line in body.split(b"\n") if line.strip()]
    blobs = [base64.b64decode(r["blob"]) for r in results]
    remaining = [int(r.get("remaining_bytes", "0")) for r in results]
    data = b"".join(blobs)
    assert len(data) % 512 == 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]
    # The body counts down to 0; the digest comes alone, after it.
    assert len(blobs[-1]) == 32 and remaining[-2:] == [0, 0], remaining
    assert remaining[:-1] == sorted(remaining[:-1], reverse=True)


@musubi_only
def test_a_snapshot_restores_into_a_new_three_member_cluster(fleet):
    source = fleet.target(name="old").start()
    ctl = Ctl3(source)
    gw = Gateway(source)
    for i in range(30):
        ctl("put", "k%02d" % i, "first-%d" % i)
    ctl("put", "k00", "second")
    ctl("del", "k01")
    compact_at = gw.rev()
    ctl("compaction", str(compact_at))
    for i in range(5):
        ctl("put", "k%02d" % i, "after-%d" % i)
    lease = ctl("lease", "grant", "600").split()[1]
    ctl("put", "leased", "x", "--lease", lease)
    status, _, _ = source.request("PUT", "/v2/keys/conf/db/host", "value=10.0.0.1")
    assert status == 201
    before_rev, before = everything(ctl)
    old_members = ctl("member", "list", "-w", "json")

    by_etcdctl = os.path.join(fleet.workdir, "by-etcdctl.snap")
    by_musubi = os.path.join(fleet.workdir, "by-musubi.snap")
    ctl("snapshot", "save", by_etcdctl)
    out = musubi("snapshot", "save", by_musubi, "--endpoints", source.url).stdout
    assert out == "Snapshot saved at %s\n" % by_musubi
    for path in (by_etcdctl, by_musubi):
        check_framing(path)
        st = json.loads(musubi("snapshot", "status", path, "-w", "json").stdout)
        assert st["revision"] == before_rev and st["totalKey"] == len(before), st
    simple = musubi("snapshot", "status", by_musubi).stdout
    assert simple.split(", ")[1:3] == [str(before_rev), str(len(before))], simple
    source.stop()

    members = restore_cluster(fleet, by_etcdctl, ["r1", "r2", "r3"])
    ctls = [Ctl3(m) for m in members]
    for c in ctls:
        assert everything(c) == (before_rev, before)
        # The compaction came along: below it is gone, at it still readable.
        code, _, err = c.run("get", "k00", "--rev", str(compact_at - 1))
        assert code == 1 and "required revision has been compacted" in err, err
        assert everything(c, "--rev", str(compact_at))[1]
        out = c("lease", "timetolive", lease, "--keys")
        assert "attached keys([leased])" in out, out
        st, _, body = harness.raw_request(c.server.client_port, "GET", "/v2/keys/conf/db/host")
        assert st == 200 and json.loads(body)["node"]["value"] == "10.0.0.1", body
    # A new cluster: new ID, only the given members.
    listed = json.loads(ctls[0]("member", "list", "-w", "json"))
    assert sorted(m["name"] for m in listed["members"]) == ["r1", "r2", "r3"]
    assert listed["header"]["cluster_id"] != json.loads(old_members)["header"]["cluster_id"]
    # It goes on from the restored revision.
    ctls[1]("put", "new", "write")
    assert everything(ctls[2])[0] == before_rev + 1
    hashes = hashkv(members)
    if hashes is not None:
        assert len(set(hashes)) == 1 and len(hashes) == 3, hashes

    # musubi's own save restores the same state.
    alone = restore_cluster(fleet, by_musubi, ["solo"], token="solo")
    assert everything(Ctl3(alone[0])) == (before_rev, before)


def hashkv(members):
    """Each member's HashKV at the current revision, or None before HashKV is served."""
    eps = ",".join("127.0.0.1:%d" % m.client_port for m in members)
    p = subprocess.run([harness.ETCDCTL_BIN, "--endpoints", eps, "endpoint", "hashkv",
                        "-w", "json"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, ETCDCTL_API="3"))
    code, out, err = p.returncode, p.stdout, p.stderr
    if code != 0 and ("Unimplemented" in err or "does not serve" in err):
        return None
    assert code == 0, err
    return [e["HashKV"]["hash"] for e in json.loads(out)]


@musubi_only
def test_a_corrupt_or_cut_snapshot_is_refused(fleet):
    source = fleet.target().start()
    Ctl3(source)("put", "a", "1")
    path = os.path.join(fleet.workdir, "good.snap")
    musubi("snapshot", "save", path, "--endpoints", source.url)
    data = open(path, "rb").read()
    restore = ["--name", "x", "--initial-cluster", "x=http://127.0.0.1:1",
               "--initial-advertise-peer-urls", "http://127.0.0.1:1"]

    corrupt = os.path.join(fleet.workdir, "corrupt.snap")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x55
    open(corrupt, "wb").write(bytes(flipped))
    target_dir = os.path.join(fleet.workdir, "never")
    err = musubi("snapshot", "restore", corrupt, "--data-dir", target_dir, *restore,
                 rc=1).stderr
    assert err == "Error: snapshot file integrity check failed: sha256 mismatch (the file is corrupt)\n", err
    assert musubi("snapshot", "status", corrupt, rc=1).stderr.startswith("Error: ")

    cut = os.path.join(fleet.workdir, "cut.snap")
    open(cut, "wb").write(data[:-100])
    err = musubi("snapshot", "restore", cut, "--data-dir", target_dir, *restore, rc=1).stderr
    assert "sha256 checksum not found [bytes: %d]" % (len(data) - 100) in err, err
    assert not os.path.exists(target_dir)

    # A data dir in use is not overwritten.
    used = os.path.join(fleet.workdir, "used")
    os.makedirs(used)
    open(os.path.join(used, "keep"), "w").write("x")
    err = musubi("snapshot", "restore", path, "--data-dir", used, *restore, rc=1).stderr
    assert "exists and is not empty" in err, err


@musubi_only
def test_a_snapshot_under_a_write_load_is_one_revisions_state(fleet):
    source = fleet.target().start()
    gw = Gateway(source)
    base = gw.rev()
    stop = threading.Event()
    written = []

    def write():
        writer = Gateway(source)
        i = 0
        while not stop.is_set():
            # Key i holds i and is created at base + i + 1: a consistent state at
            # revision R holds exactly the keys below R - base.
            writer.put("load/%06d" % i, str(i))
            written.append(i)
            i += 1
        writer.close()

    threads = [threading.Thread(target=write)]
    threads[0].start()
    try:
        wait_for("the load to start", lambda: len(written) > 200)
        path = os.path.join(fleet.workdir, "busy.snap")
        musubi("snapshot", "save", path, "--endpoints", source.url)
        wait_for("writes after the snapshot", lambda: len(written) > 0)
    finally:
        stop.set()
        threads[0].join(30)
    restored = restore_cluster(fleet, path, ["busy"], token="busy")
    rev, kvs = everything(Ctl3(restored[0]))
    count = rev - base
    assert 200 < count <= len(written), (count, len(written))
    assert [(k, v, c) for k, v, c, _, _, _ in kvs] == [
        (b"load/%06d" % i, str(i).encode(), base + i + 1) for i in range(count)]


def test_with_auth_on_only_root_takes_a_snapshot(fleet):
    target = fleet.target().start()
    ctl = Ctl3(target)
    ctl("user", "add", "root:rootpw")
    ctl("user", "add", "alice:alicepw")
    ctl("auth", "enable")
    path = os.path.join(fleet.workdir, "auth.snap")
    code, _, err = ctl.run("snapshot", "save", path)
    assert code == 5 and "auth: user name is empty" in err, err
    code, _, err = ctl.run("--user", "alice:alicepw", "snapshot", "save", path)
    assert code == 5 and "auth: permission denied" in err, err
    assert not os.path.exists(path)
    ctl("--user", "root:rootpw", "snapshot", "save", path)
    check_framing(path)


@musubi_only
def test_snapshot_status_prints_etcdctls_shapes(fleet):
    """musubi's status of its file against etcdctl's of etcd's: the same layout (table
    borders and header, `hash, revision, keys, size`, the JSON fields)."""
    ours, theirs = fleet.target().start(), fleet.etcd().start()
    files = {}
    for name, server in (("musubi", ours), ("etcd", theirs)):
        ctl = Ctl3(server)
        ctl("put", "a", "1")
        files[name] = os.path.join(fleet.workdir, name + ".snap")
        ctl("snapshot", "save", files[name])
    etcd_status = lambda *w: Ctl3(theirs)("snapshot", "status", files["etcd"], *w)  # noqa: E731
    mine = lambda *w: musubi("snapshot", "status", files["musubi"], *w).stdout  # noqa: E731
    table, etcd_table = mine("-w", "table").splitlines(), etcd_status("-w", "table").splitlines()
    assert len(table) == len(etcd_table) == 5
    cells = lambda line: [c.strip() for c in line.split("|")]  # noqa: E731
    assert cells(table[1]) == cells(etcd_table[1]), (table, etcd_table)
    for line in (0, 2, 4):
        assert set(table[line]) == set(etcd_table[line]) == {"+", "-"}
    # Values right-aligned, as etcdctl's table.
    for row in (table[3], etcd_table[3]):
        assert all(c.endswith(" ") and not c.endswith("  ") for c in row.split("|")[1:-1]), row
    assert len(mine().split(", ")) == len(etcd_status().split(", ")) == 4
    assert list(json.loads(mine("-w", "json"))) == list(json.loads(etcd_status("-w", "json")))
