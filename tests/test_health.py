"""`/health` tells the truth, as etcd 3.4's does: a member answers `{"health":"true"}` only
when a quorum read completes within a second, so a member cut off from its quorum (which
still remembers the last leader) answers 503 `{"health":"false"}`, and a load balancer stops
sending it traffic. Runs against etcd 3.4 too (MUSUBI_TEST_TARGET=etcd)."""

import json
import os
import subprocess
import time

import pytest

import harness
from harness import wait_for

TIMING = ["--heartbeat-interval", "100", "--election-timeout", "1000"]


def health(server):
    try:
        st, _, body = server.request("GET", "/health", timeout=5.0)
    except OSError:
        return None, None
    return st, json.loads(body).get("health")


def is_leader(server):
    st, _, body = server.request("GET", "/v2/stats/self", timeout=2.0)
    return st == 200 and json.loads(body).get("state") == "StateLeader"


def test_a_member_without_its_quorum_is_unhealthy_until_the_quorum_returns(fleet):
    members = fleet.cluster(3, extra_args=TIMING)
    for m in members:
        assert health(m) == (200, "true")
    leader = next(m for m in members if is_leader(m))
    survivor = next(m for m in members if m is not leader)
    lost = [m for m in members if m is not survivor]
    for m in lost:
        m.kill()
    wait_for("the survivor to report itself unhealthy",
             lambda: health(survivor) == (503, "false"), timeout=10)
    # ... and it stays so while the quorum is gone.
    for _ in range(5):
        assert health(survivor) == (503, "false")
        time.sleep(0.3)
    # The health commands agree with /health.
    assert cli_health(survivor) == (False, False, False)
    for m in lost:
        m.start(wait=False)
    wait_for("the cluster to be healthy again",
             lambda: all(health(m) == (200, "true") for m in members), timeout=30)
    assert cli_health(survivor) == (True, True, True)


def cli_health(server):
    """Whether `musubi cluster health` (or etcd's `etcdctl cluster-health`), etcdctl v2's
    `cluster-health` and v3's `endpoint health` call the cluster (resp. the member) healthy,
    by their exit codes."""
    from v3util import Ctl3
    v2 = dict(os.environ, ETCDCTL_API="2")
    ours = harness.musubi_bin() if harness.target_kind() == "musubi" else None
    musubi = (subprocess.run([ours, "cluster", "--endpoints", server.url, "health"],
                             capture_output=True, timeout=30).returncode == 0
              if ours else
              subprocess.run([harness.ETCDCTL_BIN, "--endpoints", server.url, "cluster-health"],
                             capture_output=True, env=v2, timeout=30).returncode == 0)
    etcdctl2 = subprocess.run([harness.ETCDCTL_BIN, "--endpoints", server.url, "cluster-health"],
                              capture_output=True, env=v2, timeout=30).returncode == 0
    code, _, _ = Ctl3(server).run("endpoint", "health")
    return musubi, etcdctl2, code == 0


def probe(server, path):
    try:
        st, _, body = server.request("GET", path, timeout=5.0)
    except OSError:
        return None, ""
    return st, body.decode()


@pytest.mark.skipif(harness.target_kind() == "etcd", reason="etcd 3.4 has no /livez or /readyz (3.5 does)")
def test_livez_and_readyz_tell_alive_from_ready_as_etcd_35(fleet):
    """/readyz fails without a quorum while /livez stays ok: a Kubernetes probe restarts
    nothing, and takes the member out of its Service until the quorum is back."""
    members = fleet.cluster(3, extra_args=TIMING)
    survivor = members[0]
    assert probe(survivor, "/livez") == (200, "ok")
    assert probe(survivor, "/readyz") == (200, "ok")
    st, body = probe(survivor, "/readyz?verbose")
    assert st == 200
    assert body.splitlines() == ["[+]data_corruption ok", "[+]serializable_read ok",
                                 "[+]linearizable_read ok", "readyz check passed"]
    for m in members[1:]:
        m.kill()
    wait_for("/readyz to fail without a quorum", lambda: probe(survivor, "/readyz")[0] == 503,
             timeout=10)
    st, body = probe(survivor, "/readyz")
    assert "[-]linearizable_read failed:" in body and body.endswith("readyz check failed\n"), body
    assert probe(survivor, "/livez") == (200, "ok")
    # A check can be left out, as Kubernetes' probes allow.
    st, body = probe(survivor, "/readyz?exclude=linearizable_read")
    assert st == 200 and body == "ok", body
    for m in members[1:]:
        m.start(wait=False)
    wait_for("/readyz to pass again", lambda: probe(survivor, "/readyz") == (200, "ok"),
             timeout=30)


def test_a_leader_cut_off_from_its_quorum_reports_no_leader_in_metrics_and_status(fleet):
    from test_metrics import scrape, value
    from v3util import Ctl3
    members = fleet.cluster(3, extra_args=TIMING)
    leader = next(m for m in members if is_leader(m))
    assert value(scrape(leader), "etcd_server_has_leader") == 1
    for m in members:
        if m is not leader:
            m.kill()

    def no_leader_in_status():
        code, out, _ = Ctl3(leader).run("endpoint", "status", "-w", "json")
        if code != 0:
            return False
        status = json.loads(out)[0]["Status"]
        # etcdctl's JSON leaves out a zero leader
        return status.get("leader", 0) == 0 and "etcdserver: no leader" in status.get("errors", [])
    wait_for("the cut-off leader to report no leader in its metrics",
             lambda: value(scrape(leader), "etcd_server_has_leader") == 0, timeout=10)
    wait_for("its v3 Status to say 'no leader'", no_leader_in_status, timeout=10)
