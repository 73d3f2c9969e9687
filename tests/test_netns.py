"""Clusters of three and five members, each in its own network namespace with a real
address on a bridge: forming, serving, partitions (link down and packet drop), the loss
of the leader (kill -9, also under a write load), quorum loss failing fast, catch-up
after healing, and Pre-Vote keeping a returning member from deposing a healthy leader.

Needs root (ip netns, veth, bridge, nft); see netns.py for the topology."""

import json
import re
import threading
import time

import pytest

import netns
from netns import acked, wait_until

_unavailable = netns.why_unavailable()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=_unavailable or "")

ELECTION_TIMEOUT = 0.5  # seconds; matches netns.TIMING


@pytest.fixture
def cluster_of(request):
    """cluster_of(n) starts n members in namespaces; all are torn down after the test, and
    on failure the tail of every member's log is printed."""
    made = []

    def make(size):
        c = netns.Cluster(size)
        made.append(c)
        return c.start()
    yield make
    failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False)
                 for w in ("setup", "call"))
    for c in made:
        if failed:
            print(c.logs())
        c.close(keep_logs=failed)


def write_keys(cluster, through, prefix, count):
    """Writes prefix/0..count-1 through the members `through` (round robin, retrying
    during elections); returns {key: value} of what was acknowledged."""
    written = {}
    for n in range(count):
        key, value = "%s/%d" % (prefix, n), "v%d" % n
        cluster.put_acked(through[n:] + through[:n], key, value)
        written[key] = value
    return written


def wait_serves(member, written, timeout=20.0):
    """Waits until `member` serves every key of `written` locally with its value."""
    def serves_all():
        missing = {k: v for k, v in written.items() if member.value(k) != v}
        assert not missing, "%s lacks %d keys, e.g. %s" % (member, len(missing), sorted(missing)[:3])
        return True
    wait_until("%s serves all %d written keys" % (member, len(written)), serves_all, timeout)


def test_three_members_form_a_cluster_and_serve(cluster_of):
    c = cluster_of(3)
    c.leader()
    written = {}
    for m in c.members:
        st, body = m.put("form/" + m.name, m.ip)
        assert acked(st), "%s refused a write: %d %s" % (m, st, body)
        written["form/" + m.name] = m.ip
    for m in c.members:
        wait_serves(m, written)
    # Every member comes to list every member with its real (non-loopback) client URL
    # (each member publishes its own URLs through Raft shortly after start).
    expected = sorted("http://%s:2379" % o.ip for o in c.members)
    for m in c.members:
        wait_until("%s lists every client URL" % m, lambda: client_urls(m) == expected)
    c.converged()


def client_urls(member):
    st, _, body = member.request("GET", "/v2/members")
    assert st == 200, (member, st, body)
    return sorted(u for m in json.loads(body)["members"] for u in m["clientURLs"])


@pytest.mark.parametrize("how", ["link-down", "packet-drop"])
def test_each_member_in_turn_partitioned_then_catches_up(cluster_of, how):
    c = cluster_of(3)
    c.leader()
    for cut in c.members:
        majority = c.others(cut)
        c.net.cut(cut.index, how)
        written = write_keys(c, majority, "cut-%s/%s" % (how, cut.name), 5)
        assert c.leader(among=majority) is not cut
        if how == "packet-drop":
            # The test still reaches a member behind the firewall: it must not have seen
            # the majority's writes, or the partition was not one.
            assert all(cut.value(k) is None for k in written), "%s got writes while cut off" % cut
        c.net.heal(cut.index)
        wait_serves(cut, written)
        c.converged()


def test_leader_killed_new_leader_writes_continue_and_it_rejoins(cluster_of):
    c = cluster_of(3)
    old = c.leader()
    old_term = old.term()
    old.kill()
    survivors = c.others(old)
    new = c.leader(among=survivors)
    assert new.term() > old_term
    written = write_keys(c, survivors, "failover", 5)
    old.start()
    old.wait_serving()
    wait_serves(old, written)
    c.converged()


class NoQuorumAnswerTooSlow(AssertionError):
    """A write without quorum was refused, but not fast, or without naming who is gone."""


# A leader cut off without a reset (dropped packets, link down) once held forwarded writes
# until the client's timeout; now they fail as fast as when it is killed.
@pytest.mark.parametrize("third_loss", ["kill", "packet-drop", "link-down"])
def test_five_members_survive_two_losses_and_fail_fast_without_quorum(cluster_of, third_loss):
    c = cluster_of(5)
    first_leader = c.leader()
    # Two lost: the leader dies (kill -9), a follower is cut off (link down).
    first_leader.kill()
    cut_off = c.others(first_leader)[0]
    c.net.link_down(cut_off.index)
    remaining = c.others(first_leader, cut_off)
    written = write_keys(c, remaining, "five/two-lost", 5)
    # The third loss, the new leader, leaves two of five: no quorum. Each member first
    # takes a write, so the followers have just forwarded to that leader, as under load.
    third = c.leader(among=remaining)
    for m in remaining:
        written.update(write_keys(c, [m], "five/via-" + m.name, 1))
    if third_loss == "kill":
        third.kill()
    else:
        c.net.cut(third.index, third_loss)
    lost = [first_leader, cut_off, third]
    answers = [refused_write(m) for m in c.others(*lost)]
    # Heal: restart the dead, reconnect the cut off; all five converge.
    for m in lost:
        if not m.alive():
            m.start()
        c.net.heal(m.index)
    written.update(write_keys(c, c.members, "five/healed", 5))
    for m in c.members:
        wait_serves(m, written)
    c.converged()
    for answer in answers:
        assert_refused_fast_naming(answer, lost)


