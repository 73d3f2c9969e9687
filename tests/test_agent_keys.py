"""Gossip encryption and the key ring, driven by Debian's real `serf` CLI: an encrypted
cluster forms; agents without the key (plaintext or another key) cannot join it and it
stays up; `serf info` says so; a 64 KiB event crosses the stream transport sealed;
`serf keys -install/-use/-remove/-list` rotate the key everywhere with Serf's
output and exit codes, rewriting each `-keyring-file`; and (beyond Serf) a member that was
down for the whole rotation comes back and rejoins.

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf proves these tests against
Debian's `serf agent`, except the rotation survivor, which Serf cannot do: serf#579).
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from agents import (AGENT_TARGET, FAILURE_DETECTION_BOUND, SERF_BIN, agents,  # noqa: F401
                    refused_at_start, serf, statuses, wait_for)
from test_agent_info import big_event_reaches_every_member_once, full_log, info

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

LIST_HEADER = ["==> Asking all members for installed keys...",
               "==> Keys gathered, listing cluster keys...", ""]


def keygen():
    out = subprocess.run([SERF_BIN, "keygen"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def keyring_file(tmp_path, name, keys):
    path = tmp_path / ("keyring-%s.json" % name)
    path.write_text(json.dumps(keys))
    return path


def alive_everywhere(cluster):
    everyone = {agent.name: "alive" for agent in cluster}
    for agent in cluster:
        wait_for(lambda: statuses(agent) == everyone, 20,
                 "%s to see %s alive" % (agent.name, sorted(everyone)))


def join_all(cluster):
    first, rest = cluster[0], cluster[1:]
    for agent in rest:
        out = serf("join", agent, first.gossip_addr)
        assert out.returncode == 0, out.stdout + out.stderr
    alive_everywhere(cluster)


@pytest.fixture
def keyed_trio(agents, tmp_path):
    """Three agents each with a keyring file holding one key, joined into a cluster."""
    key = keygen()
    files = [keyring_file(tmp_path, name, [key]) for name in ("a1", "a2", "a3")]
    cluster = [agents(name, args=["-keyring-file", str(path)])
               for name, path in zip(("a1", "a2", "a3"), files)]
    join_all(cluster)
    return cluster, files, key


def listed_keys(agent):
    """{key: "[n/m]"} from `serf keys -list`, checking Serf's layout on the way."""
    out = serf("keys", agent, "-list")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == LIST_HEADER, out.stdout
    counts = {}
    for line in lines[3:]:
        key, count = line.split("  ")
        counts[key] = count
    return counts


