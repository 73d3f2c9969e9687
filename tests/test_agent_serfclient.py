"""PyPI's `serfclient` (the Python RPC client) against the agent: members (plain and
filtered by partial maps), join, user events with the payload shapes it sends (str,
bytes, None) and force-leave. serfclient is looser than Go's client: it sends str where
Go sends bytes and leaves out body keys, which the agent must take as Serf does.

MUSUBI_AGENT_TARGET=serf runs the same tests against Debian's `serf agent`.
"""

import socket

import pytest
import serfclient  # tests/run-all.sh installs it

from agents import (FAILURE_DETECTION_BOUND, agents, recording_handler,  # noqa: F401 (fixture)
                    statuses, wait_for)


def client(agent):
    host, port = agent.rpc_addr.rsplit(":", 1)
    return serfclient.SerfClient(host=host, port=int(port))


def ok(result):
    """The reply's body, once its header says no error (msgpack 1.x gives str keys)."""
    assert result.head["Error"] == "", result.head
    return result.body


def names(result):
    return sorted(m["Name"] for m in ok(result)["Members"])


def test_members_lists_every_member_with_its_address_and_tags(agents):
    a1 = agents("a1", tags=["role=web"])
    a2 = agents("a2", tags=["role=db"], join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "a1 to see a2")
    by_name = {m["Name"]: m for m in ok(client(a1).members())["Members"]}
    assert set(by_name) == {"a1", "a2"}
    for name, agent in (("a1", a1), ("a2", a2)):
        m = by_name[name]
        assert m["Status"] == "alive"
        # 4 bytes, as from Serf (serfclient's own conversion only sees msgpack < 1's
        # bytes keys, so with today's msgpack the caller gets the raw address)
        assert socket.inet_ntop(socket.AF_INET, m["Addr"]) == "127.0.0.1", m
        assert m["Port"] == agent.gossip_port
    assert by_name["a2"]["Tags"] == {"role": "db"}


def test_filtered_members_take_partial_filters(agents):
    a1 = agents("web1", tags=["role=web"])
    agents("db1", tags=["role=db"], join=[a1.gossip_addr])
    wait_for(lambda: len(statuses(a1)) == 2, 15, "web1 to see db1")
    c = client(a1)
    assert names(c.members(name="web.*")) == ["web1"]
    assert names(c.members(status="alive")) == ["db1", "web1"]
    assert names(c.members(tags={"role": "db"})) == ["db1"]


def test_join_through_serfclient(agents):
    a1 = agents("a1")
    a2 = agents("a2")
    result = client(a2).join(a1.gossip_addr)
    assert ok(result)["Num"] == 1
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "a1 to see a2")


@pytest.mark.parametrize("payload, delivered", [
    ("from-python", "from-python"),      # msgpack str, where Go sends bin
    (b"raw-bytes", "raw-bytes"),         # msgpack bin
    (None, ""),                          # nil
], ids=["str", "bytes", "none"])
def test_events_with_each_payload_shape_reach_the_handlers(agents, tmp_path, payload, delivered):
    command, records = recording_handler(tmp_path, "events")
    a1 = agents("a1", args=["-event-handler", "user=" + command])
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "a1 to see a2")
    result = client(a2).event("deploy", payload, coalesce=False)
    assert result.head["Error"] == "", result.head
    got = wait_for(lambda: [r for r in records() if r[0].get("SERF_USER_EVENT") == "deploy"],
                   15, "a1's handler to run for the event")
    env, stdin = got[0]
    assert env["SERF_EVENT"] == "user"
    assert "\n".join(stdin) == delivered


def test_force_leave_through_serfclient(agents):
    a1 = agents("a1")
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "a1 to see a2")
    a2.kill()
    wait_for(lambda: statuses(a1).get("a2") == "failed", FAILURE_DETECTION_BOUND,
             "a1 to see a2 failed")
    client(a1).force_leave("a2")
    wait_for(lambda: statuses(a1).get("a2") == "left", 15, "a1 to see a2 left")


def test_the_agent_stays_up_after_a_client_hangs_up_mid_request(agents):
    a1 = agents("a1")
    c = client(a1)
    c.connection._socket.sendall(b"\x82\xa7Command")  # half a header, then gone
    c.close()
    assert names(client(a1).members()) == ["a1"]
