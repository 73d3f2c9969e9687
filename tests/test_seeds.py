"""The seed transcripts (shared/seeds/000_*, 002_*) replayed against the target.

The seeds were written against etcd 0.2/0.3; musubi answers with etcd 3.4's shapes
(`prevNode` instead of the 0.2 `prevValue` field, message "Key not found"), so the checks
are on the shapes and on index arithmetic relative to the first write, not on the
0.2-era bytes. Command lines are the seeds' own: `musubi serve -data-dir D -name N -addr
H:P [-peer-addr H:P]` (with MUSUBI_TEST_TARGET=etcd, etcd 3.4's flags instead: 3.4 has
no 0.x flags)."""

import json
import os
import subprocess

import pytest

from harness import ETCDCTL_BIN, free_port, musubi_bin, raw_request, target_kind, wait_for


def curl(*args):
    p = subprocess.run(["curl", "-s", "-L"] + list(args), capture_output=True, timeout=30)
    assert p.returncode == 0, "curl %s failed: %s" % (args, p.stderr)
    return p.stdout


def curl_json(*args):
    out = curl(*args)
    assert out.endswith(b"\n"), out
    return json.loads(out)


@pytest.fixture
def seed002_server(fleet):
    """Seed 002: ./etcd -data-dir /tmp/etcd1.data -name machine1 -addr 0.0.0.0:4001 &"""
    port = free_port()
    if target_kind() == "etcd":
        s = fleet.target(name="machine1", client_port=port)
    else:
        # exactly the seed's flags (no -peer-addr), on a free port
        s = fleet.target(name="machine1", client_port=port, style="legacy")
        s.argv = lambda: [__import__("harness").musubi_bin(), "serve", "-data-dir", s.data_dir,
                          "-name", "machine1", "-addr", "127.0.0.1:%d" % port]
    return s.start()


def test_seed002_single_node_transcript(seed002_server):
    url = seed002_server.url + "/v2/keys/key1"
    r = curl_json(url, "-X", "PUT", "-d", "value=value1")
    assert r["action"] == "set" and list(r) == ["action", "node"], r
    n = r["node"]
    assert list(n) == ["key", "value", "modifiedIndex", "createdIndex"], n
    assert n["key"] == "/key1" and n["value"] == "value1" and n["modifiedIndex"] == n["createdIndex"]
    i = n["modifiedIndex"]

    assert curl_json(url, "-X", "GET") == {"action": "get", "node": {
        "key": "/key1", "value": "value1", "modifiedIndex": i, "createdIndex": i}}

    r = curl_json(url, "-X", "PUT", "-d", "value=new value")
    assert r == {"action": "set",
                 "node": {"key": "/key1", "value": "new value", "modifiedIndex": i + 1, "createdIndex": i + 1},
                 "prevNode": {"key": "/key1", "value": "value1", "modifiedIndex": i, "createdIndex": i}}, r

    assert curl_json(url, "-X", "GET") == {"action": "get", "node": {
        "key": "/key1", "value": "new value", "modifiedIndex": i + 1, "createdIndex": i + 1}}

    r = curl_json(url, "-X", "DELETE")
    assert r == {"action": "delete",
                 "node": {"key": "/key1", "modifiedIndex": i + 2, "createdIndex": i + 1},
                 "prevNode": {"key": "/key1", "value": "new value", "modifiedIndex": i + 1,
                              "createdIndex": i + 1}}, r
    raw = curl(url, "-X", "GET")
    assert raw == ('{"errorCode":100,"message":"Key not found","cause":"/key1","index":%d}\n' % (i + 2)).encode()

    # seed 002 also stopped and restarted nodes on the same data dir: the state survives
    seed002_server.stop()
    seed002_server.start()
    # (etcd 3.4 spends one index on republishing its member attributes at restart)
    r = curl_json(url, "-X", "GET")
    assert r["errorCode"] == 100 and r["cause"] == "/key1" and r["index"] >= i + 2, r
    r = curl_json(seed002_server.url + "/v2/keys/xyz", "-X", "PUT", "-d", "value=ABC")
    assert r["action"] == "set" and r["node"]["modifiedIndex"] > i + 2, r
    assert curl_json(seed002_server.url + "/v2/keys/xyz")["node"]["value"] == "ABC"


