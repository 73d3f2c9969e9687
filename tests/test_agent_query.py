"""Serf queries on `musubi agent`, driven by Debian's real `serf` CLI (`serf query`,
`serf reachability`) and by a small msgpack RPC client (event streams, `respond`, `stop`).

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf proves these tests against
Debian's `serf agent`).
"""

import json
import os
import socket
import subprocess
import time

import pytest

from agents import (AGENT_TARGET, SERF_BIN, agents, recording_handler, serf,  # noqa: F401
                    statuses, wait_for)

msgpack = pytest.importorskip("msgpack")

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

# Answers queries by name; the agent runs it for every query.
ANSWER_SCRIPT = """#!/bin/sh
case "$SERF_QUERY_NAME" in
  whoami) echo "$SERF_SELF_NAME:$(cat)" ;;
  both) echo out; echo err >&2 ;;
  fails) echo "not an answer"; exit 2 ;;
  silent) cat >/dev/null ;;
  big) head -c 2000 /dev/zero | tr '\\0' x ;;
esac
"""


@pytest.fixture
def answering(agents, tmp_path):
    """Three agents whose handler answers queries: a1 role=web dc=east, a2 role=db, a3."""
    script = tmp_path / "answer.sh"
    script.write_text(ANSWER_SCRIPT)
    script.chmod(0o755)
    handler = ["-event-handler", "query=%s" % script]
    a1 = agents("a1", tags=["role=web", "dc=east"], args=handler)
    a2 = agents("a2", tags=["role=db"], join=[a1.gossip_addr], args=handler)
    a3 = agents("a3", join=[a1.gossip_addr], args=handler)
    everyone = {"a1": "alive", "a2": "alive", "a3": "alive"}
    for agent in (a1, a2, a3):
        wait_for(lambda: statuses(agent) == everyone, 15, "%s to see all three alive" % agent.name)
    return a1, a2, a3


