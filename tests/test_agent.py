"""`musubi agent` driven by Debian's real `serf` CLI: joining, tags, leave, failure
detection, force-leave, and the RPC port's handling of bad clients.

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf proves these tests against
Debian's `serf agent`).
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

import harness
from agents import (AGENT_TARGET, FAILURE_DETECTION_BOUND, SERF_BIN, Agent, agents,  # noqa: F401
                    recording_handler, serf, statuses, trio, wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")


def test_three_agents_see_each_other_alive_with_their_tags(trio):
    a1, a2, a3 = trio
    for agent in trio:
        members = agent.members()
        assert sorted(members) == ["a1", "a2", "a3"]
        assert members["a1"]["tags"] == {"role": "web", "dc": "east"}
        assert members["a2"]["tags"] == {"role": "db"}
        assert members["a3"]["tags"] == {}
        for other in trio:
            m = members[other.name]
            assert m["addr"] == other.gossip_addr
            assert m["port"] == other.gossip_port
            assert m["status"] == "alive"
    text = serf("members", a3)
    assert text.returncode == 0
    # name, addr, status, then the tags joined by commas in no particular order (a Go map)
    rows = sorted(line.split() for line in text.stdout.splitlines())
    rows = [row[:3] + [sorted(row[3].split(","))] if len(row) > 3 else row for row in rows]
    assert rows == [["a1", a1.gossip_addr, "alive", ["dc=east", "role=web"]],
                    ["a2", a2.gossip_addr, "alive", ["role=db"]],
                    ["a3", a3.gossip_addr, "alive"]]


def test_members_filters_by_tag_name_and_status(trio):
    a1, a2, a3 = trio
    web = serf("members", a3, "-tag", "role=w.*", "-format", "json")
    assert [m["name"] for m in json.loads(web.stdout)["members"]] == ["a1"]
    by_name = serf("members", a1, "-name", "a[23]", "-status", "alive")
    assert sorted(line.split()[0] for line in by_name.stdout.splitlines()) == ["a2", "a3"]
    # anchored: "a" alone matches no name
    none = serf("members", a1, "-name", "a", "-format", "json")
    assert json.loads(none.stdout)["members"] is None  # the serf CLI prints an empty list as null


def test_serf_leave_makes_the_member_left_on_the_others(trio):
    a1, a2, a3 = trio
    out = serf("leave", a2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Graceful leave complete" in out.stdout
    assert a2.wait_exit() == 0
    for agent in (a1, a3):
        wait_for(lambda: statuses(agent).get("a2") == "left", 15, "%s to see a2 left" % agent.name)


def test_sigint_leaves_gracefully_and_exits_0(trio):
    a1, a2, a3 = trio
    a3.proc.send_signal(signal.SIGINT)
    assert a3.wait_exit() == 0
    wait_for(lambda: statuses(a1).get("a3") == "left", 15, "a1 to see a3 left")


def test_sigterm_exits_1_without_leaving_so_the_others_see_it_failed(trio):
    # As Serf: SIGTERM leaves only with leave_on_terminate (tests/test_agent_config.py).
    a1, a2, a3 = trio
    a1.proc.send_signal(signal.SIGTERM)
    assert a1.wait_exit() == 1
    wait_for(lambda: statuses(a2).get("a1") == "failed", FAILURE_DETECTION_BOUND,
             "a2 to see a1 failed")


def test_a_killed_member_is_failed_then_force_left(trio):
    a1, a2, a3 = trio
    a3.proc.kill()
    a3.proc.wait()
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent).get("a3") == "failed", FAILURE_DETECTION_BOUND,
                 "%s to see a3 failed" % agent.name)
    out = serf("force-leave", a1, "a3")
    assert out.returncode == 0, out.stdout + out.stderr
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent).get("a3") == "left", 15, "%s to see a3 left" % agent.name)
    assert statuses(a1)["a2"] == "alive"


def test_serf_tags_changes_reach_every_member(trio):
    a1, a2, a3 = trio
    out = serf("tags", a1, "-set", "role=cache", "-set", "zone=z1", "-delete", "dc")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Successfully updated agent tags" in out.stdout
    for agent in trio:
        wait_for(lambda: agent.members()["a1"]["tags"] == {"role": "cache", "zone": "z1"}, 15,
                 "%s to see a1's new tags" % agent.name)
    out = serf("tags", a2, "-delete", "role")
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: a3.members()["a2"]["tags"] == {}, 15, "a3 to see a2's tags deleted")
    assert statuses(a3) == {"a1": "alive", "a2": "alive", "a3": "alive"}


def test_the_tags_file_is_read_at_start_and_rewritten_on_change(agents, tmp_path):
    tags_file = tmp_path / "tags.json"
    tags_file.write_text('{"role": "web"}')
    a1 = agents("a1", args=["-tags-file", str(tags_file)])
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: a2.members().get("a1", {}).get("tags") == {"role": "web"}, 15,
             "a2 to see a1's tags from its file")
    out = serf("tags", a1, "-set", "dc-zone=x")
    assert out.returncode == 0, out.stdout + out.stderr
    assert tags_file.read_text() == '{\n  "dc-zone": "x",\n  "role": "web"\n}'
    wait_for(lambda: a2.members()["a1"]["tags"] == {"role": "web", "dc-zone": "x"}, 15,
             "a2 to see a1's new tag")


def test_a_missing_tags_file_is_written_on_the_first_change(agents, tmp_path):
    tags_file = tmp_path / "absent.json"
    a1 = agents("a1", args=["-tags-file", str(tags_file)])
    assert a1.members()["a1"]["tags"] == {}
    assert serf("tags", a1, "-set", "k=v").returncode == 0
    assert json.loads(tags_file.read_text()) == {"k": "v"}
    assert tags_file.stat().st_mode & 0o777 == 0o600  # tags may be secrets


def test_tags_and_a_tags_file_together_are_refused(tmp_path):
    agent = Agent(str(tmp_path), "a1", tags=["role=web"],
                  args=["-tags-file", str(tmp_path / "tags.json")])
    agent.start(wait=False)
    try:
        assert agent.wait_exit() == 1
        assert "Tags config not allowed while using tag files" in agent.log()
    finally:
        agent.kill()


def test_tags_past_512_encoded_bytes_are_refused_as_serf_refuses_them(agents, tmp_path):
    a1 = agents("a1")
    # a 505-byte value under a one-byte key encodes to exactly 512 bytes
    assert serf("tags", a1, "-set", "a=" + "x" * 505).returncode == 0
    out = serf("tags", a1, "-set", "a=" + "x" * 506)
    assert (out.stdout + out.stderr, out.returncode) == (
        "Error setting tags: Encoded length of tags exceeds limit of 512 bytes\n", 1)
    assert a1.members()["a1"]["tags"] == {"a": "x" * 505}
    agent = Agent(str(tmp_path), "big", tags=["big=" + "x" * 600])
    agent.start(wait=False)
    try:
        assert agent.wait_exit() == 1
        assert ("Failed to start the Serf agent: Error creating Serf: Encoded length of tags "
                "exceeds limit of 512 bytes") in agent.log()
    finally:
        agent.kill()


def received_user_events(agent, name):
    """How often the agent logged Serf's line for receiving user event `name`."""
    return agent.log().count("Received event: user-event: %s\n" % name)


