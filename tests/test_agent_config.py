"""`musubi agent`'s configuration and lifecycle, driven by Debian's real `serf` CLI: JSON
config files and directories, rpc_auth, Serf's signal semantics and SIGHUP reload, timing
profiles, retry-join, syslog and mDNS discovery.

Environment: see tests/agents.py (MUSUBI_AGENT_TARGET=serf proves these tests against
Debian's `serf agent`).
"""

import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

import harness
from agents import (AGENT_TARGET, FAILURE_DETECTION_BOUND, SERF_BIN, Agent, agents,  # noqa: F401
                    recording_handler, serf, statuses, wait_for)
from test_agent import HANDSHAKE, mp_map, mp_str, reply_header, request, rpc_exchange

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")

musubi_only = pytest.mark.skipif(AGENT_TARGET == "serf", reason="a musubi-only setting")


def write_json(path, value):
    path.write_text(json.dumps(value))
    return str(path)


def agent_argv(tmp_path, *args):
    """argv of an agent that is expected to exit at start (nothing to clean up)."""
    agent = Agent(str(tmp_path), "x", args=args)
    return agent.argv


def run_to_exit(argv, timeout=30, env=None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


# --- config files -------------------------------------------------------------------

def test_config_files_and_dirs_merge_in_order_and_flags_win(agents, tmp_path):
    a1 = agents("a1")
    confd = tmp_path / "conf.d"
    confd.mkdir()
    first = write_json(tmp_path / "first.json", {
        "node_name": "from-file", "tags": {"a": "file", "b": "file"},
        "start_join": [a1.gossip_addr]})
    write_json(confd / "10-tags.json", {"tags": {"b": "dir", "c": "dir"}})
    write_json(confd / "20-name.json", {"node_name": "from-dir"})
    (confd / "30-ignored.txt").write_text("{not json, not read")
    # No -node flag: the name comes from the files, the last one read winning.
    named_by_files = agents("from-dir", name_flag=False, tags=["c=flag"],
                            args=["-config-file", first, "-config-dir", str(confd)])
    members = named_by_files.members()
    assert "from-dir" in members, members
    assert members["from-dir"]["tags"] == {"a": "file", "b": "dir", "c": "flag"}
    # start_join from the file joined a1.
    wait_for(lambda: statuses(a1).get("from-dir") == "alive", 15, "a1 to see from-dir")
    # A -node flag wins over every file.
    flagged = agents("by-flag", args=["-config-dir", str(confd), "-config-file", first])
    # Here the file comes after the dir, so its tags win where both say something.
    assert flagged.members()["by-flag"]["tags"] == {"a": "file", "b": "file", "c": "dir"}


def test_an_unknown_config_key_is_refused_with_serfs_message(tmp_path):
    bad = write_json(tmp_path / "bad.json", {"node_name": "x", "zeta": 1, "alpha": True})
    out = run_to_exit(agent_argv(tmp_path, "-config-file", bad))
    assert out.returncode == 1
    assert ("==> Error decoding '%s': 1 error(s) decoding:\n\n* '' has invalid keys: alpha, zeta"
            % bad) in out.stdout + out.stderr


def test_values_of_the_wrong_type_are_refused_with_serfs_messages(tmp_path):
    bad = write_json(tmp_path / "types.json", {"protocol": "x", "node_name": 5,
                                               "start_join": [1]})
    out = run_to_exit(agent_argv(tmp_path, "-config-file", bad))
    assert out.returncode == 1
    assert ("==> Error decoding '%s': 3 error(s) decoding:\n\n"
            "* 'node_name' expected type 'string', got unconvertible type 'float64', value: '5'\n"
            "* 'protocol' expected type 'int', got unconvertible type 'string', value: 'x'\n"
            "* 'start_join[0]' expected type 'string', got unconvertible type 'float64', value: '1'"
            % bad) in out.stdout + out.stderr


def test_a_config_file_that_is_not_json_or_missing_is_refused(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"node_name": "x"')
    out = run_to_exit(agent_argv(tmp_path, "-config-file", str(broken)))
    assert out.returncode == 1
    assert "==> Error decoding '%s': " % broken in out.stdout + out.stderr
    missing = str(tmp_path / "missing.json")
    out = run_to_exit(agent_argv(tmp_path, "-config-file", missing))
    assert out.returncode == 1
    assert "==> Error reading '%s': " % missing in out.stdout + out.stderr


def test_every_serf_config_key_is_accepted(agents, tmp_path):
    keyring = tmp_path / "keyring.json"
    keyring.write_text(json.dumps(["cg8StVXbQJ0gPvMd9o7yrg=="]))
    config = write_json(tmp_path / "all.json", {
        "node_name": "all", "role": "", "tags": {"k": "v"}, "bind": "127.0.0.1",
        "advertise": "", "log_level": "info", "rpc_addr": "", "rpc_auth": "",
        "protocol": 4, "replay_on_join": False, "query_size_limit": 1024,
        "query_response_size_limit": 1024, "user_event_size_limit": 512,
        "start_join": [], "retry_join": [], "retry_max_attempts": 0, "retry_interval": "30s",
        "rejoin_after_leave": False, "event_handlers": [], "profile": "lan",
        "leave_on_terminate": False, "skip_leave_on_interrupt": False, "discover": "",
        "interface": "", "reconnect_interval": "30s", "reconnect_timeout": "24h",
        "tombstone_timeout": "24h", "disable_name_resolution": False,
        "disable_coordinates": False, "enable_syslog": False, "syslog_facility": "LOCAL0",
        "enable_compression": True, "statsite_addr": "", "statsd_addr": "",
        "broadcast_timeout": "5s", "encrypt_key": "", "keyring_file": str(keyring),
        "snapshot_path": str(tmp_path / "snapshot"), "tags_file": ""})
    agent = agents("all", args=["-config-file", config])
    assert agent.members()["all"]["tags"] == {"k": "v"}


# --- rpc_auth -----------------------------------------------------------------------

def test_rpc_auth_is_required_and_checked(agents, tmp_path):
    config = write_json(tmp_path / "auth.json", {"rpc_auth": "sekret"})
    agent = agents("a1", auth="sekret", args=["-config-file", config])
    out = serf("members", agent)
    assert out.returncode == 0 and "a1" in out.stdout, out.stdout + out.stderr
    agent.auth = None
    out = serf("members", agent)
    assert out.returncode == 1
    assert "Authentication required" in out.stdout + out.stderr
    out = serf("members", agent, "-rpc-auth=wrong")
    assert out.returncode == 1
    assert "Invalid authentication token" in out.stdout + out.stderr
    env_auth = subprocess.run([SERF_BIN, "members", "-rpc-addr=" + agent.rpc_addr],
                              capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, SERF_RPC_AUTH="sekret"))
    assert env_auth.returncode == 0 and "a1" in env_auth.stdout


def test_a_command_before_auth_leaves_its_body_unread_as_serf_does(agents, tmp_path):
    config = write_json(tmp_path / "auth.json", {"rpc_auth": "sekret"})
    agent = agents("a1", auth="sekret", args=["-config-file", config])
    join_body = mp_map([("Existing", b"\x91" + mp_str("127.0.0.1:1")), ("Replay", b"\xc2")])
    sent = (HANDSHAKE + request("join", 2, join_body)
            + request("auth", 3, mp_map([("AuthKey", mp_str("wrong"))]))
            + request("auth", 4, mp_map([("AuthKey", mp_str("sekret"))]))
            + request("stop", 5, mp_map([("Stop", b"\x01")])))
    received, closed = rpc_exchange(agent, sent)
    required = "Authentication required"
    # The unread join body is taken for a header: the join again, refused again, Seq 2.
    assert received == (reply_header(0) + reply_header(2, required) + reply_header(2, required)
                        + reply_header(3, "Invalid authentication token") + reply_header(4)
                        + reply_header(5))
    assert not closed
    # A body that is not a map cannot be a header: the connection is closed.
    received, closed = rpc_exchange(agent, HANDSHAKE + request("event", 1, mp_str("x")))
    assert received == reply_header(0) + reply_header(1, required)
    assert closed


def test_rpc_auth_guards_streams_monitor_and_queries(agents, tmp_path):
    from test_agent_query import Rpc  # a Serf RPC client that reads streams

    config = write_json(tmp_path / "auth.json", {"rpc_auth": "sekret"})
    agent = agents("a1", auth="sekret", args=["-config-file", config])
    client = Rpc(agent)
    required = "Authentication required"
    for command, body in (("stream", {"Type": "user"}), ("monitor", {"LogLevel": "INFO"}),
                          ("query", {"Name": "q", "Timeout": 10**9})):
        seq = client.send(command, body)
        # refused; its unread body, taken for a header, repeats the refusal
        client.wait(lambda m: [x[:2] for x in client.messages()].count([seq, required]) == 2,
                    what="two refusals of %s" % command)
    assert client.reply(client.send("auth", {"AuthKey": "sekret"})) == ""
    stream = client.send("stream", {"Type": "user"})
    monitor = client.send("monitor", {"LogLevel": "INFO"})
    assert client.reply(stream) == "" and client.reply(monitor) == ""
    out = serf("event", agent, "deploy", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    client.wait(lambda m: m[0] == stream and m[2] and m[2].get("Name") == "deploy",
                what="the event on the stream")
    client.wait(lambda m: m[0] == monitor and m[2]
                and "Received event: user-event: deploy" in m[2].get("Log", ""),
                what="the event's log line on the monitor")
    # the serf CLI's own streams with the key: a query and its (empty) end
    out = serf("query", agent, "-timeout", "1s", "ping")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Total Acks: 1" in out.stdout


# --- signals ------------------------------------------------------------------------

def pair(agents, tmp_path, config):
    """a1, and a2 joined to it running with the given JSON config."""
    a1 = agents("a1")
    a2 = agents("a2", join=[a1.gossip_addr],
                args=["-config-file", write_json(tmp_path / "a2.json", config)])
    wait_for(lambda: statuses(a1).get("a2") == "alive", 15, "a1 to see a2 alive")
    return a1, a2


def test_sigterm_with_leave_on_terminate_leaves_and_exits_0(agents, tmp_path):
    a1, a2 = pair(agents, tmp_path, {"leave_on_terminate": True})
    a2.proc.send_signal(signal.SIGTERM)
    assert a2.wait_exit() == 0
    wait_for(lambda: statuses(a1).get("a2") == "left", 15, "a1 to see a2 left")


def test_sigterm_without_leave_on_terminate_exits_1_and_is_seen_failed(agents, tmp_path):
    a1, a2 = pair(agents, tmp_path, {})
    a2.proc.send_signal(signal.SIGTERM)
    assert a2.wait_exit() == 1
    wait_for(lambda: statuses(a1).get("a2") == "failed", FAILURE_DETECTION_BOUND,
             "a1 to see a2 failed")


def test_sigint_with_skip_leave_on_interrupt_exits_1_and_is_seen_failed(agents, tmp_path):
    a1, a2 = pair(agents, tmp_path, {"skip_leave_on_interrupt": True})
    a2.proc.send_signal(signal.SIGINT)
    assert a2.wait_exit() == 1
    wait_for(lambda: statuses(a1).get("a2") == "failed", FAILURE_DETECTION_BOUND,
             "a1 to see a2 failed")


def test_sigint_leaves_gracefully_by_default(agents, tmp_path):
    a1, a2 = pair(agents, tmp_path, {"leave_on_terminate": False})
    a2.proc.send_signal(signal.SIGINT)
    assert a2.wait_exit() == 0
    wait_for(lambda: statuses(a1).get("a2") == "left", 15, "a1 to see a2 left")


def test_sighup_reloads_tags_log_level_and_handlers(agents, tmp_path):
    handler, records = recording_handler(tmp_path, "events")
    config_path = tmp_path / "a2.json"
    a1, a2 = pair(agents, tmp_path, {"tags": {"role": "web", "gone": "soon"},
                                     "log_level": "info"})
    assert a1.members()["a2"]["tags"] == {"role": "web", "gone": "soon"}
    assert "DEBUG" not in a2.log()
    write_json(config_path, {"tags": {"role": "db", "new": "x"}, "log_level": "debug",
                             "event_handlers": ["user:deploy=" + handler]})
    a2.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: a1.members()["a2"]["tags"] == {"role": "db", "new": "x"}, 15,
             "a1 to see a2's reloaded tags")
    assert statuses(a1)["a2"] == "alive"
    out = serf("event", a1, "deploy", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: records(), 15, "the reloaded handler to run on a2")
    env, stdin = records()[0]
    assert env["SERF_EVENT"] == "user" and env["SERF_USER_EVENT"] == "deploy"
    assert env["SERF_TAG_ROLE"] == "db"
    assert stdin == ["v2"]
    wait_for(lambda: "DEBUG" in a2.log(), 15, "a debug line after the reload")
    assert a2.proc.poll() is None


@musubi_only
@musubi_only
def test_a_sighup_refreshes_the_handlers_serf_info_lists(agents, tmp_path):
    # Serf's info keeps listing the handlers it started with; musubi lists those that run.
    def listed():
        out = serf("info", agent, "-format", "json")
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)["event_handlers"]

    config_path = tmp_path / "a1.json"
    write_json(config_path, {"event_handlers": ["user:a=true"]})
    agent = agents("a1", args=["-config-file", str(config_path)])
    assert listed() == {"user:a": "true"}
    write_json(config_path, {"event_handlers": ["member-join,user:b=false"]})
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: done" in agent.log(), 15, "the reload")
    assert listed() == {"member-join:": "false", "user:b": "false"}