def query_json(agent, *args):
    out = serf("query", agent, "-format", "json", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_a_query_is_acked_and_answered_by_every_member(answering):
    a1, a2, a3 = answering
    out = serf("query", a2, "-timeout", "2s", "whoami", "hello")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Query 'whoami' dispatched"
    assert sorted(line for line in lines if line.startswith("Ack from")) == [
        "Ack from 'a1'", "Ack from 'a2'", "Ack from 'a3'"]
    # the CLI strips the answer's final newline
    assert sorted(line for line in lines if line.startswith("Response from")) == [
        "Response from 'a1': a1:hello", "Response from 'a2': a2:hello",
        "Response from 'a3': a3:hello"]
    assert lines[-2:] == ["Total Acks: 3", "Total Responses: 3"]


def test_json_output_has_acks_and_responses(answering):
    a1, a2, a3 = answering
    result = query_json(a1, "-timeout", "2s", "whoami", "x")
    assert sorted(result["Acks"]) == ["a1", "a2", "a3"]
    assert result["Responses"] == {"a1": "a1:x\n", "a2": "a2:x\n", "a3": "a3:x\n"}


def test_stdout_and_stderr_together_are_the_answer(answering):
    a1, a2, a3 = answering
    result = query_json(a3, "-node", "a1", "-timeout", "1s", "both")
    assert result["Responses"] == {"a1": "out\nerr\n"}


def test_node_filters_pick_the_members_that_answer(answering):
    a1, a2, a3 = answering
    one = query_json(a1, "-node", "a2", "-timeout", "1s", "whoami", "n")
    assert (one["Acks"], one["Responses"]) == (["a2"], {"a2": "a2:n\n"})
    two = query_json(a1, "-node", "a1", "-node", "a3", "-timeout", "1s", "whoami", "n")
    assert sorted(two["Acks"]) == ["a1", "a3"]
    assert sorted(two["Responses"]) == ["a1", "a3"]
    nobody = query_json(a1, "-node", "a9", "-timeout", "1s", "whoami")
    assert (nobody["Acks"], nobody["Responses"]) == (None, {})


def test_tag_filters_are_regexps_searched_in_the_value(answering):
    a1, a2, a3 = answering
    db = query_json(a1, "-tag", "role=db", "-timeout", "1s", "whoami", "t")
    assert (db["Acks"], sorted(db["Responses"])) == (["a2"], ["a2"])
    # as in Serf, the pattern is not anchored: "w" finds "web"
    web = query_json(a2, "-tag", "role=w", "-timeout", "1s", "whoami", "t")
    assert web["Acks"] == ["a1"]
    both = query_json(a2, "-tag", "role=^(web|db)$", "-tag", "dc=east", "-timeout", "1s", "whoami")
    assert both["Acks"] == ["a1"]


def test_no_ack_asks_for_responses_only(answering):
    a1, a2, a3 = answering
    out = serf("query", a1, "-no-ack", "-timeout", "1s", "whoami", "q")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Ack from" not in out.stdout and "Total Acks" not in out.stdout
    assert out.stdout.splitlines()[-1] == "Total Responses: 3"
    result = query_json(a1, "-no-ack", "-timeout", "1s", "whoami", "q")
    assert result["Acks"] is None and len(result["Responses"]) == 3


def test_only_a_successful_handler_with_output_answers(answering):
    a1, a2, a3 = answering
    for name in ("fails", "silent"):
        result = query_json(a1, "-timeout", "1s", name)
        assert sorted(result["Acks"]) == ["a1", "a2", "a3"], name
        assert result["Responses"] == {}, name


def test_an_answer_over_the_response_limit_is_dropped_with_a_warning(answering):
    a1, a2, a3 = answering
    result = query_json(a1, "-node", "a2", "-timeout", "1s", "big")
    assert (result["Acks"], result["Responses"]) == (["a2"], {})
    wait_for(lambda: "response exceeds limit of 1024 bytes" in a2.log(), 5,
             "a2 to log the dropped answer")
    assert "Failed to respond to query 'query: big'" in a2.log()


def test_the_timeout_bounds_the_query(answering):
    a1, a2, a3 = answering
    started = time.time()
    out = serf("query", a1, "-timeout", "500ms", "whoami")
    short = time.time() - started
    assert out.returncode == 0 and "Total Responses: 3" in out.stdout, out.stdout
    started = time.time()
    out = serf("query", a1, "-node", "a1", "whoami")
    default = time.time() - started
    assert out.returncode == 0, out.stdout + out.stderr
    # Serf's default: 200ms x 16 x ceil(log10(3 + 1)) = 3.2 s
    assert 0.4 < short < 2.0, short
    assert 3.0 < default < 6.0, default


def test_relayed_answers_are_counted_once(answering):
    a1, a2, a3 = answering
    out = serf("query", a1, "-relay-factor", "2", "-timeout", "2s", "whoami", "r")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-2:] == ["Total Acks: 3", "Total Responses: 3"]
    assert serf("query", a1, "-relay-factor", "256", "whoami").returncode == 1


def test_relays_forward_answers_to_the_asker(agents):
    debug = ["-log-level", "debug", "-event-handler", "query=echo answer"]
    a1 = agents("a1", args=debug)
    others = [agents(name, join=[a1.gossip_addr], args=debug) for name in ("a2", "a3")]
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive", "a3": "alive"}, 15,
             "a1 to see all three alive")
    result = query_json(a1, "-relay-factor", "1", "-timeout", "2s", "q")
    assert sorted(result["Acks"]) == ["a1", "a2", "a3"]
    assert result["Responses"] == {"a1": "answer\n", "a2": "answer\n", "a3": "answer\n"}
    # each member relayed its ack and response through one other member
    logs = []
    for agent in [a1] + others:
        with open(agent.log_path, encoding="utf-8", errors="replace") as log:
            logs.append(log.read().lower())
    assert sum(log.count("relaying response to addr: %s" % a1.gossip_addr) for log in logs) >= 4


def test_handlers_see_serfs_query_environment_and_payload(agents, tmp_path):
    command, records = recording_handler(tmp_path, "queries")
    a1 = agents("a1", args=["-event-handler", "query:deploy=" + command])
    assert serf("query", a1, "-timeout", "1s", "other").returncode == 0
    assert serf("query", a1, "-timeout", "1s", "deploy", "v2").returncode == 0
    wait_for(lambda: records(), 5, "the handler to run")
    [(env, stdin)] = records()
    assert env["SERF_EVENT"] == "query"
    assert env["SERF_QUERY_NAME"] == "deploy"
    assert int(env["SERF_QUERY_LTIME"]) >= 1
    assert env["SERF_SELF_NAME"] == "a1"
    assert stdin == ["v2"]
    assert "Received event: query: deploy" in a1.log()


