"""`musubi members`, `musubi query`, ...: Serf's CLI under musubi's name.

Differential: each test runs Debian's `serf X ...` and `musubi X ...` against the same agent
and compares stdout and the exit code. Commands musubi's agent serves already (members,
join, leave, force-leave, event, tags) run against the `agents` fixture (musubi's agent, or
Serf's with MUSUBI_AGENT_TARGET=serf); the others (query, keys, info, monitor, rtt,
reachability) always run against a real `serf agent`, so the client is proven before
musubi's agent serves them.

Where serf's output is not deterministic (Go map order of tags and keys, the member order,
timings, interleaving of acks and responses), the comparison normalizes just that.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

import harness
from agents import SERF_BIN, Agent, agents, serf, statuses, wait_for  # noqa: F401

pytestmark = pytest.mark.skipif(not os.path.exists(SERF_BIN),
                                reason="Debian's serf is not installed (tests/run-all.sh installs it)")


class SerfAgent(Agent):
    """A real `serf agent`, whatever MUSUBI_AGENT_TARGET says."""

    def __init__(self, workdir, name, **kw):
        super().__init__(workdir, name, **kw)
        self.argv[:2] = [SERF_BIN, "agent"]


@pytest.fixture
def serf_agents(tmp_path, request):
    started = []

    def start(name, wait=True, **kw):
        agent = SerfAgent(str(tmp_path), name, **kw).start(wait=wait)
        started.append(agent)
        return agent

    yield start
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    for agent in started:
        agent.kill()
        if failed:
            print("\n--- log of serf agent %s ---\n%s" % (agent.name, agent.log()))


@pytest.fixture
def serf_pair(serf_agents):
    """Two real serf agents; s1 tagged, both answering query `greet` from a handler."""
    s1 = serf_agents("s1", tags=["role=web", "dc=east"],
                     args=["-event-handler", "query:greet=echo hello from s1"])
    s2 = serf_agents("s2", join=[s1.gossip_addr],
                     args=["-event-handler", "query:greet=printf 'two\\n\\n'"])
    wait_for(lambda: statuses(s1) == {"s1": "alive", "s2": "alive"}, 15, "s1 and s2 alive")
    wait_for(lambda: statuses(s2) == {"s1": "alive", "s2": "alive"}, 15, "s2 to see s1")
    # s2's coordinate reaches s1 with the first probe acks
    wait_for(lambda: run(SERF_BIN, "rtt", s1, "s2").returncode == 0, 15, "s2's coordinate")
    return s1, s2


def run(prog, command, agent, *args, env=None, timeout=30):
    argv = [prog, command] + (["-rpc-addr=" + agent.rpc_addr] if agent else []) + list(args)
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)


def musubi(command, agent, *args, **kw):
    return run(harness.musubi_bin(), command, agent, *args, **kw)


def both(command, agent, *args, **kw):
    return run(SERF_BIN, command, agent, *args, **kw), musubi(command, agent, *args, **kw)


def senderless(out):
    """Serf's agent sometimes streams an ack or response with no sender as a query hits its
    deadline; serf shows it, musubi skips it (docs/agent-cli.md). Such a run is redone."""
    return "from ''" in out.stdout or re.search(r'^\s*""(,|:|$)', out.stdout, re.M) is not None


def same(command, agent, *args, normalize=lambda text: text, **kw):
    """Run serf and musubi alike; assert equal (normalized) stdout and exit code."""
    for _ in range(3):
        theirs, ours = both(command, agent, *args, **kw)
        if not senderless(theirs):
            break
    assert (normalize(ours.stdout), ours.returncode) == (normalize(theirs.stdout), theirs.returncode), \
        "serf:\n%s%s\nmusubi:\n%s%s" % (theirs.stdout, theirs.stderr, ours.stdout, ours.stderr)
    return ours


def sorted_lines(text):
    return sorted(text.splitlines())


def tag_order_free(text):
    """Member rows with their comma-joined tags sorted (serf prints a Go map's order), in
    name order (a Serf agent lists members in a Go map's order too, and only the last row
    loses the padding of an empty tags column)."""
    def sort_tags(match):
        return ",".join(sorted(match.group(0).split(",")))
    text = re.sub(r"\b[\w.-]+=[^\s,]*(,[\w.-]+=[^\s,]*)+", sort_tags, text)
    return sorted(line.rstrip() for line in text.splitlines())


def members_json(text):
    doc = json.loads(text)
    if doc["members"] is not None:
        doc["members"].sort(key=lambda m: m["name"])
    return doc


# --- the commands musubi's agent serves: against the `agents` fixture ---------------------

@pytest.fixture
def pair(agents):
    a1 = agents("a1", tags=["role=web", "dc=east"])
    a2 = agents("a2", join=[a1.gossip_addr])
    for agent in (a1, a2):
        wait_for(lambda: statuses(agent) == {"a1": "alive", "a2": "alive"}, 15,
                 "%s to see both alive" % agent.name)
    return a1, a2


def test_members_prints_what_serf_prints(pair):
    a1, a2 = pair
    same("members", a1, normalize=tag_order_free)
    same("members", a1, "-detailed", normalize=tag_order_free)
    same("members", a2, "-format", "json", normalize=members_json)
    same("members", a2, "-tag", "role=w.*", "-format=json", normalize=members_json)
    same("members", a1, "--name=a[12]", "-status", "alive", normalize=tag_order_free)
    same("members", a1, "-role", "web", normalize=tag_order_free)
    # no match: an empty line, and "members": null in JSON
    out = same("members", a1, "-name", "a")
    assert out.stdout == "\n"
    out = same("members", a1, "-name", "a", "-format", "json")
    assert json.loads(out.stdout) == {"members": None}
    # positional arguments are ignored, as Go's flag package leaves them
    same("members", a1, "extra", normalize=tag_order_free)


def test_members_errors_are_serfs(pair):
    a1, _ = pair
    out = same("members", a1, "-tag", "role")
    assert (out.stdout, out.returncode) == ("Error: Invalid tag: 'role'\n", 1)
    # a bad regexp: the agent hangs up without a reply
    out = same("members", a1, "-name", "(")
    assert (out.stdout, out.returncode) == ("Error retrieving members: client closed\n", 1)
    out = same("members", a1, "-format", "xml")
    assert out.stdout == 'Encoding error: Invalid output format "xml"\n'


def test_join_event_tags_and_force_leave_print_what_serf_prints(pair, agents):
    a1, a2 = pair
    a3 = agents("a3")
    out = same("join", a3, a1.gossip_addr)
    assert out.stdout == "Successfully joined cluster by contacting 1 nodes.\n"
    same("join", a3, "-replay", a2.gossip_addr)
    out = same("event", a1, "deploy", "v1")
    assert out.stdout == "Event 'deploy' dispatched! Coalescing enabled: true\n"
    same("event", a1, "-coalesce=false", "deploy")
    out = same("tags", a2, "-set", "zone=b", "-set", "rack=1")
    assert out.stdout == "Successfully updated agent tags\n"
    wait_for(lambda: a1.members()["a2"]["tags"] == {"zone": "b", "rack": "1"}, 15, "a2's tags")
    same("tags", a2, "-delete", "rack", "-delete", "nosuch")
    wait_for(lambda: a1.members()["a2"]["tags"] == {"zone": "b"}, 15, "rack deleted")
    out = same("tags", a2, "-set", "novalue")
    assert (out.stdout, out.returncode) == ("Error: Invalid tag: 'novalue'\n", 1)
    a3.kill()
    wait_for(lambda: statuses(a1).get("a3") == "failed", 30, "a3 failed")
    out = same("force-leave", a1, "a3")
    assert out.stdout == ""  # serf says nothing on success
    wait_for(lambda: statuses(a1).get("a3") == "left", 15, "a3 left")


def test_join_failure_and_usage_errors_exit_1(pair):
    a1, _ = pair
    port = harness.free_port()
    theirs, ours = both("join", a1, "127.0.0.1:%d" % port)
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert ours.stdout.startswith("Error joining the cluster: ")
    assert "127.0.0.1:%d" % port in ours.stdout
    # Missing or extra arguments: serf's one-line reason, a blank line, the usage; exit 1.
    for command, args, reason in [
            ("join", [], "At least one address to join must be specified."),
            ("force-leave", [], "A node name must be specified to force leave."),
            ("force-leave", ["a", "b"], "A node name must be specified to force leave."),
            ("event", [], "An event name must be specified."),
            ("event", ["a", "b", "c"],
             "Too many command line arguments. Only a name and payload must be specified."),
            ("query", [], "A query name must be specified."),
            ("rtt", [], "One or two node names must be specified")]:
        theirs, ours = both(command, a1, *args)
        assert (ours.returncode, theirs.returncode) == (1, 1), command
        assert ours.stdout.split("\n")[:2] == theirs.stdout.split("\n")[:2] == [reason, ""]
        assert ours.stdout.split("\n")[2].startswith("Usage: musubi %s " % command)


def test_leave_prints_what_serf_prints(pair):
    a1, a2 = pair
    out = musubi("leave", a2)
    assert (out.stdout, out.returncode) == ("Graceful leave complete\n", 0)
    assert a2.wait_exit() == 0
    wait_for(lambda: statuses(a1).get("a2") == "left", 15, "a1 to see a2 left")


def test_bad_flags_and_help(pair):
    a1, _ = pair
    for args, message in [(["-bogus"], "flag provided but not defined: -bogus"),
                          (["-name"], "flag needs an argument: -name"),
                          (["-detailed=maybe"], 'invalid boolean value "maybe" for -detailed: parse error')]:
        theirs, ours = both("members", a1, *args)
        assert (ours.returncode, theirs.returncode) == (1, 1)
        assert ours.stderr == theirs.stderr == message + "\n"
        assert ours.stdout.startswith("Usage: musubi members [options]")
    theirs, ours = both("query", a1, "-timeout", "soon", "q")
    assert ours.stderr == theirs.stderr == 'invalid value "soon" for flag -timeout: parse error\n'
    # help: usage on stderr, exit 0, even after positional arguments
    for args in (["-h"], ["-help"], ["--help"], ["x", "-h"]):
        out = musubi("query", a1, *args)
        assert (out.returncode, out.stdout) == (0, "")
        assert out.stderr.startswith("Usage: musubi query [options] name [payload]")


def test_agent_not_running(tmp_path):
    port = harness.free_port()
    for command, args in [("members", []), ("join", ["127.0.0.1:1"]), ("leave", []),
                          ("force-leave", ["x"]), ("event", ["e"]), ("query", ["q"]),
                          ("tags", ["-set", "a=b"]), ("keys", ["-list"]), ("info", []),
                          ("monitor", []), ("rtt", ["x"]), ("reachability", [])]:
        for fmt in ([], ["-format", "json"]) if command in ("members", "query", "info") else ([],):
            env = {"SERF_RPC_ADDR": "127.0.0.1:%d" % port}
            theirs = run(SERF_BIN, command, None, *(fmt + args), env=env)
            ours = run(harness.musubi_bin(), command, None, *(fmt + args), env=env)
            assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode) == (
                "Error connecting to Serf agent: dial tcp 127.0.0.1:%d: connect: connection refused\n"
                % port, 1), command
    out = run(harness.musubi_bin(), "members", None, "-rpc-addr", "127.0.0.1")
    assert out.stdout == ("Error connecting to Serf agent: dial tcp: address 127.0.0.1: "
                          "missing port in address\n")


def test_format_json_on_every_command(pair, serf_pair):
    a1, a2 = pair
    s1, s2 = serf_pair

    def doc(command, agent, *args, code=0):
        out = musubi(command, agent, "-format", "json", *args)
        assert out.returncode == code, out.stdout + out.stderr
        return json.loads(out.stdout)

    assert doc("join", a1, a2.gossip_addr) == {"num_joined": 1}
    assert doc("event", a1, "deploy", "x") == {"name": "deploy", "coalesce": True}
    assert doc("tags", a1, "-set", "k=v", "-delete", "gone") == {"set": {"k": "v"}, "deleted": ["gone"]}
    assert doc("force-leave", a1, "nosuch") == {"node": "nosuch", "prune": False}
    assert set(doc("members", a1)["members"][0]) == {"name", "addr", "port", "tags", "status", "protocol"}
    key = doc("keygen", None)["key"]
    assert len(key) == 44
    listing = doc("keys", s1, "-list", code=1)  # no encryption: every node fails
    assert listing["num_errors"] == 2 and set(listing["messages"]) == {"s1", "s2"}
    assert listing["error"] == "2/2 nodes reported failure"
    assert doc("info", s1)["agent"] == {"name": "s1"}
    rtt = doc("rtt", s1, "s2")
    assert rtt["node1"] == "s2" and rtt["node2"] == "s1" and rtt["rtt_ms"] > 0
    reach = doc("reachability", s1)
    assert (reach["ok"], reach["members"], reach["live_members"]) == (True, 2, 2)
    assert sorted(reach["acks"]) == ["s1", "s2"] and reach["missing"] == []
    assert doc("query", s1, "greet")["Responses"] == {"s1": "hello from s1\n", "s2": "two\n\n"}
    assert doc("leave", a2) == {"left": True}
    # an unknown format is refused, before anything is done
    out = musubi("event", a1, "-format", "yaml", "deploy")
    assert (out.stdout, out.returncode) == ("Invalid format: yaml\n", 1)


def test_rpc_auth_flag_and_environment(serf_agents, tmp_path):
    config = tmp_path / "auth.json"
    config.write_text('{"rpc_auth": "sekret"}')
    agent = serf_agents("secure", wait=False, args=["-config-file", str(config)])
    wait_for(lambda: run(SERF_BIN, "members", agent, "-rpc-auth", "sekret").returncode == 0, 15,
             "the agent's RPC")
    out = same("members", agent)
    assert out.stdout == "Error retrieving members: Authentication required\n"
    out = same("members", agent, "-rpc-auth", "wrong")
    assert out.stdout == "Error connecting to Serf agent: Invalid authentication token\n"
    out = same("members", agent, "-rpc-auth=sekret")
    assert out.stdout.startswith("secure  ")
    same("members", agent, env={"SERF_RPC_AUTH": "sekret"})
    # the flag wins over the environment
    same("members", agent, "-rpc-auth", "wrong", env={"SERF_RPC_AUTH": "sekret"})


# --- commands musubi's agent does not serve yet: against a real serf agent ----------------

def query_text(text):
    """Query output with the ack and response lines sorted (they interleave by timing)."""
    lines = text.splitlines()
    return lines[:1] + sorted(lines[1:-2]) + lines[-2:]


def test_query_prints_what_serf_prints(serf_pair):
    s1, s2 = serf_pair
    # Timeouts leave room for a loaded machine: an answer that misses one tool's deadline
    # and not the other's would make the outputs differ for no fault of either.
    out = same("query", s1, "greet", normalize=query_text)
    # one trailing newline of a response is dropped; a second one shows
    assert "Response from 's1': hello from s1\n" in out.stdout
    assert "Response from 's2': two\n\n" in out.stdout
    assert out.stdout.endswith("Total Acks: 2\nTotal Responses: 2\n")
    same("query", s1, "-format", "json", "greet", normalize=lambda t: json.loads(t) | {
        "Acks": sorted(json.loads(t)["Acks"])})
    out = same("query", s1, "-no-ack", "-timeout", "3s", "greet", "payload", normalize=query_text)
    assert "Ack from" not in out.stdout and "Total Acks" not in out.stdout
    out = same("query", s1, "-node", "s2", "-timeout=3s", "-format=json", "greet")
    assert json.loads(out.stdout) == {"Acks": ["s2"], "Responses": {"s2": "two\n\n"}}
    out = same("query", s1, "-tag", "role=db", "-timeout", "3s", "-format", "json", "greet")
    assert json.loads(out.stdout) == {"Acks": None, "Responses": {}}
    same("query", s1, "-tag", "role=web", "-relay-factor", "2", "-timeout", "3s", "greet")


def test_query_errors_are_serfs(serf_pair):
    s1, _ = serf_pair
    out = same("query", s1, "_serf_secret")
    assert out.stdout == "Error sending query: Queries cannot contain the '_serf_' prefix\n"
    out = same("query", s1, "-relay-factor", "256", "q")
    assert (out.stdout, out.returncode) == ("Relay factor must be between 0 and 255\n", 1)
    out = same("query", s1, "-tag", "role", "q")
    assert out.stdout == "Error: Invalid tag: 'role'\n"
    out = same("query", s1, "-format", "xml", "q")
    assert (out.stdout, out.returncode) == ("Invalid format: xml\n", 1)


def interrupted(prog, agent, *args, after=1.5):
    proc = subprocess.Popen([prog, *args[:1], "-rpc-addr", agent.rpc_addr, *args[1:]],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    return out, proc.returncode


def test_an_interrupted_query_or_reachability_test_exits_1(serf_pair):
    s1, _ = serf_pair
    for args in (["query", "-timeout", "20s", "nohandler"],
                 ["query", "-format", "json", "-timeout", "20s", "nohandler"],
                 ["reachability"]):
        theirs = interrupted(SERF_BIN, s1, *args)
        ours = interrupted(harness.musubi_bin(), s1, *args)
        assert ours[1] == theirs[1] == 1, args
        assert sorted_lines(ours[0]) == sorted_lines(theirs[0]), args
    assert ours[0].endswith("Test interrupted\n")


def test_keys_print_what_serf_prints(serf_agents):
    key = musubi("keygen", None).stdout.strip()
    e1 = serf_agents("e1", args=["-encrypt", key])
    e2 = serf_agents("e2", join=[e1.gossip_addr], args=["-encrypt", key])
    wait_for(lambda: statuses(e1) == {"e1": "alive", "e2": "alive"}, 15, "encrypted pair")
    other = run(SERF_BIN, "keygen", None).stdout.strip()
    out = same("keys", e1, "-list")
    assert out.stdout.endswith("\n%s  [2/2]\n" % key)
    out = same("keys", e2, "-install", other)
    assert out.stdout == "==> Installing key on all members...\n==> Successfully installed key!\n"
    same("keys", e1, "-list", normalize=sorted_lines)
    same("keys", e1, "-use", other)
    # removing the primary key fails on every node: exit 1, one line per node
    out = same("keys", e1, "-remove", other, normalize=sorted_lines)
    assert out.returncode == 1
    assert "failed:  e1  Removing the primary key is not allowed" in out.stdout
    assert out.stdout.endswith("\nError removing key: 2/2 nodes reported failure\n")
    same("keys", e1, "-remove", key)
    same("keys", e2, "-install", "not base64")
    out = same("keys", e1, "-list", "-use", key)
    assert out.stdout == "Only one of -install, -use, -remove, or -list allowed\n"
    theirs, ours = both("keys", e1)
    assert (ours.returncode, theirs.returncode) == (1, 1)


def test_info_prints_what_serf_prints(serf_pair):
    s1, _ = serf_pair

    def stable(text):  # goroutine counts move between two calls
        return re.sub(r"goroutines( = |\": \")\d+", r"goroutines\1N", text)
    out = same("info", s1, normalize=stable)
    assert out.stdout.startswith("agent:\n\tname = s1\nevent_handlers:\n")
    same("info", s1, "-format", "json", normalize=stable)
    out = same("info", s1, "-format", "xml")
    assert out.stdout == 'Encoding error: Invalid output format "xml"\n'


def test_rtt_prints_what_serf_prints(serf_pair):
    s1, _ = serf_pair
    pattern = r"Estimated s2 <-> s1 rtt: \d+\.\d{3} ms\n"
    theirs, ours = both("rtt", s1, "s2")
    assert re.fullmatch(pattern, ours.stdout) and re.fullmatch(pattern, theirs.stdout)
    # coordinates settle between calls; the estimates agree to within a few milliseconds
    value = lambda out: float(out.stdout.split()[-2])  # noqa: E731
    assert abs(value(ours) - value(theirs)) < 5.0
    assert re.fullmatch(r"Estimated s1 <-> s2 rtt: \d+\.\d{3} ms\n", musubi("rtt", s1, "s1", "s2").stdout)
    out = same("rtt", s1, "nosuch")
    assert (out.stdout, out.returncode) == ('Could not find a coordinate for node "nosuch"\n', 1)
    same("rtt", s1, "s1", "nosuch")


def test_reachability_prints_what_serf_prints(serf_pair):
    s1, s2 = serf_pair
    out = same("reachability", s1)
    assert out.stdout == ("Total members: 2, live members: 2\nStarting reachability test...\n"
                          "Successfully contacted all live nodes\n")

    def untimed(text):
        return sorted_lines(re.sub(r"Query time: .*", "Query time", text))
    same("reachability", s1, "-verbose", normalize=untimed)
    # a member that is stopped still counts as alive but cannot ack: exit 1
    s2.proc.send_signal(signal.SIGSTOP)
    try:
        out = musubi("reachability", s1)
    finally:
        s2.proc.send_signal(signal.SIGCONT)
    assert out.returncode == 1, out.stdout
    assert "Received less acks than live nodes! Missing acks from:\n\ts2\n" in out.stdout


def event_blocks(text):
    """Each `Event Info:` block's field lines, sorted (serf prints a Go map's order)."""
    return [sorted(m.group(1).splitlines())
            for m in re.finditer(r"Event Info:\n((?:\t.*\n)+)", text)]


def test_monitor_prints_what_serf_prints_until_interrupted(serf_pair):
    s1, s2 = serf_pair
    procs = [subprocess.Popen([prog, "monitor", "-rpc-addr", s1.rpc_addr],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for prog in (SERF_BIN, harness.musubi_bin())]
    time.sleep(1.0)
    run(SERF_BIN, "event", s1, "hello", "world")
    run(SERF_BIN, "event", s1, "-coalesce=false", "bare")
    run(SERF_BIN, "tags", s2, "-set", "zone=a", "-set", "rack=1")
    run(SERF_BIN, "query", s1, "-timeout", "1s", "greet", "payload")
    time.sleep(2.0)
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    (theirs, _), (ours, _) = [p.communicate(timeout=10) for p in procs]
    assert procs[1].returncode == 0
    assert re.search(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[INFO\] agent: Serf agent starting$",
                     ours, re.M)
    # the same events, each block field for field (Go's %#v of the decoded record)
    assert len(event_blocks(ours)) >= 4
    assert event_blocks(ours) == event_blocks(theirs)
    assert 'Event Info:\n\tCoalesce: true\n\tEvent: "user"\n' in ours
    assert "\tPayload: []byte{0x77, 0x6f, 0x72, 0x6c, 0x64}" in ours
    assert '"Tags":map[interface {}]interface {}{"rack":"1", "zone":"a"}' in ours
    # the same log lines, but for the RPC connections' client ports
    def logs(text):
        return [line for line in text.splitlines()
                if re.match(r"\d{4}/", line) and "agent.ipc" not in line]
    assert logs(ours) == logs(theirs)
    # -log-level is the agent's to check
    out = same("monitor", s1, "-log-level", "bogus")
    assert out.stdout == "Error starting monitor: Unknown log level: BOGUS\n"


def test_monitor_exits_1_when_the_agent_goes_away(serf_agents):
    agent = serf_agents("lonely")
    procs = [subprocess.Popen([prog, "monitor", "-rpc-addr", agent.rpc_addr, "-log-level", "debug"],
                              stdout=subprocess.PIPE, text=True)
             for prog in (SERF_BIN, harness.musubi_bin())]
    time.sleep(1.0)
    assert run(SERF_BIN, "leave", agent).returncode == 0
    (theirs, _), (ours, _) = [p.communicate(timeout=15) for p in procs]
    ending = ("Remote side ended the monitor! This usually means that the\n"
              "remote side has exited or crashed.\n")
    assert ours.endswith(ending) and theirs.endswith(ending)
    assert [p.returncode for p in procs] == [1, 1]


def test_monitor_json_is_one_object_per_line(serf_pair):
    s1, _ = serf_pair
    proc = subprocess.Popen([harness.musubi_bin(), "monitor", "-format", "json", "-rpc-addr",
                             s1.rpc_addr], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    run(SERF_BIN, "event", s1, "hello", "world")
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    records = [json.loads(line) for line in out.splitlines()]
    assert any("Serf agent starting" in r.get("log", "") for r in records)
    assert {"event": {"Event": "user", "LTime": 1, "Name": "hello", "Payload": "world",
                      "Coalesce": True}} in records


def test_keygen_makes_keys_serf_accepts(serf_agents):
    out = musubi("keygen", None)
    assert out.returncode == 0 and re.fullmatch(r"[A-Za-z0-9+/]{43}=\n", out.stdout)
    assert musubi("keygen", None).stdout != out.stdout
    # serf agent takes it as its -encrypt key
    agent = serf_agents("keyed", args=["-encrypt", out.stdout.strip()])
    assert "keyed" in agent.members()