def test_a_sighup_leaves_tags_from_a_tags_file_alone(agents, tmp_path):
    # Serf would set the config's (necessarily empty) tags and empty the file.
    tags_file = tmp_path / "tags.json"
    tags_file.write_text(json.dumps({"role": "web"}))
    agent = agents("a1", args=["-tags-file", str(tags_file)])
    out = serf("tags", agent, "-set", "zone=z1")
    assert out.returncode == 0, out.stdout + out.stderr
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: done" in agent.log(), 15, "the reload")
    assert agent.members()["a1"]["tags"] == {"role": "web", "zone": "z1"}
    assert json.loads(tags_file.read_text()) == {"role": "web", "zone": "z1"}


def test_a_sighup_with_a_broken_config_changes_nothing(agents, tmp_path):
    config_path = tmp_path / "a2.json"
    a1, a2 = pair(agents, tmp_path, {"tags": {"role": "web"}})
    config_path.write_text('{"tags": {"role": "db"}, "no_such_key": 1}')
    a2.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "Failed to reload configs" in a2.log(), 15, "the reload to be refused")
    assert a2.proc.poll() is None
    assert a1.members()["a2"]["tags"] == {"role": "web"}


# --- profiles -----------------------------------------------------------------------

def test_profiles_are_accepted_and_unknown_ones_refused(agents, tmp_path):
    for profile in ("lan", "wan", "local"):
        agent = agents("p-" + profile, args=["-profile", profile])
        assert agent.members()["p-" + profile]["status"] == "alive"
    out = run_to_exit(agent_argv(tmp_path, "-profile", "fast"))
    assert out.returncode == 1
    assert "==> Unknown profile: fast" in out.stdout + out.stderr


