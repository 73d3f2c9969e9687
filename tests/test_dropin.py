"""Drop-in details real etcd clients and tools rely on (issue 15, item 7), each run against
musubi and against etcd 3.4 (MUSUBI_TEST_TARGET=etcd) wherever etcd does the same:

- a new member answers no client request before it has a leader and has published its
  client URLs (its listener is bound, but requests wait, as etcd's do);
- a leader stopped with SIGTERM hands leadership over, so writes go on at once;
- DELETE /v2/members/<id> of a member removed before answers 410 Gone, etcd's body;
- --discovery with a discovery service's http://host/<token> URL, --discovery-fallback,
  --discovery-proxy;
- one client port serving http:// and https:// alike, unix:// client URLs, and a second
  --listen-peer-urls.
"""

import errno
import json
import socket
import time

import pytest

from harness import free_port, raw_request, target_kind, wait_for


def leader_id(server):
    st, _, body = server.request("GET", "/v2/members/leader")
    return json.loads(body)["id"] if st == 200 else None


def member_ids(server):
    st, _, body = server.request("GET", "/v2/members")
    assert st == 200, body
    return {m["name"]: m["id"] for m in json.loads(body)["members"]}


def first_answer(server, path, timeout=30.0):
    """The first reply to `path`, polled from before the process binds its port: refused
    connections are retried at once; a connected request waits as long as it must."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return raw_request(server.client_port, "GET", path, timeout=timeout)
        except OSError as e:
            if getattr(e, "errno", None) != errno.ECONNREFUSED and not isinstance(
                    e, ConnectionResetError):
                raise
        time.sleep(0.001)
    raise AssertionError("no answer on %s" % path)


@pytest.mark.parametrize("path", ["/v2/machines", "/v2/members"])
def test_a_new_member_answers_only_once_published(fleet, path):
    names = ["n1", "n2", "n3"]
    peers = [free_port() for _ in names]
    initial = ",".join("n%d=http://127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(peers))
    members = [fleet.target(name=n, peer_port=p, extra_args=["--initial-cluster", initial])
               for n, p in zip(names, peers)]
    first = members[0]
    first.start(wait=False)
    # The others start a little later: the first member must wait for them, not answer.
    time.sleep(0.3)
    for m in members[1:]:
        m.start(wait=False)
    st, _, body = first_answer(first, path)
    assert st == 200, body
    if path == "/v2/machines":
        assert first.url in body.decode().split(", "), body
    else:
        listed = {m["name"]: m for m in json.loads(body)["members"]}
        assert listed["n1"]["clientURLs"] == [first.url], body


def test_a_leader_stopped_with_sigterm_hands_over_first(fleet):
    # A long election timeout: without a hand-over the others would wait it out.
    servers = fleet.cluster(3, extra_args=["--heartbeat-interval", "100",
                                           "--election-timeout", "3000"])
    ids = member_ids(servers[0])
    lead = wait_for("a leader", lambda: leader_id(servers[0]))
    leader = next(s for s in servers if ids[s.name] == lead)
    rest = [s for s in servers if s is not leader]
    st, _, _ = rest[0].request("PUT", "/v2/keys/before", body="value=1")
    assert st in (200, 201)
    started = time.time()
    leader.stop()
    st, _, body = rest[0].request("PUT", "/v2/keys/after", body="value=2", timeout=10)
    took = time.time() - started
    assert st in (200, 201), body
    assert took < 2.0, "the write waited %.1fs: no hand-over" % took
    new = leader_id(rest[1])
    assert new not in (None, lead)


def test_deleting_a_removed_member_is_410_gone(fleet):
    a, b, c = fleet.cluster(3)
    gone = member_ids(a)["n3"]
    # etcd refuses a removal until every member has been connected for a few seconds.
    wait_for("n3 removed", lambda: a.request("DELETE", "/v2/members/" + gone)[0] in (204, 410))
    wait_for("n3 gone from the list", lambda: "n3" not in member_ids(a))
    for s in (a, b):
        st, h, body = s.request("DELETE", "/v2/members/" + gone)
        assert st == 410, body
        assert json.loads(body) == {"message": "Member permanently removed: " + gone}
        assert h["content-type"] == "application/json"
    st, _, body = a.request("DELETE", "/v2/members/1234")
    assert st == 404, body
    assert json.loads(body) == {"message": "No such member: 1234"}
