"""`serf info`, `serf rtt`, `serf monitor` and large user events against `musubi agent`,
driven by Debian's real `serf` CLI; plus garbage on the gossip TCP port.

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf proves the Serf-behaviour
tests against Debian's `serf agent`; musubi's extensions are skipped there).
"""

import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import time

import pytest

from agents import (AGENT_TARGET, FAILURE_DETECTION_BOUND, SERF_BIN, agents,  # noqa: F401
                    serf, statuses, wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

musubi_only = pytest.mark.skipif(AGENT_TARGET == "serf", reason="a musubi extension of Serf")

INFO_SECTIONS = {
    "agent": {"name"},
    "runtime": {"os", "arch", "version", "max_procs", "goroutines", "cpu_count"},
    "serf": {"members", "failed", "left", "health_score", "member_time", "event_time",
             "query_time", "intent_queue", "event_queue", "query_queue", "encrypted",
             "coordinate_resets"},
}


def full_log(agent):
    with open(agent.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def info(agent):
    out = serf("info", agent, "-format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_info_has_serfs_sections_and_counts_a_failed_member(agents):
    a1 = agents("a1", tags=["role=web"],
                args=["-event-handler", "user:deploy=true", "-event-handler", "member-join=true"])
    a2 = agents("a2", join=[a1.gossip_addr])
    a3 = agents("a3", join=[a1.gossip_addr])
    wait_for(lambda: len(statuses(a1)) == 3, 15, "a1 to see three members")
    a3.kill()
    wait_for(lambda: statuses(a1).get("a3") == "failed", FAILURE_DETECTION_BOUND,
             "a1 to see a3 failed")

    stats = info(a1)
    assert set(stats) == {"agent", "event_handlers", "runtime", "serf", "tags"}
    for section, keys in INFO_SECTIONS.items():
        assert set(stats[section]) == keys, section
    for section in stats.values():  # every value is a string, as Serf's map[string]string
        assert all(isinstance(value, str) for value in section.values())
    assert stats["agent"]["name"] == "a1"
    assert stats["event_handlers"] == {"user:deploy": "true", "member-join:": "true"}
    assert stats["tags"] == {"role": "web"}
    s = stats["serf"]
    assert (s["members"], s["failed"], s["left"]) == ("3", "1", "0")
    assert s["encrypted"] == "false"
    assert int(s["event_time"]) >= 1 and int(s["query_time"]) >= 1
    assert int(s["member_time"]) >= 1
    r = stats["runtime"]
    assert r["os"] == "linux"
    assert int(r["cpu_count"]) >= 1 and int(r["max_procs"]) >= 1 and int(r["goroutines"]) >= 1

    # the text form: sections in order, "\tkey = value" lines sorted by key
    text = serf("info", a1)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    sections = [line[:-1] for line in lines if not line.startswith("\t")]
    assert sections == ["agent", "event_handlers", "runtime", "serf", "tags"]
    assert "\tmembers = 3" in lines and "\tfailed = 1" in lines
    assert "\tname = a1" in lines and "\trole = web" in lines
    serf_keys = lines[lines.index("serf:") + 1:lines.index("tags:")]
    assert [line.split(" = ")[0].strip() for line in serf_keys] == sorted(INFO_SECTIONS["serf"])


def test_info_after_a_user_event_moves_the_event_clock(agents):
    a1 = agents("a1")
    before = int(info(a1)["serf"]["event_time"])
    assert serf("event", a1, "tick").returncode == 0
    wait_for(lambda: int(info(a1)["serf"]["event_time"]) > before, 5, "the event clock to move")


RTT_LINE = re.compile(r"^Estimated (\S+) <-> (\S+) rtt: (\d+\.\d{3}) ms$")


def rtt(agent, *nodes):
    return serf("rtt", agent, *nodes)


def test_rtt_between_two_agents_and_to_an_unknown_node(agents):
    a1 = agents("a1")
    a2 = agents("a2", join=[a1.gossip_addr])
    # coordinates arrive with the first probes after the join
    out = wait_for(lambda: (lambda o: o if o.returncode == 0 else None)(rtt(a1, "a2")),
                   15, "a1 to have a2's coordinate")
    match = RTT_LINE.match(out.stdout.strip())
    assert match, out.stdout
    assert match.group(1, 2) == ("a2", "a1")  # the second node defaults to the agent's own
    assert 0 < float(match.group(3)) < 1000  # loopback, even on a loaded machine
    both = wait_for(lambda: (lambda o: o if o.returncode == 0 else None)(rtt(a2, "a1", "a2")),
                    15, "a2 to have a1's coordinate")
    assert RTT_LINE.match(both.stdout.strip()).group(1, 2) == ("a1", "a2")

    unknown = rtt(a1, "nope")
    assert unknown.returncode == 1
    assert 'Could not find a coordinate for node "nope"' in unknown.stdout + unknown.stderr
    unknown_second = rtt(a1, "a2", "nope")
    assert unknown_second.returncode == 1
    assert 'Could not find a coordinate for node "nope"' in unknown_second.stdout + unknown_second.stderr


@musubi_only
def test_malformed_coordinate_acks_are_dropped_and_coordinates_keep_working(agents):
    a1 = agents("a1", args=["-log-level", "debug"])
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "a1 to see a2")
    nan = struct.pack("<f", float("nan")) * 11
    zeros = b"\x00" * 44  # a finite position, in front of a foca packet that is garbage
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in [b"\x0a", b"\x0a" + b"\x00" * 10, b"\x0a" + nan + b"\x01\x02",
                         b"\x0a" + zeros + b"\xff\xff\xff"] * 5:
            sock.sendto(datagram, ("127.0.0.1", a1.gossip_port))
    wait_for(lambda: "dropped an invalid coordinate" in full_log(a1), 10, "the NaN position")
    text = full_log(a1)
    assert "coordinate datagram too short" in text
    assert "dropped gossip packet" in text
    # a garbage position never reached the cache: a1's estimate to a2 stays a loopback one
    out = wait_for(lambda: (lambda o: o if o.returncode == 0 else None)(rtt(a1, "a2")),
                   15, "a1 to have a2's coordinate")
    assert 0 < float(RTT_LINE.match(out.stdout.strip()).group(3)) < 1000
    assert statuses(a1) == {"a1": "alive", "a2": "alive"}


@musubi_only
def test_disabled_coordinates_give_serf_rtt_nothing(agents):
    a1 = agents("a1", args=["-disable-coordinates"])
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1).get("a2") == "alive", 15, "a1 to see a2")
    time.sleep(2.5)  # a few probe intervals: a2 has pinged a1 by now
    out = rtt(a1, "a2")
    assert out.returncode == 1
    assert 'Could not find a coordinate for node "a2"' in out.stdout + out.stderr
    # a1 still answers pings, without a position: a2 learns none for it
    assert rtt(a2, "a1").returncode == 1
    assert info(a2)["serf"]["health_score"] == "0"


