"""Agents for the process tests: `musubi agent` (or, with MUSUBI_AGENT_TARGET=serf,
Debian's `serf agent`) on loopback, the real `serf` CLI to drive them, and fixtures.

Environment (besides harness.py's):
  MUSUBI_AGENT_TARGET  "musubi" (default) or "serf": with "serf" every agent is Debian's
                       `serf agent`, which proves the tests against Serf itself.
  SERF_BIN             the serf binary (default: /usr/bin/serf)
"""

import json
import os
import subprocess
import time

import pytest

import harness

SERF_BIN = os.environ.get("SERF_BIN", "/usr/bin/serf")
AGENT_TARGET = os.environ.get("MUSUBI_AGENT_TARGET", "musubi")
# SWIM on loopback with Serf's LAN timings notices a dead member in about 6 s; the bound
# leaves room for a loaded machine without asserting a timing.
FAILURE_DETECTION_BOUND = 30.0


class Agent:
    """One agent process on loopback with its own gossip and RPC ports."""

    def __init__(self, workdir, name, tags=(), join=(), args=(), env=None, auth=None,
                 name_flag=True):
        """env: extra environment for the agent; auth: the rpc_auth key the serf CLI must
        give; name_flag=False leaves -node out (for a name from a config file)."""
        self.name = name
        self.env = dict(os.environ, **(env or {}))
        self.auth = auth
        self.gossip_port = harness.free_port()
        self.rpc_port = harness.free_port()
        self.log_path = os.path.join(workdir, "agent.%s.log" % name)
        prog = [SERF_BIN, "agent"] if AGENT_TARGET == "serf" else [harness.musubi_bin(), "agent"]
        self.argv = prog + (["-node", name] if name_flag else [])
        self.argv += ["-bind", self.gossip_addr, "-rpc-addr", self.rpc_addr]
        for tag in tags:
            self.argv += ["-tag", tag]
        for peer in join:
            self.argv += ["-join", peer]
        self.argv += list(args)
        self.proc = None

    @property
    def gossip_addr(self):
        return "127.0.0.1:%d" % self.gossip_port

    @property
    def rpc_addr(self):
        return "127.0.0.1:%d" % self.rpc_port

    def start(self, wait=True):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env=self.env)
        if wait:
            self.wait_rpc()
        return self

    def wait_rpc(self, timeout=15.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("agent %s exited with %s; log:\n%s"
                                   % (self.name, self.proc.returncode, self.log()))
            if serf("members", self).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("agent %s never answered on %s; log:\n%s"
                           % (self.name, self.rpc_addr, self.log()))

    def members(self):
        """{name: member} as `serf members -format json` prints them."""
        out = serf("members", self, "-format", "json")
        assert out.returncode == 0, out.stderr + out.stdout
        return {m["name"]: m for m in json.loads(out.stdout)["members"]}

    def wait_exit(self, timeout=15.0):
        return self.proc.wait(timeout=timeout)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode("utf-8", "replace")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def refused_at_start(workdir, name, args=(), tags=()):
    """Start an agent that must refuse to start: (its exit code, its log)."""
    agent = Agent(str(workdir), name, tags=tags, args=args)
    agent.start(wait=False)
    try:
        return agent.wait_exit(), agent.log()
    finally:
        agent.kill()


def serf(command, agent, *args):
    """Run the real serf CLI against an agent's RPC address (with its rpc_auth key, if any)."""
    auth = ["-rpc-auth=" + agent.auth] if getattr(agent, "auth", None) else []
    return subprocess.run([SERF_BIN, command, "-rpc-addr=" + agent.rpc_addr, *auth, *args],
                          capture_output=True, text=True, timeout=30)


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.time() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.2)


def statuses(agent):
    return {name: m["status"] for name, m in agent.members().items()}


@pytest.fixture
def agents(tmp_path, request):
    started = []

    def start(name, **kw):
        agent = Agent(str(tmp_path), name, **kw).start()
        started.append(agent)
        return agent

    yield start
    failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False)
                 for w in ("setup", "call"))
    for agent in started:
        agent.kill()
        if failed:
            print("\n--- log of agent %s ---\n%s" % (agent.name, agent.log()))


@pytest.fixture
def trio(agents):
    """Three agents: a2 joins a1 by flag, a3 joins a2 through `serf join`."""
    a1 = agents("a1", tags=["role=web", "dc=east"])
    a2 = agents("a2", tags=["role=db"], join=[a1.gossip_addr])
    a3 = agents("a3")
    out = serf("join", a3, a2.gossip_addr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Successfully joined cluster by contacting 1 nodes." in out.stdout
    everyone = {"a1": "alive", "a2": "alive", "a3": "alive"}
    for agent in (a1, a2, a3):
        wait_for(lambda: statuses(agent) == everyone, 15, "%s to see all three alive" % agent.name)
    return a1, a2, a3


RECORDING_HANDLER = """#!/bin/sh
# appends one record per event to $1: the SERF_ environment, then stdin
{ env | grep '^SERF_' | sort; echo '-- stdin'; cat; echo '-- end'; } >> "$1"
"""


def recording_handler(tmp_path, name):
    """A handler script command that records into tmp_path/name; (command, reader)."""
    script = tmp_path / "record.sh"
    script.write_text(RECORDING_HANDLER)
    script.chmod(0o755)
    out = tmp_path / name

    def records():
        """[(env dict, stdin lines)], oldest first."""
        text = out.read_text() if out.exists() else ""
        result = []
        for chunk in text.split("-- end\n")[:-1]:
            env_text, stdin = chunk.split("-- stdin\n")
            env = dict(line.split("=", 1) for line in env_text.splitlines())
            result.append((env, stdin.splitlines()))
        return result

    return "%s %s" % (script, out), records
