"""`musubi agent -config-store PREFIX`: agents configured and tagged from the store, seed
000's wish (docs/conf.md, "The agent from the store"). Real processes: a store (musubi, or
etcd 3.4 with --enable-v2 under MUSUBI_TEST_TARGET=etcd), `musubi agent`s reading `/serf/web`,
the keys written with `musubi kv`, and what the agents do checked with Debian's `serf` CLI.

Environment: see tests/harness.py and tests/agents.py.
"""

import json
import os
import subprocess
import time

import pytest

import harness
from agents import AGENT_TARGET, SERF_BIN, agents, serf, statuses, wait_for  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not os.path.exists(SERF_BIN),
                       reason="Debian's serf is not installed (tests/run-all.sh installs it)"),
    pytest.mark.skipif(AGENT_TARGET == "serf", reason="-config-store is musubi's"),
]

PREFIX = "/serf/web"
# The bound: a change in the store is live on every agent within 2 s.
LIVE_BOUND = 2.0


def kv(store, *args):
    """`musubi kv` (etcdctl v2's commands) against the store; the completed process."""
    out = subprocess.run([harness.musubi_bin(), "kv", "--endpoints", store.url, "--no-sync",
                          *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def store_args(store, *extra):
    return ["-store-endpoints", store.url, "-config-store", PREFIX, *extra]


def info(agent):
    out = serf("info", agent, "-format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def tags_everywhere(agents_, name=None):
    """{(observer, member): tags} as each agent's `serf members -format json` shows them."""
    return {(a.name, m): member["tags"]
            for a in agents_ for m, member in a.members().items() if name in (None, m)}


def views(agents_):
    """What each agent's `serf members` says of each member: status and tags."""
    return lambda: {a.name: {m: (member["status"], member["tags"])
                             for m, member in a.members().items()} for a in agents_}


def within_live_bound(predicate, what, shown=None):
    """Waits for `predicate` and returns how long it took; fails past twice the bound (the
    caller asserts the bound itself, so a miss reports the time it took), showing `shown()`
    (say, what each agent sees) if it never holds."""
    start = time.time()
    try:
        wait_for(predicate, 2 * LIVE_BOUND + 5, what)
    except AssertionError as e:
        raise AssertionError("%s; last seen: %r" % (e, shown() if shown else None)) from None
    return time.time() - start


@pytest.fixture
def store(target):
    """The store: musubi, or etcd 3.4 with --enable-v2 (MUSUBI_TEST_TARGET=etcd)."""
    kv(target, "set", PREFIX + "/tags/role", "web")
    kv(target, "set", PREFIX + "/tags/dc", "east")
    kv(target, "set", PREFIX + "/log_level", "info")
    return target


@pytest.fixture
def web_trio(store, agents):
    a1 = agents("a1", args=store_args(store))
    a2 = agents("a2", join=[a1.gossip_addr], args=store_args(store))
    a3 = agents("a3", join=[a1.gossip_addr], args=store_args(store))
    trio = (a1, a2, a3)
    everyone = {"a1": "alive", "a2": "alive", "a3": "alive"}
    for agent in trio:
        wait_for(lambda: statuses(agent) == everyone, 15, "%s to see all three" % agent.name)
    return trio


def test_the_role_tree_configures_three_agents_and_a_tag_change_is_live_within_2s(store,
                                                                                   web_trio):
    seen = tags_everywhere(web_trio)
    assert len(seen) == 9 and all(t == {"role": "web", "dc": "east"} for t in seen.values()), seen
    kv(store, "set", PREFIX + "/tags/role", "db")
    took = within_live_bound(
        lambda: all(t["role"] == "db" for t in tags_everywhere(web_trio).values()),
        "role=db on every member as every agent sees it", views(web_trio))
    assert took < LIVE_BOUND, "the tag took %.2fs" % took
    for agent in web_trio:
        section = info(agent)["config_store"]
        assert section["source"] == "store" and section["error"] == "", section
        assert section["prefixes"] == PREFIX and section["pending_restart"] == "", section


def test_a_handler_written_in_the_store_is_live_within_2s_and_runs(store, web_trio, tmp_path):
    script = tmp_path / "on-deploy.sh"
    script.write_text('#!/bin/sh\necho "$SERF_USER_EVENT $(cat)" >> "%s/$SERF_SELF_NAME"\n'
                      % tmp_path)
    script.chmod(0o755)
    # An in-order key, as seed 000's author kept his handlers.
    kv(store, "mk", "--in-order", PREFIX + "/event_handlers", "user:deploy=%s" % script)

    def handlers_everywhere():
        return all(str(script) in info(a)["event_handlers"].values() for a in web_trio)

    took = within_live_bound(handlers_everywhere, "the handler in every agent's serf info")
    assert took < LIVE_BOUND, "the handler took %.2fs" % took
    out = serf("event", web_trio[0], "deploy", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    for agent in web_trio:
        ran = tmp_path / agent.name
        wait_for(lambda: ran.exists() and ran.read_text() == "deploy v1\n", 10,
                 "the handler to run on %s" % agent.name)


def test_a_nodes_own_tags_live_in_the_store_and_survive_its_restart(store, web_trio):
    a1, a2, _ = web_trio
    out = subprocess.run([harness.musubi_bin(), "tags", "-rpc-addr=" + a2.rpc_addr,
                          "-set", "hostid=10084", "-set", "role=cache"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert kv(store, "get", "/serf/nodes/a2/tags/hostid").stdout == "10084\n"
    assert kv(store, "get", "/serf/nodes/a2/tags/role").stdout == "cache\n"
    wait_for(lambda: a1.members()["a2"]["tags"].get("hostid") == "10084", 10, "a1 to see hostid")
    # A node's key written by an operator (the node may be down) is live too, over the role's.
    kv(store, "set", "/serf/nodes/a1/tags/rack", "r7")
    took = within_live_bound(lambda: a2.members()["a1"]["tags"].get("rack") == "r7",
                             "a1's rack tag seen by a2")
    assert took < LIVE_BOUND, "the node's tag took %.2fs" % took
    a2.kill()
    wait_for(lambda: statuses(a1).get("a2") == "failed", 30, "a2 to fail")
    a2.start()
    want = {"role": "cache", "dc": "east", "hostid": "10084"}
    assert a2.members()["a2"]["tags"] == want
    wait_for(lambda: statuses(a1).get("a2") == "alive", 30, "a2 to come back")
    wait_for(lambda: a1.members()["a2"]["tags"] == want, 10, "a1 to see a2's tags again")
    # -delete removes the node's key; the role's value shows through again.
    out = subprocess.run([harness.musubi_bin(), "tags", "-rpc-addr=" + a2.rpc_addr,
                          "-delete", "role"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: a2.members()["a2"]["tags"].get("role") == "web", 10,
             "the role's tag back on a2")
    assert "cache" not in kv(store, "ls", "--recursive", "/serf/nodes/a2").stdout


def test_an_invalid_value_changes_nothing_until_it_is_fixed(store, web_trio):
    a1 = web_trio[0]
    kv(store, "set", PREFIX + "/retry_max_attempts", "many")
    kv(store, "set", PREFIX + "/tags/role", "db")
    wait_for(lambda: "retry_max_attempts" in info(a1)["config_store"]["error"], 10,
             "the refusal in serf info")
    time.sleep(LIVE_BOUND)
    # Refused whole: the valid tag written with it is not applied either.
    seen = tags_everywhere(web_trio)
    assert all(t["role"] == "web" for t in seen.values()), seen
    for agent in web_trio:
        assert "configuration refused, nothing changed" in agent.log()
    kv(store, "rm", PREFIX + "/retry_max_attempts")
    within_live_bound(lambda: all(t["role"] == "db" for t in tags_everywhere(web_trio).values()),
                      "role=db once the tree is valid again", views(web_trio))
    assert info(a1)["config_store"]["error"] == ""
    # A setting only a restart applies is listed, and the live ones go on applying.
    kv(store, "set", PREFIX + "/profile", "wan")
    kv(store, "set", PREFIX + "/log_level", "debug")
    wait_for(lambda: info(a1)["config_store"]["pending_restart"] == "profile", 10,
             "profile pending a restart")
    wait_for(lambda: "reload: log level info -> debug" in a1.log(), 10, "the new log level")


def test_files_then_store_then_flags(store, agents, tmp_path):
    config = tmp_path / "base.json"
    config.write_text(json.dumps({"tags": {"role": "file", "os": "linux"},
                                  "log_level": "warn"}))
    kv(store, "set", "/serf/nodes/p1/tags/dc", "west")
    agent = agents("p1", tags=["team=ops"],
                   args=["-config-file", str(config)] + store_args(store))
    assert agent.members()["p1"]["tags"] == {"role": "web", "os": "linux", "dc": "west",
                                             "team": "ops"}
    # A flag wins over the store: the store's change of it is no change.
    kv(store, "set", "/serf/nodes/p1/tags/team", "dev")
    kv(store, "set", PREFIX + "/tags/os", "bsd")
    wait_for(lambda: agent.members()["p1"]["tags"].get("os") == "bsd", 10, "os=bsd")
    assert agent.members()["p1"]["tags"]["team"] == "ops"


def test_with_the_store_down_at_start_the_cache_is_used(store, agents, tmp_path):
    cache = tmp_path / "p1.store.json"
    agent = agents("p1", args=store_args(store, "-config-store-cache", str(cache)))
    kv(store, "set", PREFIX + "/tags/role", "db")
    wait_for(lambda: agent.members()["p1"]["tags"]["role"] == "db", 10, "role=db")
    assert oct(os.stat(cache).st_mode & 0o777) == "0o600"
    agent.kill()
    store.stop()
    # Without a cache an agent cannot start: its configuration is in the store.
    out = subprocess.run([harness.musubi_bin(), "agent", "-node", "x", "-bind",
                          "127.0.0.1:%d" % harness.free_port(),
                          "-rpc-addr", "127.0.0.1:%d" % harness.free_port()]
                         + store_args(store), capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "no -config-store-cache to start from" in out.stdout + out.stderr
    agent.start()
    assert agent.members()["p1"]["tags"] == {"role": "db", "dc": "east"}
    section = info(agent)["config_store"]
    assert section["source"] == "cache" and "cannot be read" in section["error"], section
    assert "starting from the cache" in agent.log()
    # The store back: the agent follows it again.
    store.start()
    kv(store, "set", PREFIX + "/tags/role", "db3")
    wait_for(lambda: agent.members()["p1"]["tags"]["role"] == "db3", 15,
             "role=db3 once the store is back")
    assert info(agent)["config_store"]["source"] == "store"
