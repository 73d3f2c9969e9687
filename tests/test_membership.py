"""Membership at runtime, on real processes: etcd's /v2/members API (status codes and
bodies as etcd 3.4 answers them, 409 where 3.4 answers a bare 500), learners that vote only
once caught up, removing the leader, a new member fed by a snapshot, `--force-new-cluster`,
`--initial-cluster-state existing`, `--discovery` served by another musubi cluster, and the
`musubi cluster` and Debian etcdctl (`ETCDCTL_API=2`) member commands."""

import json
import os
import shutil
import subprocess
import time

import pytest

from harness import ETCDCTL_BIN, free_port, musubi_bin, target_kind, wait_for

pytestmark = pytest.mark.skipif(
    target_kind() == "etcd", reason="musubi's membership behaviour (etcd 3.4 lacks learners via v2)")


def members(server):
    st, _, body = server.request("GET", "/v2/members")
    assert st == 200, body
    return json.loads(body)["members"]


def post_member(server, body, content_type="application/json"):
    st, h, raw = server.request("POST", "/v2/members", body=body,
                                headers={"Content-Type": content_type})
    return st, json.loads(raw) if raw else None


def leader_of(server):
    st, _, body = server.request("GET", "/v2/members/leader")
    return json.loads(body)["id"] if st == 200 else None


def put(server, key, value):
    st, _, body = server.request("PUT", "/v2/keys/" + key, body="value=" + value)
    assert st in (200, 201), (st, body)
    return json.loads(body)


def value(server, key):
    st, _, body = server.request("GET", "/v2/keys/" + key)
    return json.loads(body)["node"]["value"] if st == 200 else None


def joining(fleet, name, existing, extra=()):
    """A member started with `--initial-cluster-state existing` after `member add`."""
    peer = free_port()
    initial = ",".join("%s=http://127.0.0.1:%d" % (m.name, m.peer_port) for m in existing)
    initial += ",%s=http://127.0.0.1:%d" % (name, peer)
    return fleet.spawn("musubi", name=name, peer_port=peer, extra_args=[
        "--initial-cluster", initial, "--initial-cluster-state", "existing"] + list(extra))


def test_members_api_answers_as_etcd(fleet):
    a, b, c = fleet.cluster(3)
    assert sorted(m["name"] for m in members(a)) == ["n1", "n2", "n3"]
    st, h, _ = a.request("GET", "/v2/members")
    assert "x-etcd-cluster-id" in h

    st, body = post_member(a, '{"peerURLs":["http://127.0.0.1:1"]}', "application/x-www-form-urlencoded")
    assert st == 415 and body == {
        "message": "Bad Content-Type application/x-www-form-urlencoded, accept application/json"}
    st, body = post_member(a, "nope")
    assert st == 400 and "message" in body
    st, body = post_member(a, '{"peerURLs":["bad"]}')
    assert st == 400 and "URL scheme must be http, https, unix, or unixs: bad" in body["message"]
    st, body = post_member(a, json.dumps({"peerURLs": ["http://127.0.0.1:%d" % b.peer_port]}))
    assert st == 409 and body == {"message": "etcdserver: peerURL exists"}

    url = "http://127.0.0.1:%d" % free_port()
    st, added = post_member(a, json.dumps({"peerURLs": [url]}))
    assert st == 201, added
    assert added["name"] == "" and added["peerURLs"] == [url] and added["clientURLs"] == []
    # unlike etcd 3.4, the unstarted member is a learner: the quorum is still 2 of 3
    assert added.get("isLearner") is True
    put(b, "still", "writable")
    listed = {m["id"]: m for m in members(c)}
    assert listed[added["id"]]["peerURLs"] == [url]

    new_url = "http://127.0.0.1:%d" % free_port()
    st, _, body = a.request("PUT", "/v2/members/" + added["id"], body=json.dumps({"peerURLs": [new_url]}),
                            headers={"Content-Type": "application/json"})
    assert st == 204 and body == b""
    assert {m["id"]: m for m in members(b)}[added["id"]]["peerURLs"] == [new_url]

    st, _, body = a.request("DELETE", "/v2/members/" + added["id"])
    assert st == 204 and body == b""
    assert added["id"] not in [m["id"] for m in members(a)]
    st, _, body = a.request("DELETE", "/v2/members/" + added["id"])
    assert st == 410 and json.loads(body) == {"message": "Member permanently removed: " + added["id"]}
    st, _, body = a.request("DELETE", "/v2/members/zz")
    # byte for byte: etcd writes these errors without a trailing newline
    assert st == 404 and body == b'{"message":"No such member: zz"}', body


