"""`musubi agent`'s telemetry under Serf's metric names: Prometheus text on `-http-addr`'s
`/metrics` (parsed with prometheus_client's parser, as test_metrics.py does), statsd lines
over UDP to `statsd_addr` and over TCP to `statsite_addr`. Values are checked to move with
what happens: a join, a failure, a user event, a query. The same listener's `/v1/members`
(for the dashboard) is checked against `serf members -format json`.

Environment: see tests/agents.py. MUSUBI_AGENT_TARGET=serf runs the statsd and statsite
tests against Debian's `serf agent` (Serf has no Prometheus listener: those tests are
musubi's only), which proves the names and the prefix are Serf's.
"""

import base64
import json
import os
import socket
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

import harness
from agents import AGENT_TARGET, SERF_BIN, Agent, agents, serf, statuses, wait_for  # noqa: F401

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

musubi_only = pytest.mark.skipif(AGENT_TARGET == "serf", reason="Serf has no -http-addr")


def scrape(port):
    """{family name: family} of one scrape of http://127.0.0.1:port/metrics."""
    st, headers, body = harness.raw_request(port, "GET", "/metrics")
    assert st == 200, body
    assert headers.get("content-type", "").startswith("text/plain"), headers
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(families, name, suffix=""):
    family = families.get(name)
    if family is None:
        return 0.0
    # The parser names a counter's sample `<name>_total` whatever the exposition says.
    names = (name + suffix, name + suffix + "_total")
    return sum(s.value for s in family.samples if s.name in names)


def wait_value(port, name, predicate, what, suffix=""):
    return wait_for(lambda: predicate(value(scrape(port), name, suffix)) and True, 20, what)


@pytest.fixture
def observed(agents):
    """a1 serving /metrics on -http-addr; returns (a1, its metrics port)."""
    port = harness.free_port()
    a1 = agents("a1", args=["-http-addr", "127.0.0.1:%d" % port])
    return a1, port


@musubi_only
def test_metrics_are_prometheus_text_and_other_paths_are_404(observed):
    _, port = observed
    families = scrape(port)
    assert families["serf_member_join"].type == "counter"
    # Its own start is a join, as Serf counts it.
    assert value(families, "serf_member_join") == 1
    assert families["memberlist_health_score"].type == "gauge"
    assert value(families, "memberlist_health_score") == 0
    st, _, _ = harness.raw_request(port, "GET", "/")
    assert st == 404


def http_members(port):
    """(headers, {name: member}) from http://127.0.0.1:port/v1/members."""
    st, headers, body = harness.raw_request(port, "GET", "/v1/members")
    assert st == 200, body
    return headers, {m["name"]: m for m in json.loads(body)["members"]}


@musubi_only
def test_v1_members_is_serfs_members_json_open_to_any_origin(observed, agents):
    a1, port = observed
    a2 = agents("a2", tags=["role=db", "dc=east"], join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "both alive")
    headers, members = http_members(port)
    assert headers["access-control-allow-origin"] == "*", headers
    assert headers["content-type"] == "application/json", headers
    # Field for field what `serf members -format json` prints through the RPC.
    assert members == a1.members()
    assert members["a2"] == {
        "name": "a2", "addr": a2.gossip_addr, "port": a2.gossip_port,
        "tags": {"role": "db", "dc": "east"}, "status": "alive",
        "protocol": {"max": 5, "min": 2, "version": 5},
    }
    a2.kill()
    wait_for(lambda: http_members(port)[1]["a2"]["status"] == "failed", 30, "a2 failed")
    st, _, _ = harness.raw_request(port, "POST", "/v1/members")
    assert st == 405


@musubi_only
def test_member_counters_move_with_joins_and_failures(observed, agents):
    a1, port = observed
    joined = value(scrape(port), "serf_member_join")
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_value(port, "serf_member_join", lambda v: v >= joined + 1, "a2's join counted")
    families = scrape(port)
    assert value(families, "memberlist_udp_sent") > 0
    assert value(families, "memberlist_udp_received") > 0
    # Probes are answered and timed (a summary: _count and _sum).
    wait_value(port, "memberlist_probeNode", lambda v: v > 0, "a probe timed", "_count")
    failed = value(scrape(port), "serf_member_failed")
    a2.kill()
    wait_value(port, "serf_member_failed", lambda v: v == failed + 1, "a2's failure counted")
    # Back within a minute of failing: a join and a flap.
    flaps = value(scrape(port), "serf_member_flap")
    joined = value(scrape(port), "serf_member_join")
    a2.start()
    wait_value(port, "serf_member_join", lambda v: v >= joined + 1, "a2's rejoin counted")
    assert value(scrape(port), "serf_member_flap") >= flaps + 1