def test_the_local_profile_detects_a_kill_faster_than_wan(agents):
    """Two pairs, one per profile, lose a member at the same moment. The times are printed
    (pytest -s); only their order is asserted."""
    pairs = {}
    for profile in ("local", "wan"):
        watcher = agents(profile + "-1", args=["-profile", profile])
        victim = agents(profile + "-2", join=[watcher.gossip_addr], args=["-profile", profile])
        wait_for(lambda: statuses(watcher).get(victim.name) == "alive", 15, "the pair to form")
        pairs[profile] = (watcher, victim)
    started = time.time()
    for _, victim in pairs.values():
        victim.kill()
    detected = {}
    while len(detected) < 2 and time.time() - started < 120:
        for profile, (watcher, victim) in pairs.items():
            if profile not in detected and statuses(watcher).get(victim.name) == "failed":
                detected[profile] = time.time() - started
        time.sleep(0.2)
    print("\nfailure detection: %s" % ", ".join("%s %.1fs" % kv for kv in sorted(detected.items())))
    assert set(detected) == {"local", "wan"}, detected
    assert detected["local"] < detected["wan"]


# --- joining ------------------------------------------------------------------------

def test_retry_join_gets_past_a_dead_address_to_a_live_one(agents):
    a1 = agents("a1")
    dead = "127.0.0.1:%d" % harness.free_port()
    a2 = agents("a2", args=["-retry-join", dead, "-retry-join", a1.gossip_addr,
                            "-retry-interval", "1s"])
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent) == {"a1": "alive", "a2": "alive"}, 30,
                 "%s to see both alive" % agent.name)


