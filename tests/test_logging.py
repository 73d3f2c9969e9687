"""The member's log as etcd's: `--logger zap` gives one JSON object a line with zap's keys
(`level`, `ts`, `caller`, `msg`), `--log-outputs` names where lines go (a file is created
0600), a bad value is refused before anything starts. Runs against etcd 3.4 too
(MUSUBI_TEST_TARGET=etcd): the same flags give the same shape there."""

import json
import os
import re
import stat
import subprocess
import time

import pytest

import harness


def json_lines(text):
    lines = [line for line in text.splitlines() if line.strip()]
    if harness.target_kind() == "etcd":
        # etcd's embedded grpc-go logs apart from zap, in its own text format.
        lines = [line for line in lines if not line.startswith(("INFO: ", "WARNING: ", "ERROR: "))]
    assert lines, "no log lines"
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError("not a JSON line: %r" % line) from None
    return entries


def test_logger_zap_writes_one_json_object_a_line_with_zaps_keys(fleet):
    server = fleet.target(extra_args=["--logger", "zap", "--log-outputs", "stderr"]).start()
    server.request("PUT", "/v2/keys/k", "value=v")
    server.stop()
    with open(server.log_path) as f:
        text = "".join(line for line in f if not line.startswith("=== start:"))
    entries = json_lines(text)
    for entry in entries:
        for key in ("level", "ts", "caller", "msg"):
            assert key in entry, entry
        assert entry["level"] in ("debug", "info", "warn", "error"), entry
        assert entry["ts"].startswith("20"), entry


def test_log_outputs_writes_to_a_file_created_0600(fleet):
    path = os.path.join(fleet.workdir, "member.log")
    server = fleet.target(extra_args=["--logger", "zap", "--log-outputs", path]).start()
    server.stop()
    entries = json_lines(open(path).read())
    assert any(e["level"] == "info" for e in entries)
    if harness.target_kind() != "etcd":
        # etcd 3.4 creates it 0644 (zap's default); musubi keeps its logs private, as
        # its data dir.
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_bad_logger_is_refused_before_starting(fleet):
    server = fleet.target(extra_args=["--logger", "syslog"])
    p = subprocess.run(server.argv(), capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "syslog" in p.stderr


def test_log_format_json_is_musubis_name_for_it(fleet):
    if harness.target_kind() == "etcd":
        return  # etcd has only --logger
    server = fleet.target(extra_args=["--log-format", "json"]).start()
    server.stop()
    with open(server.log_path) as f:
        text = "".join(line for line in f if not line.startswith("=== start:"))
    assert all("msg" in e for e in json_lines(text))


def test_a_member_down_is_one_line_when_lost_and_one_when_back_named_by_name_and_hex_id(fleet):
    if harness.target_kind() == "etcd":
        pytest.skip("etcd 3.4 logs its own lines for this (rafthttp's 'lost TCP streaming "
                    "connection', 'peer became active')")
    members = fleet.cluster(3, names=["alpha", "beta", "gamma"])
    status, _, body = members[0].request("GET", "/v2/members")
    ids = {m["name"]: m["id"] for m in json.loads(body)["members"]}
    leader_lines = re.findall(r"leader is (\w+) \(([0-9a-f]+)(, this member)?\) at term \d+",
                              members[0].log_tail(100000))
    assert leader_lines and all(ids[name] == hex_id for name, hex_id, _ in leader_lines)
    gamma = members[2]
    survivors = members[:2]
    before = {m.name: len(m.log_tail(10**7)) for m in survivors}
    gamma.kill()
    time.sleep(3)  # 30 heartbeats' worth of failures
    gamma.start()
    # The leader is the member that replicates to gamma; followers may never talk to it.
    leader = next(m for m in survivors if json.loads(m.request("GET", "/v2/stats/self")[2])
                  ["state"] == "StateLeader")

    def since_kill(m):
        return m.log_tail(10**7)[before[m.name]:]
    back = "member gamma (%s) is reachable again" % ids["gamma"]
    harness.wait_for("the leader to see gamma back", lambda: back in since_kill(leader))
    assert since_kill(leader).count("cannot reach member gamma (%s)" % ids["gamma"]) == 1
    for m in survivors:
        log = since_kill(m)
        assert "failed to send a heartbeat" not in log
    for m in members:
        whole = m.log_tail(10**7)
        assert not re.search(r"(target|id)[=:] ?\d{6,}", whole), "a decimal member ID in the log"


def test_the_data_dir_and_everything_in_it_are_private(fleet):
    server = fleet.target().start()
    status, _, _ = server.request("PUT", "/v2/keys/k", "value=v")
    assert status == 201
    server.stop()
    open_to_others = []
    for root, dirs, files in os.walk(server.data_dir):
        for path in [root] + [os.path.join(root, f) for f in files]:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                open_to_others.append("%o %s" % (mode, path))
    assert not open_to_others
    assert stat.S_IMODE(os.stat(server.data_dir).st_mode) == 0o700
