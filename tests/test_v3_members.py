"""etcd's v3 Cluster service and MoveLeader, on real members: Debian's `etcdctl` (v3)
member list/add (also `--learner`)/remove/update/promote with the added member started from
the `ETCD_*` lines etcdctl prints, removing the leader through itself, `move-leader`;
python `etcd3` and `etcd3gw`; the gateway's paths; etcd's errors for unknown IDs, taken
peer URLs, promoting a voter, a second learner, an unhealthy cluster, and the last voter.

Every test runs against etcd 3.4 too (MUSUBI_TEST_TARGET=etcd). Where musubi differs by
design (a member added to vote is listed as a learner until it has caught up, see
docs/v3-api.md), the tests wait for what both end in."""

import json
import re

import etcd3
import etcd3gw
import pytest

import harness
from harness import free_port, wait_for
from v3util import Ctl3, Gateway, b64


def cluster(fleet, size):
    """`size` members, ready for member changes: etcd refuses them ("unhealthy cluster")
    until every peer stream has been up for 5 s; musubi asks its peers at the time. A
    learner added and removed again proves the cluster ready on both."""
    members = fleet.cluster(size)
    gw = Gateway(members[0])
    url = "http://127.0.0.1:%d" % free_port()

    def ready():
        r = gw.raw("/cluster/member/add", {"peerURLs": [url], "isLearner": True})
        if r.status_code == 503 and "unhealthy cluster" in r.text:
            return None
        assert r.status_code == 200, r.text
        return r.json()["member"]["ID"]
    probe = wait_for("the cluster to take member changes", ready)
    gw.call("/cluster/member/remove", {"ID": probe})
    return members


def listed(ctl):
    """`member list -w json`'s members by hex ID (etcdctl prints IDs as numbers there)."""
    out = json.loads(ctl("member", "list", "-w", "json"))
    return {"%x" % m["ID"]: m for m in out["members"]}


def status(server):
    """(this member's hex ID, the leader's) from Status through the gateway."""
    got = Gateway(server).call("/maintenance/status")
    return "%x" % int(got["header"]["member_id"]), "%x" % int(got.get("leader", "0"))


def leader_id(server):
    return status(server)[1]


def member_id(server):
    return status(server)[0]


def move_leader(server, target_hex):
    """MoveLeader over gRPC (python etcd3 has no call for it; its stub has)."""
    from etcd3.etcdrpc import rpc_pb2
    c = etcd3.client(host="127.0.0.1", port=server.client_port, timeout=10)
    try:
        return c.maintenancestub.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=int(target_hex, 16)),
                                            timeout=10)
    finally:
        c.close()


def fails(ctl, *args, rc=1):
    """etcdctl's error line for a refused call."""
    code, out, err = ctl.run(*args)
    assert code == rc, (args, code, out, err)
    return err.strip().splitlines()[-1]


def add(ctl, name, peer_url, *flags):
    """`member add`: the new ID and the ETCD_* settings it prints."""
    out = ctl("member", "add", name, "--peer-urls", peer_url, *flags)
    head = re.match(r"Member +([0-9a-f]+) added to cluster +([0-9a-f]+)\n", out)
    assert head, out
    env = dict(re.findall(r'^(ETCD_[A-Z_]+)="(.*)"$', out, re.M))
    assert env["ETCD_NAME"] == name and env["ETCD_INITIAL_CLUSTER_STATE"] == "existing", out
    assert env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == peer_url, out
    assert "%s=%s" % (name, peer_url) in env["ETCD_INITIAL_CLUSTER"].split(","), out
    return head.group(1), env


def start_added(fleet, env, peer_port):
    """The added member, started with only the printed settings and where to listen."""
    # The listen flags repeat the advertised peer URL; etcd refuses it twice.
    env = {k: v for k, v in env.items() if k != "ETCD_INITIAL_ADVERTISE_PEER_URLS"}
    env["ETCD_ENABLE_V2"] = "true"
    return fleet.spawn(harness.target_kind(), name=env["ETCD_NAME"], peer_port=peer_port,
                       style="listen-only", env=env).start()