def test_retry_join_keeps_trying_until_a_member_appears(agents, tmp_path):
    gossip_port = harness.free_port()
    config = write_json(tmp_path / "retry.json", {
        "retry_join": ["127.0.0.1:%d" % gossip_port], "retry_interval": "1s"})
    a2 = agents("a2", args=["-config-file", config])
    time.sleep(2)
    a1 = Agent(str(tmp_path), "a1")
    a1.gossip_port = gossip_port
    a1.argv[a1.argv.index("-bind") + 1] = a1.gossip_addr
    try:
        a1.start()
        wait_for(lambda: statuses(a2).get("a1") == "alive", 45, "a2 to join a1 on a retry")
    finally:
        a1.kill()


def test_retry_max_exhausted_exits_1_with_serfs_message(agents):
    dead = "127.0.0.1:%d" % harness.free_port()
    agent = agents("a1", args=["-retry-join", dead, "-retry-max", "1",
                               "-retry-interval", "1s"])
    assert agent.wait_exit(timeout=60) == 1
    log = agent.log()
    assert "maximum retry join attempts made, exiting" in log
    assert log.count("Join failed:") == 1, log
    assert "retrying in 1s" in log


def test_a_too_short_retry_interval_is_raised_to_1s_with_serfs_warning(agents):
    agent = agents("a1", args=["-retry-join", "127.0.0.1:%d" % harness.free_port(),
                               "-retry-interval", "10ms"])
    assert "Warning: 'RetryInterval' is too low. Setting to 1s" in agent.log()


