"""Safety at the peer port and around a leader's crash, on real processes.

- A stray process answering on a member's peer URL (here: a one-member cluster of its own,
  started on the peer URL of a member that was added but never started) must not talk any
  member out of its cluster, take its leadership, or change what it serves. etcd stamps
  every peer message with the cluster ID and refuses a mismatch; so does musubi.
- The lines `musubi cluster add` prints (`ETCD_*`) start the added member as they start etcd.
- A leader killed with -9 is replaced within the configured election timeouts.

Against MUSUBI_TEST_TARGET=etcd the stray and failover tests run on etcd 3.4 itself."""

import json
import os
import statistics
import subprocess
import time

import pytest

from harness import free_port, musubi_bin, target_kind, wait_for

ELECTION_MS = 1000
HEARTBEAT_MS = 100
TIMING = ["--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS)]


def leader_id(server):
    try:
        st, _, body = server.request("GET", "/v2/members/leader", timeout=1.0)
    except OSError:
        return None
    return json.loads(body).get("id") if st == 200 else None


def put(server, key, value, timeout=5.0):
    return server.request("PUT", "/v2/keys/" + key, body="value=" + value, timeout=timeout)


def quorum_value(server, key):
    st, _, body = server.request("GET", "/v2/keys/%s?quorum=true" % key)
    assert st == 200, (st, body)
    return json.loads(body)["node"]["value"]


def test_a_stray_cluster_on_an_added_members_peer_url_harms_no_member(fleet):
    members = fleet.cluster(3, extra_args=TIMING)
    a = members[0]
    stray_peer = free_port()

    def add():
        # etcd 3.4 refuses membership changes in the first 5 s of a cluster (500).
        st, _, body = a.request("POST", "/v2/members",
                                body=json.dumps({"peerURLs": ["http://127.0.0.1:%d" % stray_peer]}),
                                headers={"Content-Type": "application/json"})
        return st == 201
    wait_for("the member to be added", add, timeout=20, interval=0.5)
    # Not the added member: a one-member cluster of its own on the added member's peer URL.
    stray = fleet.target(name="stray", peer_port=stray_peer)
    stray.start()
    assert put(stray, "stray-key", "x")[0] in (200, 201)

    # The removal poll asks every peer (the stray included) every 3 s; the leader sends
    # the stray appends and heartbeats all along. Give both several rounds.
    deadline = time.time() + 12
    n = 0
    while time.time() < deadline:
        n += 1
        for m in members:
            assert m.alive(), "%s exited:\n%s" % (m.name, m.log_tail())
        st, _, body = put(members[n % 3], "k", str(n))
        assert st in (200, 201), (st, body)
        time.sleep(0.2)
    leaders = {leader_id(m) for m in members}
    assert len(leaders) == 1 and None not in leaders, leaders

    # A member restarted now rejoins its own cluster, not the stray's. Its return may
    # legitimately start an election (a slow restart under load times out), so the check
    # is that all three name one leader, not that it is the one from before. Slow to come
    # back is not the failure this looks for; following another leader is, and the message
    # says what each named last.
    b = members[1]
    b.kill()
    b.start()
    seen = []

    def agree():
        seen.append([leader_id(m) for m in members])
        return None not in seen[-1] and len(set(seen[-1])) == 1
    try:
        wait_for("b to follow its cluster's leader", agree, timeout=30)
    except AssertionError:
        raise AssertionError("the members do not name one leader (before b's restart: %s): "
                             "they named %s last; b alive: %s\n%s"
                             % (leaders, seen[-3:], b.alive(), b.log_tail()))
    st, _, body = put(b, "after-restart", "yes")
    assert st in (200, 201), (st, body)
    for m in members:
        assert quorum_value(m, "after-restart") == "yes"
        assert quorum_value(m, "k") == str(n)
        st, _, _ = m.request("GET", "/v2/keys/stray-key")
        assert st == 404, "%s serves the stray cluster's keys" % m.name
        assert m.alive(), "%s exited:\n%s" % (m.name, m.log_tail())


@pytest.mark.skipif(target_kind() == "etcd", reason="musubi's `cluster add` output")
def test_the_lines_cluster_add_prints_start_the_new_member(fleet):
    members = fleet.cluster(3, extra_args=TIMING)
    peer, client = free_port(), free_port()
    out = subprocess.run(
        [musubi_bin(), "cluster", "--endpoints", members[0].url, "add", "n4",
         "http://127.0.0.1:%d" % peer],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    printed = [line for line in out.stdout.splitlines() if line.startswith("ETCD_")]
    env = {name: value.strip('"') for name, value in (line.split("=", 1) for line in printed)}
    assert set(env) >= {"ETCD_NAME", "ETCD_INITIAL_CLUSTER", "ETCD_INITIAL_CLUSTER_STATE"}, out.stdout
    # Only what `cluster add` leaves to the operator: where to listen, and the data dir.
    new = fleet.spawn("musubi", name="n4", client_port=client, peer_port=peer,
                      style="listen-only", env=env)
    new.start()
    listed = members[0].wait_published(4)
    assert "n4" in {m["name"] for m in listed}
    assert put(new, "from-n4", "v")[0] in (200, 201)
    assert quorum_value(members[0], "from-n4") == "v"


def test_a_killed_leader_is_replaced_within_the_election_timeouts(fleet):
    """etcd's followers campaign after a randomised [E, 2E) of silence; the time from the
    kill to a leader on the survivors must stay within 2E and one Raft round, in the
    median of three kills (a single slow election on a loaded machine is not the bug)."""
    members = fleet.cluster(3, extra_args=TIMING)
    times = []
    for round_ in range(3):
        old = wait_for("a leader", lambda: leader_id(members[0]))
        victim = next(m for m in members if leader_id(m) == old and _is_self_leader(m))
        survivors = [m for m in members if m is not victim]
        victim.kill()
        killed = time.monotonic()
        wait_for("a new leader", lambda: all(leader_id(s) not in (None, old) for s in survivors),
                 timeout=30, interval=0.02)
        times.append(time.monotonic() - killed)
        victim.start()
        wait_for("the old leader to rejoin", lambda: leader_id(victim) not in (None, old))
    bound = 2 * ELECTION_MS / 1000 + 0.5
    assert statistics.median(times) < bound, "new leader after %s s (bound %.1f s)" % (
        ["%.2f" % t for t in times], bound)


def _is_self_leader(server):
    st, _, body = server.request("GET", "/v2/stats/self", timeout=1.0)
    return st == 200 and json.loads(body).get("state") == "StateLeader"


@pytest.mark.skipif(target_kind() == "etcd",
                    reason="etcd 3.4 times such writes out; musubi retries them with request IDs")
def test_writes_forwarded_to_a_frozen_leader_are_retried_and_applied_once(fleet):
    """Followers forward writes to the leader; freezing it (SIGSTOP) loses their replies.
    Each write carries a request ID chosen by the follower, which sends it again to the
    next leader; the state machine applies an ID once. So every write is acknowledged,
    none is applied twice (each in-order key's value is unique), and none is lost."""
    import signal
    import threading
    members = fleet.cluster(3, extra_args=TIMING)
    old = wait_for("a leader", lambda: leader_id(members[0]))
    leader = next(m for m in members if _is_self_leader(m))
    followers = [m for m in members if m is not leader]
    results, stop = [], threading.Event()

    def client(n):
        i = 0
        while not stop.is_set():
            value = "c%d-%d" % (n, i)
            i += 1
            try:
                st, _, body = followers[n % 2].request("POST", "/v2/keys/queue",
                                                       body="value=" + value, timeout=15)
            except OSError as e:
                st, body = None, repr(e)
            results.append((value, st, body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.killpg(leader.proc.pid, signal.SIGSTOP)
    try:
        wait_for("a new leader", lambda: all(leader_id(f) not in (None, old) for f in followers),
                 timeout=15)
        time.sleep(1.5)
    finally:
        os.killpg(leader.proc.pid, signal.SIGCONT)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()

    failed = [(v, st, body) for v, st, body in results if st != 201]
    assert not failed, "writes not acknowledged across the freeze: %s" % failed[:5]
    st, _, body = followers[0].request("GET", "/v2/keys/queue?quorum=true&sorted=true")
    assert st == 200, body
    stored = [n["value"] for n in json.loads(body)["node"].get("nodes", [])]
    duplicated = {v for v in stored if stored.count(v) > 1}
    assert not duplicated, "applied twice: %s" % sorted(duplicated)
    acknowledged = {v for v, st, _ in results if st == 201}
    assert acknowledged <= set(stored), "acknowledged but lost: %s" % (acknowledged - set(stored))
    assert len(results) > 20, "too few writes to mean anything: %d" % len(results)


def test_a_leader_stopped_gracefully_hands_over_its_leadership_first(fleet):
    """As etcd does on SIGTERM, a leader transfers its leadership before it exits: when it
    is gone, a survivor already names the new leader, and local (serializable) reads on
    every survivor already show the last write it acknowledged."""
    members = fleet.cluster(3, extra_args=TIMING)
    for round_ in range(3):
        leader = wait_for("a leader", lambda: next((m for m in members if _is_self_leader(m)), None))
        old = leader_id(leader)
        st, _, body = put(leader, "handover", str(round_))
        assert st in (200, 201), body
        leader.stop()
        survivors = [m for m in members if m is not leader]
        for s in survivors:
            st, _, body = s.request("GET", "/v2/keys/handover")
            assert st == 200 and json.loads(body)["node"]["value"] == str(round_), (s.name, body)
        assert leader_id(survivors[0]) not in (None, old), "no leader named right after the stop"
        leader.start()
        wait_for("the old leader to rejoin", lambda: leader_id(leader) not in (None, old))