def test_etcdctl_adds_a_learner_that_joins_is_promoted_and_leads(fleet):
    members = cluster(fleet, 3)
    ctl = Ctl3(members[0])
    before = listed(ctl)
    assert sorted(m["name"] for m in before.values()) == ["n1", "n2", "n3"]
    assert not any(m.get("isLearner") for m in before.values())

    port = free_port()
    new_id, env = add(ctl, "n4", "http://127.0.0.1:%d" % port, "--learner")
    row = [l for l in ctl("member", "list").splitlines() if l.startswith(new_id)]
    assert row == ["%s, unstarted, , http://127.0.0.1:%d, , true" % (new_id, port)], row
    # Not started, so not in sync; and etcd 3.4 takes one learner at a time.
    assert fails(ctl, "member", "promote", new_id) == \
        "Error: etcdserver: can only promote a learner member which is in sync with leader"
    assert fails(ctl, "member", "add", "n5", "--learner", "--peer-urls",
                 "http://127.0.0.1:%d" % free_port()) == \
        "Error: etcdserver: too many learner members in cluster"

    new = start_added(fleet, env, port)
    ctl("put", "from-the-cluster", "1")
    wait_for("the learner to catch up", lambda: Ctl3(new).run(
        "get", "from-the-cluster", "--consistency", "s")[1].endswith("1\n"))
    # A learner answers what its own state answers (status, serializable reads) and
    # refuses the rest, over gRPC and the gateway alike.
    at_learner = HostPortCtl([new])
    assert json.loads(at_learner("endpoint", "status", "-w", "json"))[0]["Status"]["isLearner"]
    refused = "etcdserver: rpc not supported for learner"
    for args in (["put", "k", "v"], ["get", "from-the-cluster"], ["member", "list"],
                 ["lease", "grant", "10"]):
        assert refused in fails(at_learner, *args), args
    assert Gateway(new).raw("/kv/put", {"key": b64("k"), "value": b64("v")}).json() \
        == {"error": "etcdserver: rpc not supported for learner",
            "message": "etcdserver: rpc not supported for learner", "code": 14}

    def promoted():
        code, out, _ = ctl.run("member", "promote", new_id)
        return code == 0 and out
    out = wait_for("the learner to be promotable", promoted)
    assert re.match(r"Member +%s promoted in cluster +[0-9a-f]+\n$" % new_id, out), out
    assert not listed(ctl)[new_id].get("isLearner")
    assert listed(ctl)[new_id]["name"] == "n4"

    # The new voter can lead: MoveLeader on the leader answers once it does.
    leader = next(m for m in members if member_id(m) == leader_id(m))
    assert move_leader(leader, new_id).ByteSize() == 0
    assert leader_id(leader) == new_id
    for m in members:
        wait_for("every member to see the new leader", lambda m=m: leader_id(m) == new_id)


def test_a_voter_added_by_etcdctl_joins_with_the_printed_settings(fleet):
    members = cluster(fleet, 3)
    ctl = Ctl3(members[1])
    port = free_port()
    new_id, env = add(ctl, "n4", "http://127.0.0.1:%d" % port)
    assert listed(ctl)[new_id]["peerURLs"] == ["http://127.0.0.1:%d" % port]
    # A second member while the first has not started: the cluster is not healthy enough.
    assert fails(ctl, "member", "add", "n5", "--peer-urls",
                 "http://127.0.0.1:%d" % free_port()) == "Error: etcdserver: unhealthy cluster"
    new = start_added(fleet, env, port)
    # musubi lists it as a learner until it has caught up; then both agree.
    wait_for("n4 to be a started voter", lambda: (
        lambda m: m.get("name") == "n4" and not m.get("isLearner"))(listed(ctl)[new_id]))
    row = [l for l in ctl("member", "list").splitlines() if l.startswith(new_id)]
    assert row == ["%s, started, n4, http://127.0.0.1:%d, %s, false" % (new_id, port, new.url)]
    Ctl3(new)("put", "k", "from-n4")
    assert Ctl3(members[2])("get", "k", "--print-value-only") == "from-n4\n"


def test_removing_the_leader_through_itself(fleet):
    members = cluster(fleet, 3)
    lead = wait_for("a leader", lambda: leader_id(members[0]) != "0" and leader_id(members[0]))
    leader = next(m for m in members if member_id(m) == lead)
    out = Ctl3(leader)("member", "remove", lead)
    assert re.match(r"Member +%s removed from cluster +[0-9a-f]+\n$" % lead, out), out
    rest = [m for m in members if m is not leader]
    for m in rest:
        wait_for("a new leader", lambda m=m: leader_id(m) not in ("0", lead))
        assert sorted(x["name"] for x in listed(Ctl3(m)).values()) == sorted(x.name for x in rest)
    Ctl3(rest[0])("put", "after", "1")
    assert Ctl3(rest[1])("get", "after", "--print-value-only") == "1\n"
    wait_for("the removed member to stop", lambda: not leader.alive(), timeout=15)