# --- other flags --------------------------------------------------------------------

def test_iface_role_protocol_compression_and_broadcast_timeout_flags(agents, tmp_path):
    agent = Agent(str(tmp_path), "a1", args=[
        "-iface", "lo", "-role", "web", "-protocol", "4", "-disable-compression",
        "-broadcast-timeout", "2s", "-replay"])
    agent.argv[agent.argv.index("-bind") + 1] = "0.0.0.0:%d" % agent.gossip_port
    agent.start()
    try:
        member = agent.members()["a1"]
        assert member["addr"] == "127.0.0.1:%d" % agent.gossip_port
        assert member["tags"] == {"role": "web"}
        assert "Deprecation warning: 'Role' has been replaced with 'Tags'" in agent.log()
        assert "==> Using interface 'lo' address '127.0.0.1'" in agent.log()
    finally:
        agent.kill()


def test_an_unknown_interface_is_refused(tmp_path):
    out = run_to_exit(agent_argv(tmp_path, "-iface", "nosuchif0"))
    assert out.returncode == 1
    assert "==> Invalid network interface: " in out.stdout + out.stderr


# --- syslog -------------------------------------------------------------------------

def syslog_socket(tmp_path):
    """A unix datagram socket standing in for the syslog daemon, and the env pointing the
    agent at it. Serf cannot be pointed elsewhere, so with the serf target it must be
    /dev/log itself (only when no daemon has it)."""
    if AGENT_TARGET == "serf":
        path = "/dev/log"
        if os.path.exists(path) or not os.access("/dev", os.W_OK):
            pytest.skip("serf writes only to /dev/log, which a daemon owns here")
    else:
        path = str(tmp_path / "log.sock")
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    daemon.bind(path)
    daemon.settimeout(0.5)
    return daemon, path, {"MUSUBI_SYSLOG_SOCKET": path}


def received(daemon):
    lines = []
    while True:
        try:
            lines.append(daemon.recv(65536).decode("utf-8", "replace"))
        except socket.timeout:
            return lines


def test_syslog_gets_the_log_lines_with_the_configured_facility(agents, tmp_path):
    daemon, path, env = syslog_socket(tmp_path)
    try:
        config = write_json(tmp_path / "syslog.json", {"syslog_facility": "LOCAL3"})
        agent = agents("a1", env=env, args=["-syslog", "-config-file", config])
        lines = []
        wait_for(lambda: lines.extend(received(daemon)) or any("member-join" in l for l in lines),
                 15, "a member-join line in syslog")
        # LOCAL3 is facility 19; INFO lines are NOTICE (5): <19*8+5>.
        notice = [l for l in lines if l.startswith("<157>")]
        assert notice, lines
        program = "serf" if AGENT_TARGET == "serf" else "musubi"
        assert "%s[%d]: " % (program, agent.proc.pid) in notice[0]
    finally:
        daemon.close()
        if path == "/dev/log":
            os.unlink(path)


@musubi_only
def test_syslog_without_a_daemon_is_refused_at_start(tmp_path):
    env = {"MUSUBI_SYSLOG_SOCKET": str(tmp_path / "nobody-listens")}
    out = run_to_exit(agent_argv(tmp_path, "-syslog"), env=env)
    assert out.returncode == 1
    assert "==> Syslog setup failed: " in out.stdout + out.stderr


