"""Lifeguard, as Serf's memberlist runs it: a member that cannot reach anyone doubts itself
(`serf info`'s health_score rises, and falls again once its probes are answered), and a
suspicion is declared a failure sooner when other members confirm it on their own
(memberlist's "suspect timeout reached (N peer confirmations)" line).

Runs against Debian's `serf agent` too (MUSUBI_AGENT_TARGET=serf)."""

import json
import os
import re
import signal

from agents import FAILURE_DETECTION_BOUND, agents, serf, statuses, wait_for  # noqa: F401


def health_score(agent):
    out = serf("info", agent, "-format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    return int(json.loads(out.stdout)["serf"]["health_score"])


def full_log(agent):
    with open(agent.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def test_a_member_whose_probes_go_unanswered_doubts_itself_and_recovers(agents):
    a1 = agents("a1")
    a2 = agents("a2", join=[a1.gossip_addr])
    a3 = agents("a3", join=[a1.gossip_addr])
    everyone = {"a1": "alive", "a2": "alive", "a3": "alive"}
    wait_for(lambda: statuses(a1) == everyone, 15, "a1 to see all three alive")
    assert health_score(a1) == 0
    # a1's peers freeze: every probe it sends goes unanswered, by them and by anyone it
    # could ask to relay
    for peer in (a2, a3):
        os.kill(peer.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: health_score(a1) >= 2, FAILURE_DETECTION_BOUND, "a1 to doubt itself")
    finally:
        for peer in (a2, a3):
            os.kill(peer.proc.pid, signal.SIGCONT)
    # they come back, refute, answer a1's probes: a1's health returns
    wait_for(lambda: statuses(a1) == everyone, 60, "a1 to see its peers alive again")
    wait_for(lambda: health_score(a1) == 0, 60, "a1's health score back to 0")


def test_other_members_confirm_a_suspicion_before_it_is_declared_a_failure(agents):
    # five members: Lifeguard wants two confirmations (suspicion_mult 4 − 2) before it
    # shortens a suspicion to its least; fewer than four members would want none
    first = agents("m1")
    members = [first] + [agents("m%d" % i, join=[first.gossip_addr]) for i in range(2, 6)]
    victim, others = members[-1], members[:-1]
    everyone = {m.name: "alive" for m in members}
    for m in members:
        wait_for(lambda: statuses(m) == everyone, 20, "%s to see all five alive" % m.name)
    victim.kill()
    for m in others:
        wait_for(lambda: statuses(m).get(victim.name) == "failed", FAILURE_DETECTION_BOUND,
                 "%s to see %s failed" % (m.name, victim.name))
    line = re.compile(r"Marking %s as failed, suspect timeout reached \((\d+) peer confirmations\)"
                      % victim.name)
    confirmations = [int(n) for m in others for n in line.findall(full_log(m))]
    assert confirmations, "no member declared the failure itself"
    # the member whose deadline came first had heard from other suspecters
    assert max(confirmations) >= 1, confirmations
