"""A member that leaves stays left. Between its leave and its exit (here the rest of a
start-up join, which waits on a second, silent peer for up to 5 s) it may still hear that
the cluster holds it down: a push-pull sync due in that time is answered with a state in
which it is down. foca answers that by rejoining under a new identity, as it does for a
member wrongly declared down; after a leave that brought the member back alive, and then
failed once it exited. So a member that left takes no more gossip and refuses to join
again, as Serf does.

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf proves these tests against
Debian's `serf agent`, which exits at once after its leave).
"""

import os
import time

import pytest

import harness
from agents import (AGENT_TARGET, FAILURE_DETECTION_BOUND, SERF_BIN, agents,  # noqa: F401
                    recording_handler, serf, statuses, wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

# The local profile syncs every 15 s from a random first point, so each leaver has about
# one chance in three of a sync in its last 5 s, with a member that holds it down (each
# leaver's log says so at debug level: "push-pull sync with").
LEAVERS = ["b%d" % i for i in range(1, 17)]
PROFILE = ["-profile", "local"]
# Member events reach a handler after Serf's coalescing period.
EVENT_SETTLE = 6.0


def member_events(records):
    """[(event, member name)] in the order the handler saw them."""
    return [(env["SERF_EVENT"], line.split("\t")[0])
            for env, lines in records() for line in lines]


def start_lingering_leavers(agents, a1, names):
    """Members that join a1 and a silent address, so their start-up join (and the agent)
    lasts 5 s more; each leaves as soon as it answers."""
    silent = "127.0.0.1:%d" % harness.free_port()
    leavers = []
    for name in names:
        leavers.append(agents(name, join=[a1.gossip_addr, silent], args=PROFILE))
        assert serf("leave", leavers[-1]).returncode == 0
    return leavers


def test_members_that_sync_after_their_leave_stay_left(agents, tmp_path):
    handler, records = recording_handler(tmp_path, "a1.events")
    a1 = agents("a1", args=PROFILE + ["-event-handler", "member-failed=" + handler])
    # members that stay, to pass each leave on as a cluster would
    stayers = {"a1": "alive"}
    for name in ("a2", "a3"):
        agents(name, join=[a1.gossip_addr], args=PROFILE)
        stayers[name] = "alive"
    leavers = start_lingering_leavers(agents, a1, LEAVERS)
    for leaver in leavers:
        assert leaver.wait_exit() == 0, leaver.log()
    # a leaver whose own `Down` reached no one is `leaving` until found down: left
    wait_for(lambda: statuses(a1) == dict(stayers, **{name: "left" for name in LEAVERS}),
             2 * FAILURE_DETECTION_BOUND, "every leaver left")
    time.sleep(EVENT_SETTLE)
    assert [m for e, m in member_events(records) if e == "member-failed"] == []


@pytest.mark.skipif(AGENT_TARGET == "serf", reason="serf's agent does not linger after a leave")
def test_a_member_that_left_refuses_to_join_again_or_change_tags(agents):
    a1 = agents("a1", args=PROFILE)
    leaver, = start_lingering_leavers(agents, a1, ["b1"])
    out = serf("join", leaver, a1.gossip_addr)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Error joining the cluster: Serf can't Join after Leave or Shutdown" in out.stdout
    # new tags are a new identity, which would be gossiped alive
    out = serf("tags", leaver, "-set", "role=back")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the agent has left the cluster" in out.stdout + out.stderr
    assert leaver.wait_exit() == 0, leaver.log()
    assert statuses(a1)["b1"] == "left"