# --- mDNS discovery -----------------------------------------------------------------

def multicast_loops_back():
    """Whether a multicast datagram sent here comes back here, as mDNS between two local
    agents needs."""
    group = "224.0.0.251"
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        listener.bind(("", 0))
        membership = socket.inet_aton(group) + socket.inet_aton("0.0.0.0")
        listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        listener.settimeout(1.0)
        sender.sendto(b"probe", (group, listener.getsockname()[1]))
        return listener.recv(16) == b"probe"
    except OSError:
        return False
    finally:
        listener.close()
        sender.close()


@pytest.mark.skipif(not multicast_loops_back(), reason="multicast does not loop back here")
def test_agents_with_the_same_discover_name_find_each_other(agents):
    cluster = "t" + uuid.uuid4().hex[:8]
    a1 = agents("a1", args=["-discover", cluster])
    a2 = agents("a2", args=["-discover", cluster])
    other = agents("other", args=["-discover", "t" + uuid.uuid4().hex[:8]])
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent) == {"a1": "alive", "a2": "alive"}, 30,
                 "%s to discover the other" % agent.name)
    assert statuses(other) == {"other": "alive"}


@musubi_only
@pytest.mark.skipif(not multicast_loops_back(), reason="multicast does not loop back here")
def test_discover_with_iface_uses_that_interface_only(agents):
    # Serf's mDNS client fails on lo (its IPv6 query is unroutable there); musubi's does not.
    cluster = "t" + uuid.uuid4().hex[:8]
    a1 = agents("a1", args=["-discover", cluster, "-iface", "lo"])
    a2 = agents("a2", args=["-discover", cluster, "-iface", "lo"])
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent) == {"a1": "alive", "a2": "alive"}, 30,
                 "%s to discover the other on lo" % agent.name)


class NamespacedAgent(Agent):
    """An agent inside network namespace i of a netns.Network, on its bridge address."""

    def __init__(self, workdir, net, i, args=()):
        self.ip = net.ip(i)
        super().__init__(workdir, "n%d" % i, args=args)
        self.gossip_port, self.rpc_port = 7946, 7373
        prog = self.argv[:2]
        self.argv = (["ip", "netns", "exec", net.ns(i)] + prog
                     + ["-node", self.name, "-bind", self.gossip_addr,
                        "-rpc-addr", self.rpc_addr] + list(args))

    @property
    def gossip_addr(self):
        return "%s:%d" % (self.ip, self.gossip_port)

    @property
    def rpc_addr(self):
        return "%s:%d" % (self.ip, self.rpc_port)


def ipv6_link_local_ready(namespace):
    out = subprocess.run(["ip", "-n", namespace, "-6", "addr", "show", "dev", "eth0"],
                         capture_output=True, text=True).stdout
    return "scope link" in out and "tentative" not in out


def test_discovery_across_a_bridge_between_namespaces(tmp_path):
    """Each agent in its own namespace, joined only by a bridge: mDNS crosses a real link,
    not loopback."""
    import netns
    reason = netns.why_unavailable()
    if reason:
        pytest.skip(reason)
    net = netns.Network(2).build()
    started = []
    try:
        cluster = "t" + uuid.uuid4().hex[:8]
        for i in (1, 2):
            # Like a LAN host: a route for multicast (usually its default route) and an
            # IPv6 link-local address. Serf's mDNS client sends by the routing table, and
            # a poll fails outright if its IPv6 query cannot be sent.
            netns.sh("ip", "-n", net.ns(i), "route", "add", "224.0.0.0/4", "dev", "eth0")
            wait_for(lambda: ipv6_link_local_ready(net.ns(i)), 15, "IPv6 link-local on eth0")
            started.append(NamespacedAgent(str(tmp_path), net, i,
                                           args=["-discover", cluster]).start())
        everyone = {"n1": "alive", "n2": "alive"}
        for agent in started:
            wait_for(lambda: statuses(agent) == everyone, 30,
                     "%s to discover the other across the bridge" % agent.name)
        assert started[0].members()["n2"]["addr"] == started[1].gossip_addr
    except Exception:
        for agent in started:
            print("\n--- log of agent %s ---\n%s" % (agent.name, agent.log()))
        raise
    finally:
        for agent in started:
            agent.kill()
        net.destroy()