def test_a_user_event_reaches_every_member_once(trio):
    a1, a2, a3 = trio
    out = serf("event", a2, "deploy", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Event 'deploy' dispatched! Coalescing enabled: true" in out.stdout
    out = serf("event", a3, "-coalesce=false", "ping")
    assert out.returncode == 0, out.stdout + out.stderr
    for agent in trio:
        for name in ("deploy", "ping"):
            wait_for(lambda: received_user_events(agent, name) > 0, 15,
                     "%s to receive %s" % (agent.name, name))
    time.sleep(2)  # long enough for repeats still circulating to arrive
    for agent in trio:
        assert [received_user_events(agent, name) for name in ("deploy", "ping")] == [1, 1]


def test_a_user_event_over_512_bytes_is_refused(agents):
    a1 = agents("a1")
    out = serf("event", a1, "big", "x" * 510)
    assert out.returncode == 1
    assert ("Error sending event: user event exceeds configured limit of 512 bytes "
            "before encoding") in out.stdout + out.stderr
    out = serf("event", a1, "ok", "x" * 481)
    assert out.returncode == 1
    assert ("Error sending event: encoded user event exceeds configured limit of 512 bytes "
            "after encoding") in out.stdout + out.stderr
    assert serf("event", a1, "ok", "x" * 480).returncode == 0


# --- event handlers -----------------------------------------------------------------------



def member_lines(records, event):
    """The stdin lines of every `event` record, tags sorted (Serf's are in map order)."""
    lines = []
    for env, stdin in records():
        if env["SERF_EVENT"] == event:
            for line in stdin:
                name, addr, role, tags = line.split("\t")
                lines.append((name, addr, role, ",".join(sorted(tags.split(",")))))
    return lines


def test_event_handlers_see_member_and_user_events_with_serfs_env_and_stdin(agents, tmp_path):
    every_event, records = recording_handler(tmp_path, "all.log")
    filtered, filtered_records = recording_handler(tmp_path, "filtered.log")
    a1 = agents("a1", tags=["role=web", "dc-zone=z"],
                args=["-event-handler", every_event,
                      "-event-handler", "member-leave,user:deploy=" + filtered])
    a2 = agents("a2", tags=["role=db"], join=[a1.gossip_addr])
    a2_line = ("a2", "127.0.0.1", "db", "role=db")
    wait_for(lambda: a2_line in member_lines(records, "member-join"), 15, "a2's member-join")
    assert ("a1", "127.0.0.1", "web", "dc-zone=z,role=web") in member_lines(records, "member-join")

    for name, payload in [("deploy", "v1"), ("other", "")]:
        out = serf("event", a2, name, payload)
        assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: any(env.get("SERF_USER_EVENT") == "deploy" for env, _ in records()), 15,
             "the deploy user event")
    env, stdin = next((env, stdin) for env, stdin in records()
                      if env.get("SERF_USER_EVENT") == "deploy")
    assert stdin == ["v1"]
    assert env["SERF_EVENT"] == "user"
    assert env["SERF_SELF_NAME"] == "a1" and env["SERF_SELF_ROLE"] == "web"
    assert env["SERF_TAG_DC_ZONE"] == "z" and env["SERF_TAG_ROLE"] == "web"
    assert int(env["SERF_USER_LTIME"]) >= 0

    assert serf("tags", a2, "-set", "x=1").returncode == 0
    wait_for(lambda: ("a2", "127.0.0.1", "db", "role=db,x=1") in member_lines(records, "member-update"),
             15, "a2's member-update")
    assert serf("leave", a2).returncode == 0
    wait_for(lambda: [line[0] for line in member_lines(records, "member-leave")] == ["a2"], 15,
             "a2's member-leave")

    wait_for(lambda: len(filtered_records()) == 2, 15, "the filtered handler's two events")
    time.sleep(1)
    assert [env["SERF_EVENT"] for env, _ in filtered_records()] == ["user", "member-leave"]
    assert filtered_records()[0][0]["SERF_USER_EVENT"] == "deploy"
    assert any(env.get("SERF_USER_EVENT") == "other" for env, _ in records())