def test_an_encrypted_cluster_forms_and_gossips(agents):
    key = keygen()
    cluster = [agents(name, args=["-encrypt", key]) for name in ("a1", "a2", "a3")]
    join_all(cluster)
    out = serf("event", cluster[2], "deploy", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    for agent in cluster:
        wait_for(lambda: "Received event: user-event: deploy" in agent.log(), 15,
                 "%s to receive the event" % agent.name)
        assert info(agent)["serf"]["encrypted"] == "true"


@pytest.mark.skipif(AGENT_TARGET == "serf",
                    reason="Serf's user events stop at 9 KiB; musubi's big ones cross a stream")
def test_a_64_kib_event_crosses_the_stream_transport_sealed(agents, tmp_path):
    # The origin seals the frame and the others open it: were either side to skip the
    # key, the frame would be dropped as undecryptable and the event would not arrive.
    cluster = big_event_reaches_every_member_once(agents, tmp_path, ["-encrypt", keygen()])
    for agent in cluster:
        assert "Decrypt packet failed" not in full_log(agent), agent.name


def test_key_listings_and_events_in_a_burst_reach_every_member(agents):
    # Each `serf keys -list` is a query and each event a broadcast, both riding on the
    # next few packets. musubi once allowed foca's two sends per item for three members,
    # often both spent on one member: then a listing waited out its timeout for the
    # third member's answer, and the third member never got the event that followed.
    key = keygen()
    cluster = [agents(name, args=["-encrypt", key]) for name in ("a1", "a2", "a3")]
    join_all(cluster)
    rounds = 20
    for i in range(rounds):
        for agent in cluster[1:] + cluster[:1]:
            assert listed_keys(agent) == {key: "[3/3]"}, "round %d from %s" % (i, agent.name)
        out = serf("event", cluster[0], "burst%d" % i)
        assert out.returncode == 0, out.stdout + out.stderr

    def missing():
        return [(agent.name, i) for agent in cluster for i in range(rounds)
                if "Received event: user-event: burst%d\n" % i not in full_log(agent)]
    # handlers see events after Serf's coalescing quiescence, a second after the last
    try:
        wait_for(lambda: not missing(), 10, "every event at every member")
    except AssertionError:
        raise AssertionError("events that never arrived: %s" % missing())


def test_agents_without_the_key_cannot_join_and_the_cluster_stays_up(agents):
    key = keygen()
    a1 = agents("a1", args=["-encrypt", key])
    a2 = agents("a2", args=["-encrypt", key], join=[a1.gossip_addr])
    alive_everywhere([a1, a2])
    plain = agents("plain")
    other_key = agents("other", args=["-encrypt", keygen()])
    for outsider in (plain, other_key):
        out = serf("join", outsider, a1.gossip_addr)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "Error joining the cluster" in out.stdout + out.stderr
    # garbage and a plaintext-sized datagram at the encrypted agent's gossip port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x00", b"\x01" + b"\xaa" * 40, os.urandom(200)):
            s.sendto(junk, ("127.0.0.1", a1.gossip_port))
    time.sleep(3)
    assert "Decrypt packet failed" in a1.log()  # memberlist's line, which musubi also logs
    assert statuses(a1) == {"a1": "alive", "a2": "alive"}
    assert statuses(a2) == {"a1": "alive", "a2": "alive"}
    assert sorted(statuses(plain)) == ["plain"]
    assert sorted(statuses(other_key)) == ["other"]
    assert a1.proc.poll() is None and a2.proc.poll() is None


def test_encrypt_and_a_keyring_file_together_are_refused(tmp_path):
    path = keyring_file(tmp_path, "a1", [keygen()])
    code, log = refused_at_start(tmp_path, "a1", args=["-encrypt", keygen(), "-keyring-file", str(path)])
    assert code == 1
    assert "Encryption key not allowed while using a keyring" in log


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "no such file or directory"),
    (lambda p: p.write_text("[]"), "Keyring file contains no keys"),
    (lambda p: p.write_text('["YWJj"]'),
     "Failed to restore keyring: key size must be 16, 24 or 32 bytes"),
    (lambda p: p.write_text('["ab"]'),
     "Failed to decode key from keyring: illegal base64 data at input byte 0"),
])
def test_a_bad_keyring_file_stops_the_agent(tmp_path, setup, message):
    path = tmp_path / "keyring.json"
    setup(path)
    code, log = refused_at_start(tmp_path, "a1", args=["-keyring-file", str(path)])
    assert code == 1
    assert message in log


def test_a_bad_encrypt_key_stops_the_agent(tmp_path):
    code, log = refused_at_start(tmp_path, "a1", args=["-encrypt", "abc!"])
    assert code == 1
    assert "Invalid encryption key: illegal base64 data at input byte 3" in log


def test_a_full_rotation_with_serf_keys(keyed_trio):
    cluster, files, old = keyed_trio
    a1, a2, a3 = cluster
    new = keygen()
    assert listed_keys(a2) == {old: "[3/3]"}

    out = serf("keys", a1, "-install", new)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == "==> Installing key on all members...\n==> Successfully installed key!\n"
    assert listed_keys(a3) == {old: "[3/3]", new: "[3/3]"}
    for path in files:
        # Serf's layout: json.MarshalIndent, primary first, no final newline
        assert path.read_text() == '[\n  "%s",\n  "%s"\n]' % (old, new)

    out = serf("keys", a2, "-use", new)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == ("==> Changing primary key on all members...\n"
                          "==> Successfully changed primary key!\n")
    for path in files:
        assert json.loads(path.read_text()) == [new, old]

    out = serf("keys", a3, "-remove", old)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == "==> Removing key on all members...\n==> Successfully removed key!\n"
    assert listed_keys(a1) == {new: "[3/3]"}
    for path in files:
        assert path.read_text() == '[\n  "%s"\n]' % new

    # still one cluster on the new key alone: probes go on, nobody is suspected
    time.sleep(3)
    for agent in cluster:
        assert statuses(agent) == {"a1": "alive", "a2": "alive", "a3": "alive"}
    assert all("Decrypt packet failed" not in agent.log() for agent in cluster)


def failed_lines(out):
    """The per-node `failed:` lines, as a sorted list of (node, message)."""
    rows = [line.split("  ") for line in out.splitlines() if line.startswith("failed:")]
    return sorted((row[1], row[2]) for row in rows)


