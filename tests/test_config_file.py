"""etcd's configuration sources, as an operator moving from etcd 3.4 uses them: a YAML
`--config-file` starts the same member as the flags it holds (against etcd 3.4 too), a
flag and an `ETCD_*` variable override one key of it (musubi's precedence; etcd 3.4 would
ignore them), and every flag of the real `etcd --help` is either served or judged by name:
taken at its default, warned about, or refused with a reason (docs/flags.md)."""

import json
import os
import re
import subprocess

import pytest

import harness


class FileConfiguredServer(harness.Server):
    """A member whose whole configuration is one config file."""

    def __init__(self, fleet, yaml_text, env=None):
        super().__init__(harness.target_kind(), fleet.workdir, env=env)
        self.config_path = os.path.join(fleet.workdir, "etcd.conf.%d.yml" % self.client_port)
        with open(self.config_path, "w") as f:
            f.write(yaml_text % {"client": self.url, "peer": "http://127.0.0.1:%d" % self.peer_port,
                                 "data_dir": self.data_dir})

    def argv(self):
        prog = [harness.ETCD_BIN] if self.kind == "etcd" else [harness.musubi_bin(), "serve"]
        return prog + ["--config-file", self.config_path]


CONFIG = """\
name: from-file
data-dir: %(data_dir)s
listen-client-urls: %(client)s
advertise-client-urls: %(client)s
listen-peer-urls: %(peer)s
initial-advertise-peer-urls: %(peer)s
initial-cluster: from-file=%(peer)s
initial-cluster-state: new
initial-cluster-token: file-token
enable-v2: true
discovery:
log-outputs: [stderr]
"""


def members(server):
    status, _, body = harness.raw_request(server.client_port, "GET", "/v2/members")
    assert status == 200, body
    return json.loads(body)["members"]


def test_a_config_file_starts_the_member_its_keys_describe(fleet):
    server = FileConfiguredServer(fleet, CONFIG)
    fleet.servers.append(server)
    server.start()
    [member] = members(server)
    assert member["name"] == "from-file"
    assert member["clientURLs"] == [server.url]
    assert member["peerURLs"] == ["http://127.0.0.1:%d" % server.peer_port]
    assert os.path.isdir(server.data_dir)


def test_an_etcd_variable_overrides_one_key_of_the_file(fleet):
    if harness.target_kind() == "etcd":
        pytest.skip("etcd 3.4 ignores the environment once --config-file is given")
    server = FileConfiguredServer(fleet, CONFIG.replace("from-file=", "from-env="),
                                  env={"ETCD_NAME": "from-env"})
    fleet.servers.append(server)
    server.start()
    assert [m["name"] for m in members(server)] == ["from-env"]


def test_a_misspelt_key_in_the_file_stops_the_member_naming_it(fleet):
    if harness.target_kind() == "etcd":
        pytest.skip("etcd 3.4 ignores keys it does not know")
    server = FileConfiguredServer(fleet, CONFIG + "snapshot-cuont: 5\n")
    p = subprocess.run(server.argv(), capture_output=True, text=True, timeout=20)
    assert p.returncode == 2
    assert "snapshot-cuont" in p.stderr and server.config_path in p.stderr


def test_every_flag_of_etcd_help_is_served_or_judged_by_name():
    if harness.target_kind() == "etcd":
        pytest.skip("compares musubi's flags with etcd's")
    etcd_help = subprocess.run([harness.ETCD_BIN, "--help"], capture_output=True, text=True).stdout
    etcd_flags = set(re.findall(r"^\s+--([a-z0-9-]+)", etcd_help, re.M))
    assert len(etcd_flags) > 70, etcd_help[:500]
    ours = subprocess.run([harness.musubi_bin(), "serve", "--help"], capture_output=True, text=True)
    assert ours.returncode == 0
    listed = set(re.findall(r"^\s+--([a-z0-9-]+)", ours.stdout, re.M))
    assert etcd_flags - {"help", "version"} <= listed, sorted(etcd_flags - listed)


def test_an_etcd_flag_musubi_lacks_is_refused_with_its_reason(fleet):
    if harness.target_kind() == "etcd":
        pytest.skip("etcd serves its own flags")
    server = fleet.target(extra_args=["--proxy", "on"])
    p = subprocess.run(server.argv(), capture_output=True, text=True, timeout=20)
    assert p.returncode == 2
    assert "--proxy=on: not supported by musubi: musubi does not run etcd's proxy mode" in p.stderr


def test_a_tuning_flag_musubi_lacks_is_warned_about_and_the_member_serves(fleet):
    if harness.target_kind() == "etcd":
        pytest.skip("etcd serves its own flags")
    server = fleet.target(extra_args=["--backend-batch-limit", "100", "--pre-vote=false"],
                          env={"ETCD_NO_SUCH_FLAG": "1"}).start()
    status, _, _ = server.request("PUT", "/v2/keys/k", "value=v")
    assert status == 201
    log = server.log_tail(100000)
    assert "--backend-batch-limit=100 has no effect: musubi has no bbolt backend" in log
    assert "--pre-vote=false has no effect" in log
    assert "unrecognized environment variable ETCD_NO_SUCH_FLAG" in log
