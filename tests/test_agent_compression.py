"""Compressed gossip (wire kind 11, docs/agent-info.md): a cluster, plain and encrypted,
delivers a large compressible user event and a query's answers whole, while the frames on
the wire are a fraction of their size; and kind-11 garbage (corrupt data, a zip bomb, a
compressed datagram inside another) sent to the gossip port is dropped with a log line
while the agent stays up.

Environment: see tests/agents.py. musubi's own wire format: skipped against Serf.
"""

import json
import os
import re
import socket
import struct
import subprocess
import zlib

import pytest

from agents import AGENT_TARGET, SERF_BIN, agents, serf, statuses, wait_for  # noqa: F401
from test_agent_info import full_log
from test_agent_keys import keygen

pytestmark = [
    pytest.mark.skipif(not os.path.exists(SERF_BIN),
                       reason="Debian's serf is not installed (tests/run-all.sh installs it)"),
    pytest.mark.skipif(AGENT_TARGET == "serf", reason="musubi's gossip wire format"),
]

KIND_COMPRESSED = b"\x0b"
LIMITS = ["-user-event-size-limit", "70000", "-query-size-limit", "70000",
          "-query-response-size-limit", "70000"]
FRAME = re.compile(r"gossip stream from \S+: frame of (\d+) bytes")


def deflated(data):
    """Raw DEFLATE, as the agent compresses."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def status_report(size):
    """Text as compressible as real payloads are (a JSON line per host), `size` bytes,
    different in every run; an argv string, so no NUL bytes."""
    run = os.urandom(4).hex()
    lines = ('{"host":"web-%03d","status":"ok","run":"%s","version":"1.2.%d"}\n'
             % (i, run, i % 7) for i in range(size))
    return "".join(lines)[:size]


def frames_received(agent):
    """The sizes of the stream transport frames the agent received (its debug log)."""
    return [int(size) for size in FRAME.findall(full_log(agent))]


def cluster_of_three(agents, args):
    handler = ["-event-handler", "query:report=cat", "-log-level", "debug"]
    a1 = agents("a1", args=LIMITS + handler + args)
    a2 = agents("a2", join=[a1.gossip_addr], args=LIMITS + handler + args)
    a3 = agents("a3", join=[a1.gossip_addr], args=LIMITS + handler + args)
    everyone = {"a1": "alive", "a2": "alive", "a3": "alive"}
    for agent in (a1, a2, a3):
        wait_for(lambda: statuses(agent) == everyone, 20, "%s to see all three" % agent.name)
    return a1, a2, a3


@pytest.mark.parametrize("encryption", ["plain", "encrypted"])
def test_large_events_and_answers_travel_compressed_and_arrive_whole(agents, encryption):
    args = ["-encrypt", keygen()] if encryption == "encrypted" else []
    cluster = cluster_of_three(agents, args)
    a1 = cluster[0]

    # The query first, while no frame carries anything big (push-pull syncs carry recent
    # events): 8 KB, too big for a datagram; each member's handler (`cat`) answers with
    # the question itself (Serf truncates handler output past 8 KiB).
    question = status_report(8000)
    before = {agent.name: len(frames_received(agent)) for agent in cluster}
    out = subprocess.run([SERF_BIN, "query", "-rpc-addr=" + a1.rpc_addr, "-format", "json",
                          "-timeout", "8s", "report", question],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert sorted(result["Acks"]) == ["a1", "a2", "a3"]
    assert sorted(result["Responses"]) == ["a1", "a2", "a3"]
    for name, answer in result["Responses"].items():
        assert answer.strip("\n") == question, name
    # the question reached a2 and a3 in a frame of a fraction of its size; their answers,
    # compressed, fit a datagram each and so reached a1 over UDP, in no frame at all
    for agent in cluster[1:]:
        frames = frames_received(agent)[before[agent.name]:]
        assert frames and max(frames) < len(question) / 4, (agent.name, frames)
    assert frames_received(a1)[before["a1"]:] == []

    # A 60 KB event: too big for gossip, it goes to every member over the stream transport
    # (test_agent_info's 64 KiB event checks such an event's bytes at every handler)
    payload = status_report(60000)
    before = {agent.name: len(frames_received(agent)) for agent in cluster}
    out = serf("event", a1, "report", payload)
    assert out.returncode == 0, out.stdout + out.stderr
    for agent in cluster[1:]:
        wait_for(lambda: "Received event: user-event: report" in full_log(agent), 15,
                 "%s to receive the event" % agent.name)
        frames = frames_received(agent)[before[agent.name]:]
        assert frames and max(frames) < len(payload) / 4, (agent.name, frames)
    for agent in cluster:
        assert "Decrypt packet failed" not in full_log(agent), agent.name


def test_compressed_garbage_is_dropped_and_the_agent_stays_up(agents):
    a1 = agents("a1")
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "a1 to see a2")
    # 32 MiB of zeros in 32 KiB: inflated, 32 times the largest frame the agent takes
    bomb = KIND_COMPRESSED + deflated(bytes(32 << 20))
    assert len(bomb) < 65000
    nested = KIND_COMPRESSED + deflated(KIND_COMPRESSED + deflated(b"\x01a2" * 40))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (KIND_COMPRESSED, KIND_COMPRESSED + b"\xff\xff\xff\xff",
                     KIND_COMPRESSED + os.urandom(300), bomb, nested):
            s.sendto(junk, ("127.0.0.1", a1.gossip_port))
    # the bomb as a stream transport frame too
    with socket.create_connection(("127.0.0.1", a1.gossip_port), timeout=5) as conn:
        conn.sendall(struct.pack(">I", len(bomb)) + bomb)

    def dropped(reason):
        return len(re.findall(r"dropped datagram from 127\.0\.0\.1:\d+: " + reason,
                              full_log(a1)))
    wait_for(lambda: dropped("compressed datagram inflates past 1048576 bytes") == 2, 10,
             "a1 to drop both bombs")
    assert dropped("compressed datagram does not inflate") >= 2
    assert dropped("compressed twice") == 1
    assert a1.proc.poll() is None, a1.log()
    assert statuses(a1) == {"a1": "alive", "a2": "alive"}
    assert serf("event", a2, "still-works").returncode == 0
    wait_for(lambda: "user-event: still-works" in full_log(a1), 10, "a1 to receive an event")
