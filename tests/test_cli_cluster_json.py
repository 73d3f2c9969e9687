"""`musubi cluster -o json`: every command prints one JSON document (list, add, remove,
update, health), with the same exit codes as its text form; and `musubi bench` draws its
progress only on a terminal. The CLI speaks etcd's v2 API, so every test runs against
etcd 3.4 servers too (MUSUBI_TEST_TARGET=etcd)."""

import json
import os
import pty
import subprocess

from harness import free_port, musubi_bin, wait_for


def cluster_cli(server, *args, rc=0):
    """The command's JSON output; `rc=None` returns None on a failure instead of asserting."""
    p = subprocess.run([musubi_bin(), "cluster", "--endpoints", server.url, "-o", "json"]
                       + list(args), capture_output=True, text=True, timeout=60)
    if rc is None and p.returncode != 0:
        return None
    assert rc is None or p.returncode == rc, (args, p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else None


def test_list_add_update_remove_as_json(fleet):
    a, b, c = fleet.cluster(3)
    listed = cluster_cli(a, "list")["members"]
    assert sorted(m["name"] for m in listed) == ["n1", "n2", "n3"]
    assert sum(m["isLeader"] for m in listed) == 1
    assert all(m["clientURLs"] and m["peerURLs"] for m in listed), listed

    url = "http://127.0.0.1:%d" % free_port()
    # etcd refuses a member add until its members have been connected for a few seconds.
    added = wait_for("the add", lambda: cluster_cli(a, "add", "n4", url, rc=None), timeout=30)
    assert added["member"]["peerURLs"] == [url]
    assert added["env"]["ETCD_NAME"] == "n4"
    assert added["env"]["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    assert "n4=" + url in added["env"]["ETCD_INITIAL_CLUSTER"].split(",")
    new_id = added["member"]["id"]

    moved = "http://127.0.0.1:%d" % free_port()
    assert cluster_cli(a, "update", new_id, moved) == {"updated": new_id, "peerURLs": [moved]}
    wait_for("the update", lambda: [m["peerURLs"] for m in cluster_cli(a, "list")["members"]
                                    if m["id"] == new_id] == [[moved]])
    assert cluster_cli(a, "remove", new_id) == {"removed": new_id}
    # Removed before: the server's 410 Gone counts as done, as in etcd's client.
    assert cluster_cli(a, "remove", new_id) == {"removed": new_id}
    # An unknown ID fails as the text form does, on stderr.
    assert cluster_cli(a, "remove", "1234", rc=1) is None


def test_health_as_json_and_its_exit_code(fleet):
    a, b, c = fleet.cluster(3)
    report = cluster_cli(a, "health")
    assert report["cluster"] == "healthy"
    assert sorted(m["health"] for m in report["members"]) == ["healthy"] * 3
    assert all(m["url"] for m in report["members"])
    # A follower goes: had the leader gone, the others would answer unhealthy until they
    # elected another, and the report would depend on when it was asked.
    leader = next(m["name"] for m in cluster_cli(a, "list")["members"] if m["isLeader"])
    down = next(s for s in (b, c) if s.name != leader)
    down.kill()
    report = cluster_cli(a, "health", rc=5)
    assert report["cluster"] == "degraded"
    states = {m["name"]: m["health"] for m in report["members"]}
    expected = {m: "unreachable" if m == down.name else "healthy" for m in ("n1", "n2", "n3")}
    assert states == expected

    # Without its quorum a member answers /health with 503 {"health":"false"}: unhealthy,
    # not unreachable (it answered), as etcdctl reads it.
    other = next(s for s in (b, c) if s is not down)
    other.kill()
    def asked_member_state():
        report = cluster_cli(a, "health", rc=5)
        return {m["name"]: m["health"] for m in report["members"]}[a.name]
    wait_for("the asked member to answer unhealthy", lambda: asked_member_state() == "unhealthy",
             timeout=30)


def test_bench_shows_progress_only_on_a_terminal(fleet):
    server = fleet.target().start()
    for budget in (["--total", "4000"], ["--duration", "2s"]):
        args = [musubi_bin(), "bench", "put", "--endpoints", server.url, "--conns", "2"] + budget
        piped = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert piped.returncode == 0, piped.stderr
        assert "requests" not in piped.stderr and "\r" not in piped.stderr, piped.stderr
        main, sub = pty.openpty()
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=sub, stdin=subprocess.DEVNULL)
        os.close(sub)
        drawn = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the bench closed its end
                break
            if not chunk:
                break
            drawn += chunk
        os.close(main)
        report = p.stdout.read().decode()
        assert p.wait(60) == 0
        assert report.strip(), "the report is on stdout either way"
        assert b"requests" in drawn, drawn
