"""Five agents, each in its own network namespace with a real (non-loopback) address on
a bridge, driven by the real `serf` CLI run inside each namespace: they join and see each
other alive; a pulled link makes a member failed on the others and healing it brings it
back alive; a graceful leave shows as left; a kill -9 is failed, then left after
`serf force-leave`.

With MUSUBI_AGENT_TARGET=serf the agents are Debian's `serf agent`, which proves the
expectations against Serf itself. Needs root (ip netns, veth, bridge); see netns.py for
the topology (this file uses its own bridge names and the 10.78.X subnets).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

import netns
from agents import AGENT_TARGET, SERF_BIN, wait_for
from harness import musubi_bin

_unavailable = netns.why_unavailable()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=_unavailable or "")

SIZE = 5
GOSSIP_PORT = 7946
# Each namespace has a loopback of its own, so every agent can use Serf's default RPC port.
RPC_ADDR = "127.0.0.1:7373"
# Serf's LAN profile notices a dead member in a few seconds; generous for a loaded machine.
FAILURE_BOUND = 30.0
# A member cut off from everyone has marked everyone failed, and they it: nobody probes a
# failed member, so after healing they find each other through the periodic reconnect
# (Serf: every 30 s to a failed member; foca: announce to down members every 65 s).
RECONNECT_BOUND = 150.0


class NsAgent:
    """One agent process inside namespace i of `net`, gossiping on its bridge address."""

    def __init__(self, net, i, workdir, binary):
        self.net = net
        self.index = i
        self.name = "n%d" % i
        self.gossip_addr = "%s:%d" % (net.ip(i), GOSSIP_PORT)
        self.log_path = os.path.join(workdir, "agent.%s.log" % self.name)
        self.binary = binary
        self.proc = None

    def __repr__(self):
        return "%s(%s)" % (self.name, self.gossip_addr)

    def in_ns(self, *argv):
        return ["ip", "netns", "exec", self.net.ns(self.index), *argv]

    def start(self, join=()):
        argv = self.in_ns(self.binary, "agent", "-node", self.name, "-bind", self.gossip_addr,
                          "-rpc-addr", RPC_ADDR)
        for peer in join:
            argv += ["-join", peer.gossip_addr]
        with open(self.log_path, "ab") as log:
            # `ip netns exec` execs the agent itself, so this pid is the agent's.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.running() and self.serf("members").returncode == 0, 15,
                 "%s to answer RPC" % self)
        return self

    def running(self):
        assert self.proc.poll() is None, "%s exited with %s:\n%s" % (
            self, self.proc.returncode, self.log())
        return True

    def serf(self, command, *args):
        """The real serf CLI, run inside this agent's namespace against its RPC port."""
        return subprocess.run(self.in_ns(SERF_BIN, command, "-rpc-addr=" + RPC_ADDR, *args),
                              capture_output=True, text=True, timeout=30)

    def members(self):
        out = self.serf("members", "-format", "json")
        assert out.returncode == 0, out.stdout + out.stderr
        return {m["name"]: m for m in json.loads(out.stdout)["members"]}

    def statuses(self):
        return {name: m["status"] for name, m in self.members().items()}

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""


def private_binary(workdir):
    """The agent under a name of its own: others on this machine stop their processes by
    name (`pkill musubi`, `pkill serf`), which must not take these agents down mid-test."""
    link = os.path.join(workdir, "netns-agent")
    target = SERF_BIN if AGENT_TARGET == "serf" else os.path.abspath(musubi_bin())
    os.symlink(target, link)
    return link


@pytest.fixture
def cluster(request):
    """SIZE agents in namespaces; n2..n5 join n1 by its bridge address. Torn down after
    the test; on failure every agent's log is printed."""
    netns.sweep_leftovers()
    net = netns.Network(SIZE, prefix="ma", subnet_base="10.78").build()
    workdir = tempfile.mkdtemp(prefix="netns-agents-")
    binary = private_binary(workdir)
    agents = [NsAgent(net, i, workdir, binary) for i in range(1, SIZE + 1)]
    try:
        agents[0].start()
        for agent in agents[1:]:
            agent.start(join=[agents[0]])
        everyone = {a.name: "alive" for a in agents}
        for agent in agents:
            wait_for(lambda: agent.statuses() == everyone, 30, "%s to see all alive" % agent)
        yield agents
    finally:
        failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False)
                     for w in ("setup", "call"))
        for agent in agents:
            agent.kill()
            if failed:
                print("\n--- log of %s ---\n%s" % (agent, agent.log()))
        net.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_status(observers, name, status, bound):
    for agent in observers:
        wait_for(lambda: agent.statuses().get(name) == status, bound,
                 "%s to see %s %s" % (agent, name, status))


def test_agents_in_namespaces_join_and_see_each_other_at_their_real_addresses(cluster):
    expected = {a.name: a.gossip_addr for a in cluster}
    for agent in cluster:
        members = agent.members()
        assert {name: m["addr"] for name, m in members.items()} == expected
        assert all(m["status"] == "alive" for m in members.values())
        assert not any(m["addr"].startswith("127.") for m in members.values())


def test_a_member_whose_link_goes_down_is_failed_then_alive_once_it_heals(cluster):
    cut, others = cluster[2], cluster[:2] + cluster[3:]
    cluster[0].net.link_down(cut.index)
    wait_status(others, cut.name, "failed", FAILURE_BOUND)
    cluster[0].net.link_up(cut.index)
    everyone = {a.name: "alive" for a in cluster}
    for agent in cluster:
        wait_for(lambda: agent.statuses() == everyone, RECONNECT_BOUND,
                 "%s to see everyone alive after healing" % agent)


def test_a_graceful_leave_shows_as_left(cluster):
    leaver, others = cluster[4], cluster[:4]
    out = leaver.serf("leave")
    assert out.returncode == 0, out.stdout + out.stderr
    assert leaver.proc.wait(15) == 0
    wait_status(others, leaver.name, "left", FAILURE_BOUND)


def test_a_killed_member_is_failed_then_left_after_force_leave(cluster):
    victim, others = cluster[1], [cluster[0]] + cluster[2:]
    victim.kill()
    wait_status(others, victim.name, "failed", FAILURE_BOUND)
    out = others[0].serf("force-leave", victim.name)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_status(others, victim.name, "left", FAILURE_BOUND)