def test_size_limits_and_internal_names_are_refused_in_serfs_words(agents):
    a1 = agents("a1")
    out = serf("query", a1, "big", "x" * 1100)
    assert out.returncode == 1
    assert "Error sending query: query exceeds limit of 1024 bytes" in out.stderr + out.stdout
    for args in (["_serf_list-keys"], ["_serf_ping", "payload"]):
        out = serf("query", a1, *args)
        assert out.returncode == 1, args
        assert "Queries cannot contain the '_serf_' prefix" in out.stderr + out.stdout


def test_size_limits_fall_on_the_same_byte_as_serfs(agents, tmp_path):
    # the handler answers with as many bytes as the payload asks for
    a1 = agents("a1", args=["-event-handler", "query=head -c $(cat) /dev/zero | tr '\\0' x"])

    def sent(payload):
        return serf("query", a1, "-no-ack", "-timeout", "300ms", "q", payload).returncode == 0

    def answered(size):
        return "a1" in query_json(a1, "-no-ack", "-timeout", "500ms", "q", str(size))["Responses"]

    # a 1024-byte encoded query from node a1 named q with default settings
    assert sent("x" * 915) and not sent("x" * 916)
    assert answered(981) and not answered(982)


def test_reachability_pings_every_live_member(answering):
    a1, a2, a3 = answering
    out = serf("reachability", a2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "Total members: 3, live members: 3",
        "Starting reachability test...",
        "Successfully contacted all live nodes",
    ]
    # _serf_ping is the agent's own: handlers never see it
    assert "_serf_ping" not in a1.log() + a2.log() + a3.log()


class Rpc:
    """A Serf RPC client: requests out; replies and stream records in, grouped as
    (seq, error, body) where body is None for a header that came alone."""

    def __init__(self, agent):
        self.sock = socket.create_connection(("127.0.0.1", agent.rpc_port), timeout=10)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.objects = []
        self.seq = 0
        assert self.reply(self.send("handshake", {"Version": 1})) == ""

    def send(self, command, body=None):
        self.seq += 1
        data = msgpack.packb({"Command": command, "Seq": self.seq}, use_bin_type=True)
        if body is not None:
            data += msgpack.packb(body, use_bin_type=True)
        self.sock.sendall(data)
        return self.seq

    def messages(self):
        grouped = []
        for obj in self.objects:
            if isinstance(obj, dict) and set(obj) == {"Seq", "Error"}:
                grouped.append([obj["Seq"], obj["Error"], None])
            elif grouped and grouped[-1][2] is None:
                grouped[-1][2] = obj
        return grouped

    def wait(self, predicate, timeout=10.0, what="a message"):
        """The first message for which predicate holds; read more until there is one."""
        deadline = time.time() + timeout
        while True:
            for message in self.messages():
                if predicate(message):
                    return message
            remaining = deadline - time.time()
            if remaining <= 0:
                raise AssertionError("no %s in %r" % (what, self.messages()))
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            assert data, "the agent closed the connection"
            self.unpacker.feed(data)
            self.objects.extend(self.unpacker)

    def reply(self, seq):
        """A reply's Error (replies here have no body)."""
        return self.wait(lambda m: m[0] == seq, what="reply to %d" % seq)[1]

    def records(self, seq):
        return [m[2] for m in self.messages() if m[0] == seq and m[2] is not None]