@musubi_only
def test_user_events_and_queries_are_counted_by_name(observed, agents):
    a1, port = observed
    a2 = agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "both alive")
    before = scrape(port)
    out = serf("event", a2, "deploy", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    wait_value(port, "serf_events_deploy", lambda v: v == 1, "the deploy event counted")
    assert value(scrape(port), "serf_events") == value(before, "serf_events") + 1
    out = serf("query", a1, "-timeout", "2s", "uptime")
    assert out.returncode == 0, out.stdout + out.stderr
    families = scrape(port)
    assert value(families, "serf_queries_uptime") == 1
    assert value(families, "serf_queries") >= value(before, "serf_queries") + 1
    # a1 asked: both members ack it (no handler answers, so no responses).
    assert value(families, "serf_query_acks") >= value(before, "serf_query_acks") + 2


@musubi_only
def test_an_event_too_big_for_gossip_is_counted_on_the_stream_transport(agents):
    ports = [harness.free_port(), harness.free_port()]
    limit = ["-user-event-size-limit", "70000"]
    a1 = agents("a1", args=limit + ["-http-addr", "127.0.0.1:%d" % ports[0]])
    agents("a2", join=[a1.gossip_addr], args=limit + ["-http-addr", "127.0.0.1:%d" % ports[1]])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "both alive")
    sent = value(scrape(ports[0]), "memberlist_tcp_sent")
    accepted = value(scrape(ports[1]), "memberlist_tcp_accept")
    # Random base64 hardly compresses: 60 KB stays far over a datagram.
    payload = base64.b64encode(os.urandom(45000)).decode()
    out = serf("event", a1, "report", payload)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_value(ports[1], "serf_events_report", lambda v: v == 1, "a2 received the event")
    assert value(scrape(ports[0]), "memberlist_tcp_connect") >= 1
    assert value(scrape(ports[0]), "memberlist_tcp_sent") >= sent + 40000
    assert value(scrape(ports[1]), "memberlist_tcp_accept") >= accepted + 1


@musubi_only
def test_a_bad_http_addr_is_refused(tmp_path):
    agent = Agent(str(tmp_path), "x", args=["-http-addr", "nowhere"]).start(wait=False)
    try:
        assert agent.wait_exit() == 1
        assert "Invalid HTTP address: nowhere" in agent.log()
    finally:
        agent.kill()


class StatsdListener:
    """statsd lines arriving over UDP (one or more per datagram) or TCP (statsite)."""

    def __init__(self, tcp=False):
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.lock = threading.Lock()
        if tcp:
            self.sock.listen(4)
        target = self._accept if tcp else self._receive
        threading.Thread(target=target, daemon=True).start()

    def _add(self, data):
        with self.lock:
            self.lines += [line for line in data.decode().split("\n") if line]

    def _receive(self):
        while True:
            data, _ = self.sock.recvfrom(65536)
            self._add(data)

    def _accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        pending = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            pending += data
            complete, _, pending = pending.rpartition(b"\n")
            if complete:
                self._add(complete)

    def total(self, name, kind="c"):
        """The sum of a counter's (or the count of another kind's) values under `name`."""
        with self.lock:
            lines = list(self.lines)
        total = 0.0
        for line in lines:
            key, _, rest = line.partition(":")
            amount, _, rest_kind = rest.partition("|")
            if key == name and rest_kind.split("|")[0] == kind:
                total += float(amount) if kind == "c" else 1
        return total

    def gauges(self):
        with self.lock:
            return {line.partition(":")[0] for line in self.lines if line.endswith("|g")}


def sink_agents(agents, tmp_path, key, listener):
    config = tmp_path / "telemetry.json"
    config.write_text(json.dumps({key: "127.0.0.1:%d" % listener.port}))
    a1 = agents("a1", args=["-config-file", str(config)])
    agents("a2", join=[a1.gossip_addr])
    wait_for(lambda: statuses(a1) == {"a1": "alive", "a2": "alive"}, 15, "both alive")
    out = serf("event", a1, "deploy", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    return a1


@pytest.mark.parametrize("key", ["statsd_addr", "statsite_addr"])
def test_statsd_and_statsite_get_serfs_names_and_prefix(agents, tmp_path, key):
    listener = StatsdListener(tcp=key == "statsite_addr")
    sink_agents(agents, tmp_path, key, listener)
    for name in ("serf-agent.serf.member.join", "serf-agent.serf.events",
                 "serf-agent.serf.events.deploy", "serf-agent.memberlist.udp.sent"):
        wait_for(lambda: listener.total(name) >= 1, 20, "%s over %s" % (name, key))
    # Serf's gauges carry the host name after the prefix (go-metrics' EnableHostname).
    host = socket.gethostname()
    wait_for(lambda: listener.gauges(), 20, "a gauge")
    assert all(n.startswith("serf-agent.%s." % host) for n in listener.gauges())
    # Timers are statsd's `ms` kind.
    wait_for(lambda: listener.total("serf-agent.memberlist.probeNode", "ms") >= 1, 20,
             "probe timings")