def test_a_killed_member_runs_member_failed_handlers(agents, tmp_path):
    failed_only, records = recording_handler(tmp_path, "failed.log")
    a1 = agents("a1", args=["-event-handler", "member-failed=" + failed_only])
    a2 = agents("a2", tags=["role=db"], join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1).get("a2") == "alive", 15, "a1 to see a2 alive")
    a2.kill()
    wait_for(lambda: member_lines(records, "member-failed") == [("a2", "127.0.0.1", "db", "role=db")],
             FAILURE_DETECTION_BOUND, "a2's member-failed")
    assert [env["SERF_EVENT"] for env, _ in records()] == ["member-failed"]


def test_an_event_handler_with_an_unknown_event_type_is_refused(tmp_path):
    agent = Agent(str(tmp_path), "a1", args=["-event-handler", "member-join,bogus=true"])
    agent.start(wait=False)
    try:
        assert agent.wait_exit() == 1
        assert "Invalid event script: Event 'bogus' invoking 'true'" in agent.log()
    finally:
        agent.kill()


def test_joining_nobody_is_an_error(agents):
    a1 = agents("a1")
    dead = "127.0.0.1:%d" % harness.free_port()
    out = serf("join", a1, dead)
    assert out.returncode == 1
    assert "Error joining the cluster" in out.stdout + out.stderr