def test_refused_key_operations_report_every_node_and_exit_1(keyed_trio):
    cluster, files, primary = keyed_trio
    a1 = cluster[0]

    out = serf("keys", a1, "-remove", primary)
    assert out.returncode == 1
    assert failed_lines(out.stdout + out.stderr) == [
        (name, "Removing the primary key is not allowed") for name in ("a1", "a2", "a3")]
    assert "Error removing key: 3/3 nodes reported failure" in out.stdout + out.stderr

    out = serf("keys", a1, "-use", keygen())
    assert out.returncode == 1
    assert failed_lines(out.stdout + out.stderr) == [
        (name, "Requested key is not in the keyring") for name in ("a1", "a2", "a3")]
    assert "Error changing primary key: 3/3 nodes reported failure" in out.stdout + out.stderr

    out = serf("keys", a1, "-install", "YWJj")
    assert out.returncode == 1
    assert failed_lines(out.stdout + out.stderr) == [
        (name, "key size must be 16, 24 or 32 bytes") for name in ("a1", "a2", "a3")]

    out = serf("keys", a1, "-install", "abc")
    assert out.returncode == 1
    assert "Error installing key: illegal base64 data at input byte 0" in out.stdout + out.stderr

    for path in files:
        assert path.read_text() == '["%s"]' % primary, "refusals do not touch the file"
    # removing a key nobody has is done already, as in Serf, which then rewrites the file
    out = serf("keys", a1, "-remove", keygen())
    assert out.returncode == 0, out.stdout + out.stderr
    for path in files:
        assert path.read_text() == '[\n  "%s"\n]' % primary


def test_a_silent_member_fails_the_listing(keyed_trio):
    cluster, _, key = keyed_trio
    a1, a2, a3 = cluster
    a3.proc.send_signal(signal.SIGSTOP)
    try:
        out = serf("keys", a1, "-list")
    finally:
        a3.proc.send_signal(signal.SIGCONT)
    assert out.returncode == 1
    assert "Failed to gather member keys: 2/3 nodes reported success" in out.stdout + out.stderr


def test_keys_on_an_agent_without_encryption(agents):
    a1 = agents("a1")
    assert info(a1)["serf"]["encrypted"] == "false"
    out = serf("keys", a1, "-list")
    assert out.returncode == 1
    assert failed_lines(out.stdout + out.stderr) == [
        ("a1", "Keyring is empty (encryption not enabled)")]
    assert "Failed to gather member keys: 1/1 nodes reported failure" in out.stdout + out.stderr
    out = serf("keys", a1, "-install", keygen())
    assert out.returncode == 1
    assert failed_lines(out.stdout + out.stderr) == [
        ("a1", "No keyring to modify (encryption not enabled)")]


@pytest.mark.skipif(AGENT_TARGET == "serf",
                    reason="Serf cannot: a member down during a rotation never rejoins (serf#579)")
@pytest.mark.parametrize("remove_old", [True, False], ids=["whole-rotation", "install-and-use"])
def test_a_member_down_during_a_rotation_rejoins(agents, tmp_path, remove_old):
    old, new = keygen(), keygen()
    files = {name: keyring_file(tmp_path, name, [old]) for name in ("a1", "a2", "a3")}
    a1 = agents("a1", args=["-keyring-file", str(files["a1"])])
    a2 = agents("a2", join=[a1.gossip_addr], args=["-keyring-file", str(files["a2"])])
    a3 = agents("a3", join=[a1.gossip_addr], args=["-keyring-file", str(files["a3"])])
    alive_everywhere([a1, a2, a3])

    a3.kill()
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent).get("a3") == "failed", FAILURE_DETECTION_BOUND,
                 "%s to see a3 failed" % agent.name)
    steps = [["-install", new], ["-use", new]] + ([["-remove", old]] if remove_old else [])
    for step in steps:
        out = serf("keys", a1, *step)
        assert out.returncode == 0, step + [out.stdout, out.stderr]
    ring = [new, old][:1 if remove_old else 2]
    assert listed_keys(a2) == {key: "[2/2]" for key in ring}
    assert json.loads(files["a3"].read_text()) == [old], "a3 slept through it"

    a3.start()  # same name, ports and keyring file, -join a1
    alive_everywhere([a1, a2, a3])
    assert json.loads(files["a3"].read_text()) == ring
    assert listed_keys(a3) == {key: "[3/3]" for key in ring}
    assert "key catch-up" in a1.log()
    assert "took the key ring" in a3.log()