def test_seed002_data_dir_keeps_name(fleet):
    """Seed 002's pitfall: a data dir silently kept an old -name. musubi refuses and says why."""
    if target_kind() == "etcd":
        pytest.skip("etcd 3.4 has this pitfall; the test is for musubi")
    s = fleet.target(name="machine1", style="legacy").start()
    s.stop()
    s2 = fleet.target(name="machine2", style="legacy", data_dir=s.data_dir)
    with pytest.raises(RuntimeError) as e:
        s2.start(timeout=15)
    msg = s2.log_tail()
    assert "machine1" in msg and "machine2" in msg, "the refusal must name both names:\n" + msg
    assert not s2.alive()
    del e


@pytest.fixture
def seed000_server(fleet):
    """Seed 000: etcd -peer-addr 127.0.0.1:7001 -addr 127.0.0.1:4001 -data-dir /opt/etcd -name machine1"""
    return fleet.target(name="machine1", style="legacy").start()


def etcdctl(server, *args):
    env = dict(os.environ, ETCDCTL_API="2")
    p = subprocess.run([ETCDCTL_BIN, "--endpoints", server.url] + list(args),
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 0, "etcdctl %s: %s %s" % (args, p.stdout, p.stderr)
    return p.stdout


def render_tree(node):
    """Seed 000's serf-etcdconf.pl, in Python: directories become objects, directories whose
    children are in-order (numbered) keys become arrays."""
    if not node.get("dir"):
        return node.get("value")
    kids = node.get("nodes", [])
    names = [k["key"].rsplit("/", 1)[1] for k in kids]
    if kids and all(n.isdigit() for n in names):
        return [render_tree(k) for k in sorted(kids, key=lambda k: k["key"])]
    return {n: render_tree(k) for n, k in zip(names, kids)}


def test_seed000_session(seed000_server):
    s = seed000_server
    assert etcdctl(s, "set", "mykey", "this is etcd") == "this is etcd\n"
    assert etcdctl(s, "get", "mykey") == "this is etcd\n"
    r = curl_json(s.url + "/v2/keys/mykey")
    assert r["action"] == "get" and r["node"]["key"] == "/mykey" and r["node"]["value"] == "this is etcd"
    assert r["node"]["createdIndex"] == r["node"]["modifiedIndex"]

    # the /serf/manager tree, entered by hand as in the seed
    etcdctl(s, "mkdir", "/serf/manager")
    etcdctl(s, "set", "/serf/manager/node_name", "manager")
    etcdctl(s, "set", "/serf/manager/bind", "192.168.39.3")
    etcdctl(s, "mkdir", "/serf/manager/keys")
    for k, v in (("role", "develop"), ("network", "local"), ("test", "develop")):
        etcdctl(s, "set", "/serf/manager/keys/" + k, v)
    etcdctl(s, "mkdir", "/serf/manager/event_handlers")
    for v in ("test2", "test2", "test3", "aaa"):
        etcdctl(s, "mk", "--in-order", "/serf/manager/event_handlers", v)

    r = curl_json(s.url + "/v2/keys/serf/manager")
    assert r["action"] == "get" and r["node"]["key"] == "/serf/manager" and r["node"]["dir"] is True
    kids = sorted(r["node"]["nodes"], key=lambda n: n["key"])
    assert [(k["key"], k.get("value"), k.get("dir")) for k in kids] == [
        ("/serf/manager/bind", "192.168.39.3", None),
        ("/serf/manager/event_handlers", None, True),
        ("/serf/manager/keys", None, True),
        ("/serf/manager/node_name", "manager", None)], kids
    assert all("nodes" not in k for k in kids), "non-recursive GET must not list grandchildren"

    ls = etcdctl(s, "ls", "-r", "--sort", "/serf").splitlines()
    assert ls[:4] == ["/serf/manager", "/serf/manager/bind", "/serf/manager/event_handlers",
                      ls[3]] and len(ls) == 12, ls
    assert ls[-4:] == ["/serf/manager/keys/network", "/serf/manager/keys/role",
                       "/serf/manager/keys/test", "/serf/manager/node_name"], ls

    r = curl_json(s.url + "/v2/keys/serf/manager?recursive=true")
    assert render_tree(r["node"]) == {
        "bind": "192.168.39.3",
        "event_handlers": ["test2", "test2", "test3", "aaa"],
        "node_name": "manager",
        "keys": {"role": "develop", "network": "local", "test": "develop"},
    }


def test_seed000_dashboard(seed000_server):
    if target_kind() == "etcd":
        pytest.skip("etcd 3.4 has no dashboard; musubi serves one (PRODUCT.md)")
    st, h, body = raw_request(seed000_server.client_port, "GET", "/mod/dashboard/")
    assert st == 200 and h.get("content-type", "").startswith("text/html"), (st, h, body[:200])


def legacy_member(fleet, n, peers=(), extra=()):
    """Seed 002's machine<n>: `-data-dir /tmp/etcd<n>.data -name machine<n> -addr
    127.0.0.1:400<n> -peer-addr 127.0.0.1:700<n> [-peers ...]`, on the seed's own ports."""
    s = fleet.target(name="machine%d" % n, client_port=4000 + n, peer_port=7000 + n,
                     style="legacy", data_dir=os.path.join(fleet.workdir, "etcd%d.data" % n))
    s.extra_args = (["-peers", ",".join(peers)] if peers else []) + list(extra)
    return s


def get_key(port, key, applied=0):
    """A member's plain read, served from its own store (as etcd 0.x and 3.4 serve it), once
    the member has applied index `applied`: a follower applies a write a moment after the
    leader acknowledged it, and longer on a busy machine."""
    def answer():
        st, headers, body = raw_request(port, "GET", "/v2/keys/" + key)
        return (st, json.loads(body)) if int(headers.get("x-etcd-index", 0)) >= applied else None
    return wait_for("the member on port %d to apply index %d" % (port, applied), answer)


def voters(port):
    members = json.loads(raw_request(port, "GET", "/v2/members")[2])["members"]
    return [m for m in members if not m.get("isLearner")]


def test_seed002_cluster_transcript(fleet):
    """Seed 002's three-machine session, with its own command lines and ports: the cluster
    forms through -peers, every write is visible on every member, reads survive two
    members down, and machine1 rejoins with `-peers 127.0.0.1:7003 -force` (which failed
    for the author) and again with no -peers at all."""
    if target_kind() == "etcd":
        pytest.skip("etcd 3.4 has no 0.x -peers join; the transcript is for musubi")
    m1 = legacy_member(fleet, 1).start()
    m2 = legacy_member(fleet, 2, peers=["127.0.0.1:7001"]).start()
    m3 = legacy_member(fleet, 3, peers=["127.0.0.1:7001", "127.0.0.1:7002"]).start()
    members = curl_json("http://127.0.0.1:4001/v2/members")["members"]
    assert sorted(m["name"] for m in members) == ["machine1", "machine2", "machine3"], members
    wait_for("every member to be promoted to voter", lambda: len(voters(4001)) == 3)

    # data goes in on machine1 and is read everywhere
    r = curl_json("http://127.0.0.1:4001/v2/keys/key1", "-X", "PUT", "-d", "value=value1")
    i = r["node"]["modifiedIndex"]
    for port in (4001, 4002, 4003):
        st, got = get_key(port, "key1", i)
        assert st == 200 and got["node"]["value"] == "value1", (port, got)
    # updated from machine2, deleted from machine3
    curl_json("http://127.0.0.1:4002/v2/keys/key1", "-X", "PUT", "-d", "value=value2")
    for port in (4001, 4002, 4003):
        assert get_key(port, "key1", i + 1)[1]["node"]["value"] == "value2"
    curl_json("http://127.0.0.1:4003/v2/keys/key1", "-X", "DELETE")
    for port in (4003, 4002, 4001):
        st, got = get_key(port, "key1", i + 2)
        assert st == 404 and got["errorCode"] == 100 and got["index"] == i + 2, (port, got)

    # xyz written, then machine1 and machine2 go down: machine3 still answers reads
    xyz = curl_json("http://127.0.0.1:4001/v2/keys/xyz", "-X", "PUT", "-d", "value=ABC")["node"]["modifiedIndex"]
    m1.stop()
    with pytest.raises(OSError):
        raw_request(4001, "GET", "/v2/keys/xyz", timeout=2)
    for port in (4002, 4003):
        assert get_key(port, "xyz", xyz)[1]["node"]["value"] == "ABC"
    m2.stop()
    assert get_key(4003, "xyz", xyz)[1]["node"]["value"] == "ABC"

    # machine1 rejoins through machine3, as the author tried; the two form a quorum again
    m1.extra_args = ["-peers", "127.0.0.1:7003", "-force"]
    m1.start()
    assert get_key(4001, "xyz", xyz)[1]["node"]["value"] == "ABC"
    r = curl_json("http://127.0.0.1:4003/v2/keys/after", "-X", "PUT", "-d", "value=rejoined")
    assert r["action"] == "set", r
    wait_for("machine1 to see the write made on machine3",
             lambda: get_key(4001, "after")[0] == 200)

    # machine2 comes back with no -peers at all and catches up
    m2.extra_args = []
    m2.start()
    wait_for("machine2 to catch up", lambda: get_key(4002, "after")[0] == 200)
    assert get_key(4002, "after")[1]["node"]["value"] == "rejoined"

    # and machine1 restarted with no -peers works too
    m1.extra_args = []
    m1.restart()
    assert get_key(4001, "after")[1]["node"]["value"] == "rejoined"
    r = curl_json("http://127.0.0.1:4001/v2/keys/last", "-X", "PUT", "-d", "value=1")
    assert r["action"] == "set", r
    members = curl_json("http://127.0.0.1:4003/v2/members")["members"]
    assert len(members) == 3, members


def test_seed002_wildcard_addresses_are_advertised_reachably(fleet):
    """Seed 002's first pitfall: machine1 listened on 0.0.0.0 but told the cluster an
    address others could not use, so machine2 "cannot join to cluster via given peers".
    musubi advertises this machine's routable address for a wildcard listen address."""
    if target_kind() == "etcd":
        pytest.skip("etcd 3.4 has no 0.x flags")
    client, peer = free_port(), free_port()
    m1 = fleet.target(name="machine1", client_port=client, peer_port=peer, style="legacy")
    m1.argv = lambda: [musubi_bin(), "serve", "-data-dir", m1.data_dir, "-name", "machine1",
                       "-addr", "0.0.0.0:%d" % client, "-peer-addr", "0.0.0.0:%d" % peer]
    m1.start()
    me = json.loads(raw_request(client, "GET", "/v2/members")[2])["members"][0]
    advertised = me["peerURLs"][0]
    assert "0.0.0.0" not in advertised and advertised.endswith(":%d" % peer), me
    assert "0.0.0.0" not in me["clientURLs"][0], me
    host = advertised.split("://")[1]
    m2 = fleet.target(name="machine2", style="legacy", extra_args=["-peers", host])
    m2.start()
    wait_for("machine2 to vote", lambda: len(voters(client)) == 2)
    raw_request(client, "PUT", "/v2/keys/k", body="value=v")
    wait_for("machine2 to see the write", lambda: get_key(m2.client_port, "k")[0] == 200)