def test_an_agent_whose_start_join_fails_exits_1(tmp_path):
    agent = Agent(str(tmp_path), "lonely", join=["127.0.0.1:%d" % harness.free_port()])
    agent.start(wait=False)
    try:
        assert agent.wait_exit(timeout=30) == 1
    finally:
        agent.kill()


# --- the RPC port against clients that are not the serf CLI -------------------------------
# Requests are hand-encoded msgpack; expected replies are the bytes Serf's own agent sends.

def mp_str(text):
    data = text.encode()
    assert len(data) < 32
    return bytes([0xA0 | len(data)]) + data


def mp_map(entries):
    out = bytes([0x80 | len(entries)])
    for key, value in entries:
        out += mp_str(key) + value
    return out


def request(command, seq, body=None):
    data = mp_map([("Command", mp_str(command)), ("Seq", bytes([seq]))])
    return data + (body or b"")


def reply_header(seq, error=""):
    return mp_map([("Error", mp_str(error)), ("Seq", bytes([seq]))])


HANDSHAKE = request("handshake", 0, mp_map([("Version", b"\x01")]))


def rpc_exchange(agent, data, timeout=5.0):
    """Send data, read until the agent closes or goes quiet; (bytes, closed)."""
    with socket.create_connection(("127.0.0.1", agent.rpc_port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                return received, False
            except ConnectionResetError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
            conn.settimeout(1.0)


def test_garbage_on_the_rpc_port_closes_that_connection_only(agents):
    a1 = agents("a1")
    for garbage in [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xc1\xc1\xc1", bytes(range(256)),
                    mp_map([("Command", b"\x07"), ("Seq", b"\x01")])]:
        received, closed = rpc_exchange(a1, garbage)
        assert closed, "connection left open after %r" % garbage[:16]
        assert received == b""
    assert a1.proc.poll() is None
    assert serf("members", a1).returncode == 0


def test_commands_before_the_handshake_are_refused(agents):
    a1 = agents("a1")
    received, closed = rpc_exchange(a1, request("members", 5))
    assert received == reply_header(5, "Handshake required")
    assert closed


def test_an_unknown_command_gets_serfs_error(agents):
    a1 = agents("a1")
    received, closed = rpc_exchange(a1, HANDSHAKE + request("bogus", 3))
    assert received == reply_header(0) + reply_header(3, "Unsupported command")
    assert closed


def test_handshake_versions_and_repeats(agents):
    a1 = agents("a1")
    received, _ = rpc_exchange(a1, request("handshake", 0, mp_map([("Version", b"\x02")])))
    assert received == reply_header(0, "Unsupported IPC version")
    twice = HANDSHAKE + request("handshake", 1, mp_map([("Version", b"\x01")]))
    received, closed = rpc_exchange(a1, twice)
    assert received == reply_header(0) + reply_header(1, "Handshake already performed")
    assert not closed
    stop = request("stop", 2, mp_map([("Stop", b"\x09")]))
    received, _ = rpc_exchange(a1, HANDSHAKE + stop)
    assert received == reply_header(0) + reply_header(2)


def test_a_bad_filter_regexp_closes_the_connection_without_a_reply(agents):
    a1 = agents("a1")
    body = mp_map([("Tags", mp_map([])), ("Status", mp_str("(")), ("Name", mp_str(""))])
    received, closed = rpc_exchange(a1, HANDSHAKE + request("members-filtered", 1, body))
    assert received == reply_header(0)
    assert closed
    assert serf("members", a1).returncode == 0