def test_with_a_voter_down_only_the_down_one_may_go(fleet):
    members = cluster(fleet, 3)
    ids = {member_id(m): m for m in members}
    lead = leader_id(members[0])
    leader = ids[lead]
    down_id, down = next((i, m) for i, m in ids.items() if i != lead)
    up_id = next(i for i in ids if i not in (lead, down_id))
    down.kill()
    ctl = Ctl3(leader)
    # Removing a member that is up would leave one of two voters: refused.
    wait_for("the leader to notice", lambda: ctl.run("member", "remove", up_id)[2]
             .strip().endswith("Error: etcdserver: unhealthy cluster"))
    assert fails(ctl, "member", "add", "x", "--learner", "--peer-urls",
                 "http://127.0.0.1:%d" % free_port()) == "Error: etcdserver: unhealthy cluster"
    out = ctl("member", "remove", down_id)
    assert re.match(r"Member +%s removed from cluster +[0-9a-f]+\n$" % down_id, out), out
    assert sorted(listed(ctl)) == sorted([lead, up_id])
    ctl("put", "two", "left")


def test_member_errors_as_etcd(fleet):
    members = cluster(fleet, 3)
    ctl = Ctl3(members[0])
    ids = listed(ctl)
    some = next(iter(ids))
    taken = ids[some]["peerURLs"][0]
    assert fails(ctl, "member", "remove", "1234") == "Error: etcdserver: member not found"
    assert fails(ctl, "member", "update", "1234", "--peer-urls", "http://127.0.0.1:1") == \
        "Error: etcdserver: member not found"
    assert fails(ctl, "member", "promote", "1234") == "Error: etcdserver: member not found"
    assert fails(ctl, "member", "add", "x", "--peer-urls", taken) == \
        "Error: etcdserver: Peer URLs already exists"
    other = next(i for i in ids if i != some)
    assert fails(ctl, "member", "update", other, "--peer-urls", taken) == \
        "Error: etcdserver: Peer URLs already exists"
    assert fails(ctl, "member", "promote", some) == \
        "Error: etcdserver: can only promote a learner member"

    # An unstarted learner's peer URLs can change; it can be removed.
    lid, _ = add(ctl, "l", "http://127.0.0.1:%d" % free_port(), "--learner")
    moved = "http://127.0.0.1:%d" % free_port()
    out = ctl("member", "update", lid, "--peer-urls", moved)
    assert re.match(r"Member +%s updated in cluster +[0-9a-f]+\n$" % lid, out), out
    assert listed(Ctl3(members[2]))[lid]["peerURLs"] == [moved]
    out = ctl("member", "remove", lid)
    assert re.match(r"Member +%s removed from cluster +[0-9a-f]+\n$" % lid, out), out
    assert lid not in listed(Ctl3(members[1]))


class HostPortCtl(Ctl3):
    """etcdctl with `host:port` endpoints for some members only. Its move-leader dials each
    endpoint alone for Status (with a URL endpoint, the scheme goes into the HTTP/2
    :authority: see test_etcdctl_move_leader_on_urls and crates/server/src/h2_authority.rs)."""

    def __init__(self, servers):
        super().__init__(servers[0])
        self.servers = servers

    def argv(self, *args):
        endpoints = ",".join("127.0.0.1:%d" % s.client_port for s in self.servers)
        return [harness.ETCDCTL_BIN, "--endpoints", endpoints, "--command-timeout", "10s"] + list(args)


def test_etcdctl_move_leader(fleet):
    members = cluster(fleet, 3)
    ids = {member_id(m): m for m in members}
    lead = leader_id(members[0])
    follower = next(i for i in ids if i != lead)
    out = HostPortCtl(members)("move-leader", follower)
    assert out == "Leadership transferred from %s to %s\n" % (lead, follower), out
    wait_for("the move", lambda: all(leader_id(m) == follower for m in members))
    # etcdctl needs the leader among its endpoints; the target must vote.
    assert fails(HostPortCtl([ids[lead]]), "move-leader", lead, rc=128).startswith(
        "Error: no leader endpoint given at")
    assert fails(HostPortCtl(members), "move-leader", "1234") == \
        "Error: etcdserver: bad leader transferee"


def test_etcdctl_move_leader_on_urls(target):
    me = member_id(target)
    out = Ctl3(target)("move-leader", me)
    assert out == "Leadership transferred from %s to %s\n" % (me, me), out