def checksum_handler(tmp_path):
    """A handler that stores each `big` event's stdin as DIR/<node>; (spec, directory)."""
    directory = tmp_path / "received"
    directory.mkdir()
    script = tmp_path / "store.sh"
    script.write_text('#!/bin/sh\ncat > "%s/$SERF_SELF_NAME"\n' % directory)
    script.chmod(0o755)
    return "user:big=%s" % script, directory


def big_event_reaches_every_member_once(agents, tmp_path, args=()):
    """Three agents started with `args`; a 64 KiB user event sent from the middle one
    (too big for gossip: it crosses the stream transport) must reach every member's
    handler intact and exactly once. Returns the agents."""
    spec, received = checksum_handler(tmp_path)
    limit = ["-user-event-size-limit", "70000", "-event-handler", spec, *args]
    a1 = agents("a1", args=limit)
    a2 = agents("a2", join=[a1.gossip_addr], args=limit)
    a3 = agents("a3", join=[a2.gossip_addr], args=limit)
    for agent in (a1, a2, a3):
        wait_for(lambda: len(statuses(agent)) == 3, 15, "%s to see three members" % agent.name)
    # 64 KiB of text (an argv string cannot hold NUL bytes), different in every run
    payload = hashlib.sha256(os.urandom(16)).hexdigest().encode() * 1024
    assert len(payload) == 65536
    out = serf("event", a2, "big", payload.decode())
    assert out.returncode == 0, out.stdout + out.stderr
    # the handler's stdin is the payload plus the newline Serf adds
    expected = hashlib.sha256(payload + b"\n").hexdigest()
    for agent in (a1, a2, a3):
        path = received / agent.name
        wait_for(lambda: path.exists() and path.stat().st_size == len(payload) + 1, 15,
                 "%s's handler to receive the whole event" % agent.name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected, agent.name
    time.sleep(1)  # delivered once: a repeat would rewrite the file unchanged, so count logs
    for agent in (a1, a2, a3):
        assert full_log(agent).count("Received event: user-event: big") == 1, agent.name
    return a1, a2, a3


@musubi_only
def test_a_64_kib_user_event_reaches_every_member_intact(agents, tmp_path):
    big_event_reaches_every_member_once(agents, tmp_path)


def refused_event(agent, payload_size):
    """`serf event big <payload>` that must fail; its output."""
    out = serf("event", agent, "big", "x" * payload_size)
    assert out.returncode == 1, out.stdout
    return out.stdout + out.stderr


def test_a_64_kib_user_event_without_a_raised_limit_is_refused_with_serfs_text(agents):
    a1 = agents("a1")
    assert ("Error sending event: user event exceeds configured limit of 512 bytes "
            "before encoding") in refused_event(a1, 65536)


@musubi_only
def test_a_raised_limit_is_still_a_limit(agents):
    a1 = agents("a1", args=["-user-event-size-limit", "70000"])
    assert "user event exceeds configured limit of 70000 bytes before encoding" in \
        refused_event(a1, 70000)


@musubi_only
def test_a_64_kib_query_and_a_64_kib_answer_travel_whole(agents):
    from test_agent_query import Rpc  # a Serf RPC client that reads streams

    limits = ["-query-size-limit", "70000", "-query-response-size-limit", "70000"]
    a1 = agents("a1", args=limits)
    a2 = agents("a2", join=[a1.gossip_addr], args=limits)
    a3 = agents("a3", join=[a1.gossip_addr], args=limits)
    for agent in (a1, a2, a3):
        wait_for(lambda: len(statuses(agent)) == 3, 15, "%s to see three members" % agent.name)
    question = hashlib.sha256(b"q" + os.urandom(8)).hexdigest().encode() * 1024
    answer = hashlib.sha256(b"a" + os.urandom(8)).hexdigest().encode() * 1024
    assert len(question) == len(answer) == 65536
    client = Rpc(a3)
    stream = client.send("stream", {"Type": "query:ask"})
    assert client.reply(stream) == ""
    asking = subprocess.Popen([SERF_BIN, "query", "-rpc-addr=" + a1.rpc_addr, "-format", "json",
                               "-node", "a3", "-timeout", "5s", "ask", question.decode()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, _, record = client.wait(lambda m: m[0] == stream and m[2] is not None, what="the query")
    assert hashlib.sha256(record["Payload"]).digest() == hashlib.sha256(question).digest()
    respond = client.send("respond", {"ID": record["ID"], "Payload": answer})
    assert client.reply(respond) == ""
    out, err = asking.communicate(timeout=20)
    assert asking.returncode == 0, out + err
    result = json.loads(out)
    assert result["Acks"] == ["a3"]
    assert list(result["Responses"]) == ["a3"]
    assert hashlib.sha256(result["Responses"]["a3"].encode()).digest() == \
        hashlib.sha256(answer).digest()


LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(TRACE|DEBUG|INFO|WARN|ERR)\] ")


def test_serf_monitor_shows_a_join_and_debug_lines(agents, tmp_path):
    a1 = agents("a1")
    out_path = tmp_path / "monitor.out"
    with open(out_path, "wb") as out:
        monitor = subprocess.Popen([SERF_BIN, "monitor", "-rpc-addr=" + a1.rpc_addr,
                                    "-log-level=debug"], stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(1)
        agents("a2", join=[a1.gossip_addr])

        def joined():
            lines = out_path.read_text(errors="replace").splitlines()
            return [line for line in lines
                    if LOG_LINE.match(line) and "[INFO]" in line
                    and line.endswith("Received event: member-join")]
        # a1's own join, logged before the monitor started, comes from the buffered lines
        wait_for(lambda: len(joined()) >= 2, 15, "serf monitor to show both member-joins")
        lines = out_path.read_text(errors="replace").splitlines()
        assert any(LOG_LINE.match(line) and "[DEBUG]" in line for line in lines)
    finally:
        monitor.kill()
        monitor.wait()

    # at the default level (INFO) no debug line is shown
    quiet = subprocess.run(["timeout", "2", SERF_BIN, "monitor", "-rpc-addr=" + a1.rpc_addr],
                           capture_output=True, text=True)
    log_lines = [line for line in quiet.stdout.splitlines() if LOG_LINE.match(line)]
    assert log_lines and not any("[DEBUG]" in line for line in log_lines)


def test_monitor_refuses_an_unknown_level(agents):
    a1 = agents("a1")
    out = serf("monitor", a1, "-log-level=loud")
    assert out.returncode == 1
    assert "Unknown log level: LOUD" in out.stdout + out.stderr


def send_raw(addr, data, linger=0.5):
    """Connect to a TCP address, send bytes, wait a little for the peer to react."""
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        try:
            conn.sendall(data)
            conn.settimeout(linger)
            conn.recv(4096)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass


def test_garbage_and_oversized_frames_on_the_gossip_tcp_port_do_not_hurt(agents):
    a1 = agents("a1")
    a2 = agents("a2", join=[a1.gossip_addr])
    send_raw(a1.gossip_addr, os.urandom(4096))
    send_raw(a1.gossip_addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    send_raw(a1.gossip_addr, struct.pack(">I", 0xFFFFFFFF) + b"x" * 100)  # 4 GiB frame
    send_raw(a1.gossip_addr, struct.pack(">I", (1 << 20) + 1))  # one byte past the limit
    send_raw(a1.gossip_addr, struct.pack(">I", 100) + b"short")  # cut short
    send_raw(a1.gossip_addr, struct.pack(">I", 5) + b"\x63junk")  # a frame of no known kind
    send_raw(a1.gossip_addr, struct.pack(">I", 5) + b"\x08junk")  # a "direct event" of junk
    assert a1.proc.poll() is None, a1.log()
    assert statuses(a1) == {"a1": "alive", "a2": "alive"}
    assert serf("event", a2, "still-works").returncode == 0
    wait_for(lambda: "user-event: still-works" in full_log(a1), 10, "a1 to receive a user event")
    if AGENT_TARGET != "serf":
        assert "closing: frame length 4294967295 is outside" in full_log(a1)
