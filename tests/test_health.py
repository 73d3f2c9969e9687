"""`/health` tells the truth, as etcd 3.4's does: a member answers `{"health":"true"}` only
when a quorum read completes within a second, so a member cut off from its quorum (which
still remembers the last leader) answers 503 `{"health":"false"}`, and a load balancer stops
sending it traffic. Runs against etcd 3.4 too (MUSUBI_TEST_TARGET=etcd)."""

import json
import time

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


def wait_for(what, check, timeout=20.0):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


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
    for m in lost:
        m.start(wait=False)
    wait_for("the cluster to be healthy again",
             lambda: all(health(m) == (200, "true") for m in members), timeout=30)
