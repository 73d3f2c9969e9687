"""The member's log as etcd's: `--logger zap` gives one JSON object a line with zap's keys
(`level`, `ts`, `caller`, `msg`), `--log-outputs` names where lines go (a file is created
0600), a bad value is refused before anything starts. Runs against etcd 3.4 too
(MUSUBI_TEST_TARGET=etcd): the same flags give the same shape there."""

import json
import os
import stat
import subprocess

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