def test_the_last_voter_stays_and_a_lone_member_takes_one_new_voter_at_a_time(target):
    ctl = Ctl3(target)
    me = member_id(target)
    assert fails(ctl, "member", "remove", me) == \
        "Error: etcdserver: re-configuration failed due to not enough started members"
    gw = Gateway(target)
    assert gw.call("/maintenance/transfer-leadership", {"targetID": str(int(me, 16))}) == {}
    lid, _ = add(ctl, "l", "http://127.0.0.1:%d" % free_port(), "--learner")
    r = gw.raw("/maintenance/transfer-leadership", {"targetID": str(int(lid, 16))})
    assert (r.status_code, r.json()["error"]) == (412, "etcdserver: bad leader transferee")
    ctl("member", "remove", lid)
    # (etcd's quorum is now two of two, with one not started: this is the last step.)
    add(ctl, "v1", "http://127.0.0.1:%d" % free_port())
    assert fails(ctl, "member", "add", "v2", "--peer-urls", "http://127.0.0.1:%d" % free_port()) \
        == "Error: etcdserver: re-configuration failed due to not enough started members"


def strip(members):
    return sorted((m.get("name", ""), m.get("peerURLs", []), m.get("clientURLs", []),
                   bool(m.get("isLearner"))) for m in members)


def test_the_gateway_paths(fleet):
    members = cluster(fleet, 3)
    gw = Gateway(members[0])
    listing = gw.call("/cluster/member/list")
    assert set(listing["header"]) == {"cluster_id", "member_id", "raft_term"}, listing
    url = "http://127.0.0.1:%d" % free_port()
    other = "http://127.0.0.1:%d" % free_port()
    # Peer URLs are kept sorted, as etcd keeps them.
    added = gw.call("/cluster/member/add", {"peerURLs": [url, other], "isLearner": True})
    assert set(added["header"]) == {"cluster_id", "member_id", "raft_term"}, added
    new = added["member"]
    assert new["peerURLs"] == sorted([url, other]) and new["isLearner"] is True, added
    assert "name" not in new and "clientURLs" not in new, added
    assert strip(added["members"]) == strip(listing["members"] + [new])
    r = gw.raw("/cluster/member/add", {"peerURLs": ["bad"]})
    assert (r.status_code, r.json()["code"], r.json()["error"]) == (
        400, 3, "etcdserver: given member URLs are invalid"), r.text
    r = gw.raw("/cluster/member/promote", {"ID": new["ID"]})
    assert (r.status_code, r.json()["code"], r.json()["error"]) == (
        412, 9, "etcdserver: can only promote a learner member which is in sync with leader")
    updated = gw.call("/cluster/member/update", {"ID": new["ID"], "peerURLs": [url]})
    assert [m["peerURLs"] for m in updated["members"] if m["ID"] == new["ID"]] == [[url]]
    removed = gw.call("/cluster/member/remove", {"ID": new["ID"]})
    assert strip(removed["members"]) == strip(listing["members"])
    r = gw.raw("/cluster/member/remove", {"ID": new["ID"]})
    assert (r.status_code, r.json()["code"], r.json()["error"]) == (
        404, 5, "etcdserver: member not found"), r.text

    # transfer-leadership: only the leader takes it, and it answers {} (no header).
    status = gw.call("/maintenance/status")
    lead = status["leader"]
    servers = {m["ID"]: s for m in listing["members"] for s in members
               if m["clientURLs"] == [s.url]}
    follower = next(i for i in servers if i != lead)
    r = Gateway(servers[follower]).raw("/maintenance/transfer-leadership", {"targetID": follower})
    assert (r.status_code, r.json()["error"]) == (412, "etcdserver: not leader"), r.text
    assert Gateway(servers[lead]).call("/maintenance/transfer-leadership",
                                       {"targetID": follower}) == {}
    assert wait_for("the move", lambda: gw.call("/maintenance/status").get("leader") == follower)


def test_python_clients(fleet):
    members = cluster(fleet, 3)
    c = etcd3.client(host="127.0.0.1", port=members[0].client_port, timeout=10)
    try:
        assert sorted(m.name for m in c.members) == ["n1", "n2", "n3"]
        url = "http://127.0.0.1:%d" % free_port()
        added = c.add_member([url])
        assert list(added.peer_urls) == [url] and added.name == ""
        assert url in [u for m in c.members for u in m.peer_urls]
        moved = "http://127.0.0.1:%d" % free_port()
        c.update_member(added.id, [moved])
        assert [list(m.peer_urls) for m in c.members if m.id == added.id] == [[moved]]
        c.remove_member(added.id)
        assert added.id not in [m.id for m in c.members]
        with pytest.raises(Exception) as e:
            c.remove_member(added.id)
        assert "etcdserver: member not found" in str(e.value)
    finally:
        c.close()
    gw = etcd3gw.client(host="127.0.0.1", port=members[1].client_port, timeout=10)
    got = gw.members()
    assert sorted(m["name"] for m in got) == ["n1", "n2", "n3"]
    assert sorted(u for m in got for u in m["clientURLs"]) == sorted(m.url for m in members)