def test_a_new_member_catches_up_from_a_snapshot_then_votes(fleet):
    a, b, c = fleet.cluster(3, extra_args=["--snapshot-count", "20"])
    for i in range(120):
        put([a, b, c][i % 3], "k%03d" % i, "v%d" % i)
    d = joining(fleet, "n4", [a, b, c])
    st, added = post_member(b, json.dumps({"peerURLs": ["http://127.0.0.1:%d" % d.peer_port]}))
    assert st == 201, added
    d.start()
    # the log was compacted long before: everything arrives in the snapshot
    wait_for("n4 to have every key", lambda: value(d, "k119") == "v119")
    assert value(d, "k000") == "v0"
    wait_for("n4 to be promoted to voter",
             lambda: not {m["id"]: m for m in members(a)}[added["id"]].get("isLearner"))
    assert "installed a snapshot from the leader" in d.log_tail(200000)
    put(d, "from-n4", "1")
    assert value(a, "from-n4?quorum=true") == "1"


def test_a_learner_waits_for_promote(fleet):
    a, b, c = fleet.cluster(3)
    d = joining(fleet, "n4", [a, b, c])
    st, added = post_member(a, json.dumps({"peerURLs": ["http://127.0.0.1:%d" % d.peer_port],
                                           "isLearner": True}))
    assert st == 201 and added["isLearner"] is True
    st, _, body = a.request("POST", "/v2/members/%s/promote" % added["id"])
    assert st == 409 and "in sync with leader" in json.loads(body)["message"], body
    d.start()
    put(a, "x", "1")
    wait_for("the learner to catch up", lambda: value(d, "x") == "1")
    time.sleep(1)  # the leader would have promoted it by now if it were going to
    assert {m["id"]: m for m in members(a)}[added["id"]].get("isLearner") is True
    st, _, body = a.request("POST", "/v2/members/%s/promote" % added["id"])
    assert st == 200, body
    assert not {m["id"]: m for m in members(b)}[added["id"]].get("isLearner")
    st, _, body = a.request("POST", "/v2/members/%s/promote" % added["id"])
    assert st == 409 and json.loads(body)["message"] == "etcdserver: can only promote a learner member"


def test_removing_the_leader(fleet):
    nodes = fleet.cluster(3)
    by_id = {m["id"]: s for m in members(nodes[0]) for s in nodes if s.name == m["name"]}
    old = wait_for("a leader", lambda: leader_of(nodes[0]))
    survivor = next(s for i, s in by_id.items() if i != old)
    st, _, body = survivor.request("DELETE", "/v2/members/" + old)
    assert st == 204, body
    new = wait_for("a new leader", lambda: leader_of(survivor))
    assert new != old and new in by_id
    put(survivor, "after-removal", "1")
    assert len(members(survivor)) == 2
    removed = by_id[old]
    wait_for("the removed member to stop", lambda: not removed.alive(), timeout=10)
    assert "permanently removed" in removed.log_tail()


def test_force_new_cluster_recovers_from_a_lost_majority(fleet):
    a, b, c = fleet.cluster(3)
    put(a, "before", "1")
    b.kill()
    c.kill()
    st, _, body = a.request("PUT", "/v2/keys/lost", body="value=1", timeout=30)
    assert st >= 300 and "cannot reach members" in json.loads(body).get("cause", ""), body
    a.stop()
    a.extra_args = a.extra_args + ["--force-new-cluster"]
    a.start()
    assert [m["name"] for m in members(a)] == ["n1"]
    assert value(a, "before") == "1"
    put(a, "after", "2")
    # the lost members come back as new ones, with fresh data dirs
    d = joining(fleet, "n4", [a])
    st, _ = post_member(a, json.dumps({"peerURLs": ["http://127.0.0.1:%d" % d.peer_port]}))
    assert st == 201
    d.start()
    wait_for("n4 to catch up", lambda: value(d, "after") == "2")


