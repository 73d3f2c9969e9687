"""The member lifecycle, driven by the real `serf` CLI: snapshots and restarts, -rejoin,
reaping of failed and left members, force-leave -prune, name conflicts, and Serf's
event coalescing.

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf proves these tests against
Debian's `serf agent`).
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from agents import (AGENT_TARGET, FAILURE_DETECTION_BOUND, SERF_BIN, Agent, agents,  # noqa: F401
                    recording_handler, serf, statuses, wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

# Serf looks for members to reap every 15 s; a member is gone within that of its timeout.
REAP_INTERVAL = 15.0


def lifecycle_settings(tmp_path, **settings):
    """Agent arguments for Serf's reconnect_interval/reconnect_timeout/tombstone_timeout.
    Serf reads them only from a config file; musubi, until it reads config files, takes
    them as hidden flags of the same names."""
    if AGENT_TARGET == "serf":
        path = tmp_path / "lifecycle.json"
        path.write_text(json.dumps(settings))
        return ["-config-file", str(path)]
    return ["-%s=%s" % (key.replace("_", "-"), value) for key, value in settings.items()]


def member_lines(records, event):
    """Each run of the handler for `event`, as the sorted names its stdin listed."""
    return [sorted(line.split("\t")[0] for line in stdin)
            for env, stdin in records() if env["SERF_EVENT"] == event]


def user_events(records):
    return [(env["SERF_USER_EVENT"], stdin, int(env["SERF_USER_LTIME"]))
            for env, stdin in records() if env["SERF_EVENT"] == "user"]


def snapshot_lines(path):
    return path.read_text().splitlines() if path.exists() else []


def restart(agent, *extra_args):
    """Start a stopped agent again on the same ports, optionally with more flags."""
    agent.argv += list(extra_args)
    return agent.start()


def test_snapshot_records_members_and_clocks_and_a_restart_restores_them(agents, tmp_path):
    snap = tmp_path / "a1.snapshot"
    handler, records = recording_handler(tmp_path, "a1.events")
    a1 = agents("a1", args=["-snapshot", str(snap), "-event-handler", "user=" + handler])
    a2 = agents("a2", join=[a1.gossip_addr])
    for payload in ["v1", "v2", "v3"]:
        assert serf("event", a2, "-coalesce=false", "deploy", payload).returncode == 0
    wait_for(lambda: len(user_events(records)) == 3, 15, "a1 to handle the three events")
    last_ltime = max(ltime for _, _, ltime in user_events(records))
    wait_for(lambda: "event-clock: %d" % last_ltime in snapshot_lines(snap), 10,
             "the event clock in the snapshot")
    lines = snapshot_lines(snap)
    assert "alive: a1 %s" % a1.gossip_addr in lines
    assert "alive: a2 %s" % a2.gossip_addr in lines
    assert "leave" not in lines

    # a crash: no leave, so the restarted agent rejoins from the snapshot without -join
    a1.kill()
    wait_for(lambda: statuses(a2).get("a1") == "failed", FAILURE_DETECTION_BOUND, "a1 failed")
    restart(a1)
    wait_for(lambda: statuses(a2).get("a1") == "alive", 30, "a2 to see a1 back")
    wait_for(lambda: statuses(a1).get("a2") == "alive", 15, "a1 to see a2 again")
    # its event clock went on from where it was: a new event sorts after the old ones
    assert serf("event", a1, "-coalesce=false", "after", "restart").returncode == 0
    wait_for(lambda: any(name == "after" for name, _, _ in user_events(records)), 15,
             "the event sent after the restart")
    after = [ltime for name, _, ltime in user_events(records) if name == "after"]
    assert after[0] > last_ltime
    # and the events handled before the restart were not handed to the handler again
    assert [name for name, _, _ in user_events(records)].count("deploy") == 3


def test_a_left_agent_rejoins_only_with_rejoin(agents, tmp_path):
    snap = tmp_path / "a1.snapshot"
    a1 = agents("a1", args=["-snapshot", str(snap)])
    a2 = agents("a2")
    # an RPC join has finished when it answers (a -join at start may still be at work)
    assert serf("join", a2, a1.gossip_addr).returncode == 0
    wait_for(lambda: statuses(a1).get("a2") == "alive", 15, "a1 to see a2")
    assert serf("leave", a1).returncode == 0
    assert a1.wait_exit() == 0
    lines = snapshot_lines(snap)
    # the leave is the last word on members (Serf still records its clocks after it)
    last_leave = len(lines) - 1 - lines[::-1].index("leave")
    assert not [line for line in lines[last_leave:] if line.startswith("alive:")]
    wait_for(lambda: statuses(a2).get("a1") == "left", 15, "a2 to see a1 left")

    # the recorded leave: nobody to rejoin
    restart(a1)
    time.sleep(5)
    assert statuses(a1) == {"a1": "alive"}
    assert statuses(a2)["a1"] == "left"
    a1.kill()

    # -rejoin ignores the leave: back with the members it knew
    restart(a1, "-rejoin")
    wait_for(lambda: statuses(a2).get("a1") == "alive", 30, "a2 to see a1 rejoin")
    wait_for(lambda: statuses(a1).get("a2") == "alive", 15, "a1 to see a2 again")


def test_failed_and_left_members_are_reaped_after_their_timeouts(agents, tmp_path):
    handler, records = recording_handler(tmp_path, "a1.reaps")
    settings = lifecycle_settings(tmp_path, reconnect_timeout="2s", tombstone_timeout="2s")
    a1 = agents("a1", args=settings + ["-event-handler", "member-reap=" + handler])
    a2 = agents("a2", join=[a1.gossip_addr])
    a3 = agents("a3", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive", "a3": "alive"}, 15,
             "all three alive")
    a2.kill()
    assert serf("leave", a3).returncode == 0
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "failed", "a3": "left"},
             FAILURE_DETECTION_BOUND, "a2 failed and a3 left")
    wait_for(lambda: statuses(a1) == {"a1": "alive"}, REAP_INTERVAL + 10, "both reaped")
    wait_for(lambda: sorted(sum(member_lines(records, "member-reap"), [])) == ["a2", "a3"], 10,
             "member-reap handler runs for a2 and a3")


class LoopbackPartition:
    """Drops the gossip traffic between two agents on loopback with an nftables table of
    its own (needs root): their UDP both ways and TCP to their gossip ports."""

    def __init__(self, a, b):
        self.table = "musubi_life_%d" % os.getpid()
        pa, pb = a.gossip_port, b.gossip_port
        self.rules = [
            "udp sport %d udp dport %d drop" % (pa, pb),
            "udp sport %d udp dport %d drop" % (pb, pa),
            "tcp dport { %d, %d } drop" % (pa, pb),
        ]

    def __enter__(self):
        script = "table inet %s {\n chain filter {\n  type filter hook input priority 0;\n" % self.table
        script += "".join("  %s\n" % rule for rule in self.rules) + " }\n}\n"
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["nft", "delete", "table", "inet", self.table], check=False)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="needs root and nft")
def test_a_healed_partition_is_reconnected(agents, tmp_path):
    settings = lifecycle_settings(tmp_path, reconnect_interval="1s")
    a1 = agents("a1", args=settings)
    a2 = agents("a2", args=settings)
    assert serf("join", a2, a1.gossip_addr).returncode == 0
    wait_for(lambda: statuses(a1).get("a2") == "alive", 15, "a1 to see a2")
    with LoopbackPartition(a1, a2):
        wait_for(lambda: statuses(a1).get("a2") == "failed" and statuses(a2).get("a1") == "failed",
                 FAILURE_DETECTION_BOUND, "each to see the other failed")
    # neither probes a member it holds failed: only the reconnect attempts bring them back
    wait_for(lambda: statuses(a1).get("a2") == "alive" and statuses(a2).get("a1") == "alive",
             30, "both alive again")


def test_force_leave_prune_drops_a_failed_member_everywhere_at_once(agents, tmp_path):
    handler, records = recording_handler(tmp_path, "a1.events")
    a1 = agents("a1", args=["-event-handler", "member-leave,member-reap=" + handler])
    a2 = agents("a2", join=[a1.gossip_addr])
    a3 = agents("a3", join=[a1.gossip_addr])
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent).get("a3") == "alive", 15, "a3 alive")
    a3.kill()
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent).get("a3") == "failed", FAILURE_DETECTION_BOUND,
                 "a3 failed on %s" % agent.name)
    out = serf("force-leave", a2, "-prune", "a3")
    assert out.returncode == 0, out.stdout + out.stderr
    for agent in (a1, a2):
        wait_for(lambda: "a3" not in statuses(agent), 10, "a3 pruned on %s" % agent.name)
    # reaping is Serf's member-reap event (its member-leave, in the same window, is merged)
    wait_for(lambda: ["a3"] in member_lines(records, "member-reap"), 10, "a member-reap run")


def test_a_second_agent_with_a_taken_name_shuts_down(agents, tmp_path):
    first = agents("dup")
    witness = agents("w", join=[first.gossip_addr])
    other_dir = tmp_path / "second"
    other_dir.mkdir()
    second = Agent(str(other_dir), "dup", join=[witness.gossip_addr]).start(wait=False)
    try:
        # the newcomer loses the vote and exits without a leave, as Serf's agent does
        assert second.wait_exit(timeout=30) == 0
        assert "minority in name conflict resolution" in second.log()
    finally:
        second.kill()
    time.sleep(1)
    members = witness.members()
    assert members["dup"]["addr"] == first.gossip_addr
    assert members["dup"]["status"] == "alive"
    assert first.proc.poll() is None


def test_three_quick_joins_make_one_member_join_run(agents, tmp_path):
    handler, records = recording_handler(tmp_path, "a1.joins")
    a1 = agents("a1", args=["-event-handler", "member-join=" + handler])
    others = [agents(name) for name in ("b1", "b2", "b3")]
    wait_for(lambda: member_lines(records, "member-join") == [["a1"]], 10, "a1's own join")
    out = serf("join", a1, *[agent.gossip_addr for agent in others])
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: len(member_lines(records, "member-join")) >= 2, 15, "the joins")
    time.sleep(4)  # past the coalescing period: nothing else comes
    assert member_lines(records, "member-join") == [["a1"], ["b1", "b2", "b3"]]


def test_coalesced_user_events_keep_only_the_latest(agents, tmp_path):
    handler, records = recording_handler(tmp_path, "a1.user")
    a1 = agents("a1", args=["-event-handler", "user=" + handler])
    for payload in ["v1", "v2", "v3"]:
        assert serf("event", a1, "deploy", payload).returncode == 0
    for payload in ["1", "2"]:
        assert serf("event", a1, "-coalesce=false", "plain", payload).returncode == 0
    wait_for(lambda: any(name == "deploy" for name, _, _ in user_events(records)), 15,
             "the coalesced deploy")
    time.sleep(4)
    seen = [(name, stdin) for name, stdin, _ in user_events(records)]
    assert seen.count(("deploy", ["v3"])) == 1
    assert [s for s in seen if s[0] == "deploy"] == [("deploy", ["v3"])]
    assert [s for s in seen if s[0] == "plain"] == [("plain", ["1"]), ("plain", ["2"])]


def test_join_replays_past_user_events_only_when_asked(agents, tmp_path):
    a1 = agents("a1")
    for payload in ["v1", "v2"]:
        assert serf("event", a1, "-coalesce=false", "deploy", payload).returncode == 0
    plain_handler, plain_records = recording_handler(tmp_path, "plain.events")
    replay_handler, replay_records = recording_handler(tmp_path, "replay.events")
    plain = agents("plain", args=["-event-handler", "user=" + plain_handler])
    replaying = agents("replaying", args=["-event-handler", "user=" + replay_handler])
    assert serf("join", plain, a1.gossip_addr).returncode == 0
    assert serf("join", replaying, "-replay", a1.gossip_addr).returncode == 0
    wait_for(lambda: len(user_events(replay_records)) == 2, 15, "the replayed events")
    assert sorted(stdin for _, stdin, _ in user_events(replay_records)) == [["v1"], ["v2"]]
    # events sent after the join reach both
    assert serf("event", a1, "-coalesce=false", "later", "x").returncode == 0
    wait_for(lambda: user_events(plain_records), 15, "the later event on plain")
    time.sleep(2)
    assert [name for name, _, _ in user_events(plain_records)] == ["later"]


@pytest.mark.skipif(AGENT_TARGET == "serf", reason="hidden musubi flags")
def test_reap_settings_are_go_durations(tmp_path):
    bad = Agent(str(tmp_path), "x", args=["-reconnect-timeout=soon"])
    bad.start(wait=False)
    assert bad.wait_exit() == 1
    assert "invalid duration" in bad.log()