def test_a_query_is_answered_through_an_rpc_stream_and_respond(answering):
    a1, a2, a3 = answering
    client = Rpc(a2)
    stream = client.send("stream", {"Type": "query:ask"})
    assert client.reply(stream) == ""
    asking = subprocess.Popen([SERF_BIN, "query", "-rpc-addr=" + a1.rpc_addr, "-format", "json",
                               "-node", "a2", "-timeout", "3s", "ask", "question"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, _, record = client.wait(lambda m: m[0] == stream and m[2] is not None, what="query record")
    assert record["Event"] == "query"
    assert record["Name"] == "ask"
    assert record["Payload"] == b"question"
    assert record["LTime"] >= 1
    respond = client.send("respond", {"ID": record["ID"], "Payload": b"answer"})
    assert client.reply(respond) == ""
    again = client.send("respond", {"ID": record["ID"], "Payload": b"again"})
    assert client.reply(again) == "failed to respond to key query: response already sent"
    unknown = client.send("respond", {"ID": record["ID"] + 100, "Payload": b"x"})
    assert client.reply(unknown) == "No pending queries matching ID"
    out, err = asking.communicate(timeout=15)
    assert asking.returncode == 0, out + err
    assert json.loads(out) == {"Acks": ["a2"], "Responses": {"a2": "answer"}}
    # the filter kept other queries off this stream
    assert serf("query", a1, "-node", "a2", "-timeout", "1s", "whoami").returncode == 0
    assert len(client.records(stream)) == 1


def test_an_event_stream_carries_member_and_user_events_until_stopped(answering):
    a1, a2, a3 = answering
    client = Rpc(a3)
    stream = client.send("stream", {"Type": "user:deploy,member-leave"})
    assert client.reply(stream) == ""
    assert serf("event", a1, "deploy", "v1").returncode == 0
    assert serf("event", a1, "other", "v1").returncode == 0
    _, _, user = client.wait(lambda m: m[0] == stream and m[2] is not None, what="user event")
    assert {k: user[k] for k in ("Event", "Name", "Payload", "Coalesce")} == {
        "Event": "user", "Name": "deploy", "Payload": b"v1", "Coalesce": True}
    assert serf("leave", a2).returncode == 0
    _, _, leave = client.wait(lambda m: m[0] == stream and m[2] is not None
                              and m[2].get("Event") == "member-leave", what="member-leave")
    [member] = leave["Members"]
    assert (member["Name"], member["Status"], member["Port"]) == ("a2", "left", a2.gossip_port)
    assert client.reply(client.send("stream", {"Type": "bogus"})) == "Invalid event filter"
    stop = client.send("stop", {"Stop": stream})
    assert client.reply(stop) == ""
    seen = len(client.records(stream))
    assert serf("event", a1, "deploy", "v2").returncode == 0
    time.sleep(1.5)
    # everything the agent sent before this reply has been read by then
    members = client.send("members")
    client.wait(lambda m: m[0] == members and m[2] is not None, what="members reply")
    assert len(client.records(stream)) == seen


def test_rpc_query_records_end_with_done(answering):
    a1, a2, a3 = answering
    client = Rpc(a1)
    query = client.send("query", {"FilterNodes": ["a3"], "FilterTags": {}, "RequestAck": True,
                                  "RelayFactor": 0, "Timeout": 1_000_000_000, "Name": "whoami",
                                  "Payload": b"rpc"})
    assert client.reply(query) == ""
    client.wait(lambda m: m[0] == query and m[2] is not None and m[2]["Type"] == "done",
                what="done record")
    records = client.records(query)
    assert records == [{"Type": "ack", "From": "a3", "Payload": None},
                       {"Type": "response", "From": "a3", "Payload": b"a3:rpc\n"},
                       {"Type": "done", "From": "", "Payload": None}]
    # the connection still serves requests
    members = client.send("members")
    client.wait(lambda m: m[0] == members and m[2] is not None, what="members reply")


@pytest.mark.skipif(AGENT_TARGET == "serf", reason="musubi's own gossip datagrams")
def test_forged_query_replies_are_dropped_and_the_agent_keeps_answering(agents):
    a1 = agents("a1", args=["-log-level", "debug", "-event-handler", "query=echo up"])
    to_self = msgpack.packb({"DestAddr": a1.gossip_addr, "DestName": "a1"})
    # a relay whose cargo is another relay back to the same agent would bounce forever
    bouncing = b"\x09" + to_self + b"\x09" + to_self + b"\x05"
    forged = [b"\x02", b"\x02\x05\xc1", b"\x02\x07abc", b"\x02\x09\x93",
              b"\x02" + bouncing,
              b"\x02\x05" + msgpack.packb({"LTime": 99, "ID": 1, "From": "x", "Flags": 1,
                                           "Payload": b""}, use_bin_type=True)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in forged * 10:
            sock.sendto(datagram, ("127.0.0.1", a1.gossip_port))
    result = query_json(a1, "-timeout", "1s", "q")
    assert (result["Acks"], result["Responses"]) == (["a1"], {"a1": "up\n"})
    with open(a1.log_path, encoding="utf-8", errors="replace") as log:
        text = log.read()
    assert "reply for non-running query (LTime: 99, ID: 1) From: x" in text
    assert "dropped a relay from" in text
    assert "relaying response" not in text
