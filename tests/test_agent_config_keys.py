"""Every JSON config key Serf 0.8 documents, accounted for: accepted by `musubi agent` as by
Debian's `serf agent` (both are asked, with the same files), unknown keys refused in
Serf's words, and the keys musubi reads but has no use for named in a warning at start
(docs/agent-config.md lists them).

Environment: see tests/agents.py. These tests run Debian's `serf agent` themselves beside
musubi, so MUSUBI_AGENT_TARGET=serf has nothing more to prove and skips the musubi-only
ones.
"""

import json
import os
import subprocess

import pytest

import harness
from agents import AGENT_TARGET, SERF_BIN, agents, serf, statuses, wait_for  # noqa: F401
from test_agent_telemetry import scrape, value

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

musubi_only = pytest.mark.skipif(AGENT_TARGET == "serf", reason="musubi's own behaviour")

# Serf 0.8's agent configuration page (and its agent.Config), in its order.
SERF_KEYS = [
    "node_name", "role", "tags", "tags_file", "bind", "advertise", "encrypt_key",
    "keyring_file", "log_level", "rpc_addr", "rpc_auth", "protocol", "replay_on_join",
    "query_size_limit", "query_response_size_limit", "user_event_size_limit", "start_join",
    "retry_join", "retry_max_attempts", "retry_interval", "rejoin_after_leave",
    "event_handlers", "profile", "snapshot_path", "leave_on_terminate",
    "skip_leave_on_interrupt", "discover", "interface", "reconnect_interval",
    "reconnect_timeout", "tombstone_timeout", "disable_name_resolution",
    "disable_coordinates", "enable_syslog", "syslog_facility", "enable_compression",
    "statsite_addr", "statsd_addr", "broadcast_timeout",
]


def start_refused(program, config):
    """Run an agent whose config file must be refused: (exit code, output)."""
    argv = [program, "agent", "-node", "x", "-bind", "127.0.0.1:%d" % harness.free_port(),
            "-rpc-addr", "127.0.0.1:%d" % harness.free_port(), "-config-file", config]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return out.returncode, (out.stdout + out.stderr).replace(config, "CONFIG")


def both_refuse(tmp_path, document):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(document))
    ours = start_refused(harness.musubi_bin(), str(config))
    theirs = start_refused(SERF_BIN, str(config))
    return ours, theirs


@musubi_only
def test_every_documented_key_is_known_and_unknown_ones_are_refused_as_serf(tmp_path):
    # Every documented key beside two unknown ones: each program complains of the two
    # unknown ones alone, in the same words, so each knows every documented key.
    document = {key: None for key in SERF_KEYS}
    document.update({"bogus": 1, "advertise_addr": "x"})
    ours, theirs = both_refuse(tmp_path, document)
    assert theirs[0] == 1, theirs
    assert "* '' has invalid keys: advertise_addr, bogus" in theirs[1]
    assert ours[0] == theirs[0]
    expected = [line for line in theirs[1].splitlines() if line.strip()]
    assert [line for line in ours[1].splitlines() if line.strip()] == expected


@musubi_only
def test_http_addr_is_musubis_own_key(tmp_path):
    ours, theirs = both_refuse(tmp_path, {"http_addr": "127.0.0.1:1", "bogus": 1})
    assert "* '' has invalid keys: bogus, http_addr" in theirs[1]
    assert "* '' has invalid keys: bogus\n" in ours[1] + "\n", ours


@musubi_only
def test_keys_musubi_does_not_use_are_warned_about(agents, tmp_path):
    config = tmp_path / "unused.json"
    config.write_text(json.dumps({
        "protocol": 4, "broadcast_timeout": "2s", "enable_compression": True,
        "statsd_addr": "127.0.0.1:9", "statsite_addr": "",
    }))
    log = agents("a1", args=["-config-file", str(config)]).log()
    assert "==> Warning: 'protocol' 4 is not used" in log
    assert "==> Warning: 'broadcast_timeout' is not used" in log
    assert "==> Warning: 'enable_compression' is not used" in log
    # Used, so not warned about.
    assert "statsd_addr" not in log and "statsite_addr" not in log


@musubi_only
def test_defaults_and_used_keys_bring_no_warning(agents, tmp_path):
    config = tmp_path / "used.json"
    config.write_text(json.dumps({"protocol": 5, "broadcast_timeout": "5s",
                                  "reconnect_timeout": "1h", "statsd_addr": "127.0.0.1:9"}))
    log = agents("a1", args=["-config-file", str(config)]).log()
    assert "Warning" not in log, log


@musubi_only
def test_disable_compression_is_honoured(agents):
    """The bytes a compressible 60 KB event takes on the stream transport, as the sender's
    memberlist_tcp_sent counts them: a fraction of it compressed, all of it with
    -disable-compression."""
    sent = {}
    for flags in ([], ["-disable-compression"]):
        port = harness.free_port()
        limit = ["-user-event-size-limit", "70000"]
        name = "c" if flags else "p"
        a1 = agents(name + "1", args=limit + flags + ["-http-addr", "127.0.0.1:%d" % port])
        agents(name + "2", join=[a1.gossip_addr], args=limit)
        wait_for(lambda: len(statuses(a1)) == 2, 15, "both alive")
        before = value(scrape(port), "memberlist_tcp_sent")
        payload = '{"host":"web","status":"ok"}\n' * 2100
        out = serf("event", a1, "report", payload)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: value(scrape(port), "memberlist_tcp_sent") > before, 15, "a frame")
        sent[name] = value(scrape(port), "memberlist_tcp_sent") - before
    assert sent["p"] < 20000 < 60000 < sent["c"], sent