def refused_write(member):
    """Writes on a member without quorum; asserts it was refused with a JSON error and
    returns (member, seconds taken, error) for assert_refused_fast_naming."""
    started = time.time()
    st, body = member.put("five/no-quorum", "x", timeout=30.0)
    took = time.time() - started
    assert not acked(st) and st >= 300, "%s acknowledged a write without quorum: %d %s" % (member, st, body)
    error = json.loads(body)
    assert "errorCode" in error, error
    return member, took, error


# An election wait (3 election timeouts) plus a 0.5s probe of the peers is about 2s; the
# margin is for a loaded machine. A refusal after the 6s request timeout is a hang cut short.
FAST_REFUSAL = 4.0


def assert_refused_fast_naming(answer, lost):
    member, took, error = answer
    text = json.dumps(error)
    unnamed = [m.name for m in lost if "%s (http://%s:" % (m.name, m.ip) not in text]
    if took >= FAST_REFUSAL or unnamed:
        raise NoQuorumAnswerTooSlow("%s refused a write without quorum after %.1fs (limit %.1fs), "
                                    "not naming %s: %s" % (member, took, FAST_REFUSAL, unnamed, text))


class WriteLoad:
    """Writers that put unique keys through every member until stopped, recording each
    write acknowledged with a 2xx and when. A refused or failed write is not recorded:
    its outcome is unknown, so it may or may not be present afterwards."""

    def __init__(self, members, writers=6):
        self.members = members
        self.acked = {}           # key -> (value, time acknowledged)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(w,)) for w in range(writers)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _write(self, w):
        member = self.members[w % len(self.members)]
        n = 0
        while not self.stop.is_set():
            key, value = "load/w%d/%d" % (w, n), "%d.%d" % (w, n)
            n += 1
            try:
                st, _ = member.put(key, value, timeout=10.0)
            except OSError:
                time.sleep(0.05)   # the member is dead or restarting
                continue
            if acked(st):
                with self.lock:
                    self.acked[key] = (value, time.time())

    def acked_since(self, t):
        with self.lock:
            return sum(1 for _, at in self.acked.values() if at > t)


def listing(member):
    """{key: value} of every leaf under /load as `member` serves it."""
    st, _, body = member.request("GET", "/v2/keys/load?recursive=true&sorted=true", timeout=10.0)
    assert st == 200, (member, st, body)
    leaves = {}

    def walk(node):
        for child in node.get("nodes", []):
            walk(child)
        if not node.get("dir"):
            leaves[node["key"].lstrip("/")] = node.get("value")
    walk(json.loads(body)["node"])
    return leaves


def test_leader_kill9_under_write_load_loses_no_acknowledged_write(cluster_of):
    c = cluster_of(3)
    leader = c.leader()
    with WriteLoad(c.members) as load:
        wait_until("the load has acknowledged writes", lambda: load.acked_since(0) >= 30)
        killed_at = time.time()
        leader.kill()
        wait_until("writes are acknowledged again after the leader died",
                   lambda: load.acked_since(killed_at + ELECTION_TIMEOUT) >= 30)
    leader.start()
    leader.wait_serving()
    c.converged(timeout=30.0)   # identical keyspace digest and indexes on all three
    for m in c.members:
        served = listing(m)
        lost = {k: v for k, (v, _) in load.acked.items() if served.get(k) != v}
        assert not lost, "%s lost %d of %d acknowledged writes, e.g. %s" % (
            m, len(lost), len(load.acked), sorted(lost.items())[:5])


CAMPAIGNS = 6
# openraft logs one warning per peer that a (pre-)vote request cannot reach.
CAMPAIGN_LOG_LINE = re.compile(r"while requesting (pre-)?vote")


def campaigns_logged(member, peers):
    with open(member.log_path, errors="replace") as f:
        return sum(1 for line in f if CAMPAIGN_LOG_LINE.search(line)) // peers


def test_pre_vote_member_back_from_partition_does_not_depose_leader(cluster_of, monkeypatch):
    # The campaigns are counted by openraft's failed vote-request lines, which the default
    # log filter drops (the reachability lines name a lost peer instead): keep them here.
    monkeypatch.setenv("MUSUBI_LOG", "info,openraft=warn,openraft::core::heartbeat=error")
    c = cluster_of(3)
    leader = c.leader()
    term = leader.term()
    follower = c.others(leader)[0]
    c.net.drop_packets(follower.index)
    written = write_keys(c, c.others(follower), "prevote", 5)
    # Cut off until it has timed out many elections: the situation Pre-Vote is for.
    wait_until("%s has campaigned %d times while cut off" % (follower, CAMPAIGNS),
               lambda: campaigns_logged(follower, peers=2) >= CAMPAIGNS, timeout=20.0)
    # With Pre-Vote a campaign that cannot win does not raise the member's term.
    term_while_cut_off = follower.term()
    assert term_while_cut_off == term, "%s ran its term up from %d to %d while cut off" % (
        follower, term, term_while_cut_off)
    c.net.heal(follower.index)
    wait_serves(follower, written)
    c.converged()
    # Still the same leader in the same term, on every member, for a while after the heal.
    settle_until = time.time() + 4 * ELECTION_TIMEOUT
    while time.time() < settle_until:
        assert c.leader() is leader, "the returning member deposed the leader"
        terms = {m.name: m.term() for m in c.members}
        assert set(terms.values()) == {term}, "the term moved from %d: %s" % (term, terms)
        time.sleep(0.1)
