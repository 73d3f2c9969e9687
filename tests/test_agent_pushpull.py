"""Push-pull anti-entropy: every push-pull interval (15 s with the `local` profile) an
agent syncs its whole state with a random member, so what gossip failed to bring it
arrives by the next sync. Driven by the real `serf` CLI; needs root and nft to cut one
agent off.

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf runs it against Debian's
`serf agent`, where it passes too; Serf's reconnect is itself a push-pull).
"""

import json
import os
import shutil
import time

import pytest

from agents import (FAILURE_DETECTION_BOUND, agents, recording_handler,  # noqa: F401
                    serf, statuses, wait_for)
from test_agent_life import LoopbackPartition, user_events

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="needs root and nft")

# The `local` profile's push-pull interval, and how many of them a catch-up may take:
# the first sync after healing comes within one interval, and its partner knows.
PUSH_PULL_INTERVAL = 15.0
SYNCS = 2
# Reconnect attempts to failed members, once a second: the healed member is alive again
# in a few seconds.
RECONNECT_SLACK = 10.0


class Isolation(LoopbackPartition):
    """Drops every gossip datagram to and from one agent, and stream (TCP) connections to
    it: it hears nothing of the cluster, by gossip or by push-pull."""

    def __init__(self, agent):
        self.table = "musubi_pushpull_%d" % os.getpid()
        port = agent.gossip_port
        self.rules = ["udp dport %d drop" % port, "udp sport %d drop" % port,
                      "tcp dport %d drop" % port]


def local_profile(tmp_path):
    path = tmp_path / "local.json"
    path.write_text(json.dumps({"profile": "local", "reconnect_interval": "1s"}))
    return ["-config-file", str(path)]


EVERYONE = {"a1": "alive", "a2": "alive", "a3": "alive"}


def three_local_agents(agents, tmp_path, a3_args=()):
    """a1, a2 and a3 on the `local` profile, all alive on all three."""
    settings = local_profile(tmp_path)
    a1 = agents("a1", args=settings)
    a2 = agents("a2", args=settings, join=[a1.gossip_addr])
    a3 = agents("a3", args=settings + list(a3_args), join=[a1.gossip_addr])
    for agent in (a1, a2, a3):
        wait_for(lambda: statuses(agent) == EVERYONE, 15, "%s to see all three" % agent.name)
    return a1, a2, a3


def test_an_event_missed_while_cut_off_arrives_by_push_pull(agents, tmp_path):
    handler, records = recording_handler(tmp_path, "a3.events")
    a1, a2, a3 = three_local_agents(agents, tmp_path, ["-event-handler", "user=" + handler])

    with Isolation(a3):
        wait_for(lambda: statuses(a1).get("a3") == "failed", FAILURE_DETECTION_BOUND,
                 "a1 to see a3 failed")
        assert serf("event", a1, "-coalesce=false", "deploy", "v1").returncode == 0
        # gossip spends the event's few retransmissions between a1 and a2; none reach a3
        time.sleep(5)
        assert user_events(records) == []

    # Reconnecting brings no events with it: only a push-pull sync can carry this one.
    wait_for(lambda: user_events(records), RECONNECT_SLACK + SYNCS * PUSH_PULL_INTERVAL,
             "a3 to receive the event it missed")
    assert [(name, payload) for name, payload, _ in user_events(records)] == [("deploy", ["v1"])]
    for agent in (a1, a2, a3):
        wait_for(lambda: statuses(agent) == EVERYONE, RECONNECT_SLACK + PUSH_PULL_INTERVAL,
                 "%s to see all three again" % agent.name)


def test_a_leave_missed_while_cut_off_arrives_by_push_pull(agents, tmp_path):
    a1, a2, a3 = three_local_agents(agents, tmp_path)

    with Isolation(a3):
        wait_for(lambda: statuses(a1).get("a3") == "failed", FAILURE_DETECTION_BOUND,
                 "a1 to see a3 failed")
        # a2 leaves while a3 hears nothing: its leave intent never reaches a3
        assert serf("leave", a2).returncode == 0
        a2.wait_exit()
        wait_for(lambda: statuses(a1).get("a2") == "left", 15, "a1 to see a2 left")

    # a3 comes back knowing a2 alive; probing it would make it `failed`. The left members a
    # sync carries say it left.
    wait_for(lambda: statuses(a3) == {"a1": "alive", "a2": "left", "a3": "alive"},
             RECONNECT_SLACK + SYNCS * PUSH_PULL_INTERVAL, "a3 to see a2 left")