def test_existing_state_without_member_add_is_refused(fleet):
    a, b, c = fleet.cluster(3)
    d = joining(fleet, "n4", [a, b, c])
    with pytest.raises(RuntimeError):
        d.start(timeout=40)
    log = d.log_tail()
    assert "has no member with peer URLs http://127.0.0.1:%d" % d.peer_port in log, log
    assert "musubi cluster add n4" in log, log


def test_discovery_through_another_musubi(fleet):
    store = fleet.spawn("musubi", name="discovery").start()
    token = "/v2/keys/discovery/6c007a14875d53d9bf0ef5a6fc0257c817f0fb83"
    url = store.url + token
    st, _, _ = store.request("PUT", token + "/_config/size", body="value=3")
    assert st == 201
    nodes = [fleet.spawn("musubi", name="d%d" % i, extra_args=["--discovery", url]) for i in range(4)]
    for n in nodes[:3]:
        n.start(wait=False)
    for n in nodes[:3]:
        n.wait_ready(timeout=60)
    assert sorted(m["name"] for m in members(nodes[0])) == ["d0", "d1", "d2"]
    put(nodes[0], "formed", "yes")
    wait_for("replication", lambda: value(nodes[2], "formed") == "yes")
    # a fourth member finds the cluster full
    with pytest.raises(RuntimeError):
        nodes[3].start(timeout=30)
    assert "discovery: cluster is full" in nodes[3].log_tail()


def musubi_cluster(server, *args, rc=0):
    p = subprocess.run([musubi_bin(), "cluster", "--endpoints", server.url] + list(args),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == rc, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout + p.stderr


def etcdctl(server, *args, rc=0):
    p = subprocess.run([ETCDCTL_BIN, "--endpoints", server.url] + list(args), capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, ETCDCTL_API="2"))
    assert p.returncode == rc, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout + p.stderr


@pytest.mark.parametrize("tool", ["etcdctl", "musubi"])
def test_member_commands(fleet, tool):
    run = etcdctl if tool == "etcdctl" else musubi_cluster
    add, remove, health = (("member", "add"), ("member", "remove"), ("cluster-health",)) \
        if tool == "etcdctl" else (("add",), ("remove",), ("health",))
    a, b, c = fleet.cluster(3)
    listed = run(a, "member", "list") if tool == "etcdctl" else run(a, "list")
    lines = listed.strip().splitlines()
    assert len(lines) == 3 and sum("isLeader=true" in l for l in lines) == 1, listed
    for s in (a, b, c):
        assert "name=%s peerURLs=http://127.0.0.1:%d clientURLs=%s" % (s.name, s.peer_port, s.url) in listed
    out = run(a, *health)
    assert out.endswith("cluster is healthy\n") and out.count("is healthy: got healthy result") == 3, out

    d = joining(fleet, "n4", [a, b, c])
    out = run(a, *add, "n4", "http://127.0.0.1:%d" % d.peer_port)
    assert out.startswith("Added member named n4 with ID "), out
    assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in out and \
        "n4=http://127.0.0.1:%d" % d.peer_port in out, out
    new_id = out.split()[6]
    listed = run(a, "member", "list") if tool == "etcdctl" else run(a, "list")
    assert "%s[unstarted]: peerURLs=http://127.0.0.1:%d" % (new_id, d.peer_port) in listed, listed
    d.start()
    wait_for("n4 to vote", lambda: not {m["id"]: m for m in members(a)}[new_id].get("isLearner"))
    out = run(a, *health)
    assert out.count("is healthy: got healthy result") == 4, out

    out = run(a, *remove, "1234", rc=1)
    assert "Couldn't find a member in the cluster with an ID of 1234." in out, out
    out = run(a, *remove, new_id)
    assert out == "Removed member %s from cluster\n" % new_id, out
    wait_for("n4 to stop", lambda: not d.alive(), timeout=10)
    c.kill()
    out = run(a, *health, rc=5)
    assert "cluster is degraded" in out and "is unreachable" in out, out


def test_a_whole_cluster_outage_is_survived(fleet):
    """Every member killed at once (a power cut): all restart from their data dirs with the
    same flags, elect a leader and keep every acknowledged write."""
    nodes = fleet.cluster(3)
    for i in range(30):
        put(nodes[i % 3], "outage/k%d" % i, str(i))
    for n in nodes:
        n.kill()
    for n in nodes:
        n.start(wait=False)
    for n in nodes:
        n.wait_ready()
    wait_for("a leader after the outage", lambda: leader_of(nodes[0]))
    put(nodes[1], "outage/after", "yes")
    for n in nodes:
        wait_for("%s to serve every write" % n.name,
                 lambda n=n: value(n, "outage/after") == "yes")
        assert all(value(n, "outage/k%d" % i) == str(i) for i in range(30))


@pytest.mark.parametrize("big_values", [0, 4], ids=["small", "past-2MiB"])
def test_a_member_far_behind_catches_up_from_a_snapshot(fleet, big_values):
    """A member down while the others compact their logs past what it has gets a snapshot
    when it returns, then the entries after it; also a snapshot (and appends) larger
    than an HTTP server's default body limit of 2 MiB, which the peer port once refused
    with 413, so that the member never caught up."""
    nodes = fleet.cluster(3, extra_args=["--snapshot-count", "20"])
    leader = wait_for("a leader", lambda: leader_of(nodes[0]))
    lead_name = {m["id"]: m["name"] for m in members(nodes[0])}[leader]
    a = next(n for n in nodes if n.name == lead_name)
    b, c = [n for n in nodes if n is not a]
    put(a, "before", "1")
    big = "x" * 800_000
    for i in range(big_values):
        put(a, "big/%d" % i, big)
    c.stop()
    for i in range(150):
        put([a, b][i % 2], "behind/k%03d" % i, str(i))
        # openraft keeps log entries that a retried append to the stopped member still
        # covers; pacing the writes gives its purge the moments between retries
        time.sleep(0.01)
    c.start()
    put(a, "after", "2")
    wait_for("the returning member to catch up", lambda: value(c, "after") == "2")
    assert value(c, "behind/k000") == "0" and value(c, "behind/k149") == "149"
    assert value(c, "before") == "1"
    assert all(value(c, "big/%d" % i) == big for i in range(big_values))
    assert "installed a snapshot from the leader" in c.log_tail(200000)


def test_a_member_that_lost_its_data_is_refused_then_replaced(fleet):
    """A founding member restarted with an empty data dir would vote with an empty log;
    it is refused, as etcd refuses it, and the remedy the message gives works."""
    a, b, c = fleet.cluster(3)
    put(a, "k", "v")
    old_id = next(m["id"] for m in members(a) if m["name"] == "n3")
    c.stop()
    shutil.rmtree(c.data_dir)
    with pytest.raises(RuntimeError):
        c.start(timeout=20)
    log = c.log_tail()
    assert "member n3 (%s) has already been bootstrapped" % old_id in log, log
    assert "musubi cluster remove %s" % old_id in log, log
    # n3 may have been the leader: until the other two have elected one, the request is
    # refused with etcd's no-leader error, and the operator tries again
    def removed():
        st, _, body = a.request("DELETE", "/v2/members/" + old_id)
        assert st == 204 or (st == 500 and b"no leader" in body), (st, body)
        return st == 204
    wait_for("n3 to be removed", removed)
    fresh = joining(fleet, "n3", [a, b])
    st, _ = post_member(a, json.dumps({"peerURLs": ["http://127.0.0.1:%d" % fresh.peer_port]}))
    assert st == 201
    fresh.start()
    wait_for("the replacement to catch up", lambda: value(fresh, "k") == "v")
