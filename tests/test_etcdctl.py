"""Debian's etcdctl 3.4 in v2 mode (ETCDCTL_API=2) against the target.

Expected outputs were taken from etcdctl against etcd 3.4 itself (run this file with
MUSUBI_TEST_TARGET=etcd to re-prove them). `[N]` in error lines is the store index,
checked relative to the target's index at the start of the test."""

import json
import os
import re
import subprocess
import tempfile
import time

import pytest

from harness import ETCDCTL_BIN, raw_request


class Ctl:
    def __init__(self, server):
        self.server = server
        self.env = dict(os.environ, ETCDCTL_API="2")
        self.base = server.index()

    def argv(self, *args):
        return [ETCDCTL_BIN, "--endpoints", self.server.url] + list(args)

    def __call__(self, *args, rc=0):
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=30)
        assert p.returncode == rc, "etcdctl %s: exit %d (want %d)\nstdout: %r\nstderr: %r" % (
            " ".join(args), p.returncode, rc, p.stdout, p.stderr)
        return p.stdout, p.stderr

    def err(self, *args, code, cause, rel_index):
        out, err = self(*args, rc=4)
        want = "Error:  %d: %s [%d]\n" % (code, cause, self.base + rel_index)
        assert err == want, "etcdctl %s:\n got %r\nwant %r" % (" ".join(args), err, want)


@pytest.fixture
def ctl(target):
    return Ctl(target)


def test_set_get_mk_update_rm(ctl):
    assert ctl("set", "/foo", "bar")[0] == "bar\n"
    assert ctl("get", "/foo")[0] == "bar\n"
    ctl.err("mk", "/foo", "x", code=105, cause="Key already exists (/foo)", rel_index=1)
    assert ctl("mk", "/new", "v")[0] == "v\n"
    assert ctl("mkdir", "/dir") == ("", "")
    ctl.err("mkdir", "/dir", code=105, cause="Key already exists (/dir)", rel_index=3)
    assert ctl("ls", "--sort")[0] == "/dir\n/foo\n/new\n"
    assert ctl("ls", "-r", "--sort", "-p")[0] == "/dir/\n/foo\n/new\n"
    assert ctl("update", "/foo", "baz")[0] == "baz\n"
    ctl.err("update", "/missing", "x", code=100, cause="Key not found (/missing)", rel_index=4)
    ctl.err("set", "--swap-with-value", "wrong", "/foo", "n", code=101,
            cause="Compare failed ([wrong != baz])", rel_index=4)
    assert ctl("set", "--swap-with-value", "baz", "/foo", "n")[0] == "n\n"
    assert ctl("rm", "/foo")[0] == "PrevNode.Value: n\n"
    ctl.err("rm", "/dir", code=102, cause="Not a file (/dir)", rel_index=6)
    assert ctl("rm", "--dir", "/dir") == ("", "")
    ctl.err("get", "/foo", code=100, cause="Key not found (/foo)", rel_index=7)
    ctl.err("rmdir", "/nodir", code=100, cause="Key not found (/nodir)", rel_index=7)


def test_ttl_extended_and_json(ctl):
    assert ctl("set", "--ttl", "100", "/t", "v")[0] == "v\n"
    out, _ = ctl("-o", "extended", "get", "/t")
    i = ctl.base + 1
    m = re.fullmatch(r"Key: /t\nCreated-Index: %d\nModified-Index: %d\nTTL: (\d+)\nIndex: %d\n\nv\n" % (i, i, i), out)
    assert m and int(m.group(1)) in (99, 100), out
    out, _ = ctl("-o", "json", "get", "/t")
    j = json.loads(out)
    assert j["action"] == "get" and j["node"]["key"] == "/t" and j["node"]["value"] == "v", out
    assert j["node"]["modifiedIndex"] == i and j["node"]["ttl"] in (99, 100), out


def test_mk_in_order_and_ls_recursive(ctl):
    ctl("mk", "--in-order", "/queue", "job1")
    ctl("mk", "--in-order", "/queue", "job2")
    ctl("set", "/serf/manager/bind", "192.168.39.3")
    out, _ = ctl("ls", "--sort", "-r", "/")
    want = ["/queue", "/queue/%020d" % (ctl.base + 1), "/queue/%020d" % (ctl.base + 2),
            "/serf", "/serf/manager", "/serf/manager/bind"]
    assert out.splitlines() == want, out
    out, _ = ctl("ls", "--sort", "/queue")
    assert [ctl("get", k)[0] for k in out.split()] == ["job1\n", "job2\n"]


def test_setdir_updatedir_rmdir(ctl):
    assert ctl("setdir", "/sd") == ("", "")
    assert ctl("updatedir", "--ttl", "50", "/sd") == ("", "")
    ctl("get", "/sd", rc=1)   # etcdctl: "/sd: is a directory"
    st, _, body = raw_request(ctl.server.client_port, "GET", "/v2/keys/sd")
    out = body.decode()
    j = json.loads(out)
    assert j["node"]["dir"] is True and j["node"]["ttl"] in (49, 50), out
    assert ctl("rmdir", "/sd") == ("", "")
    ctl.err("get", "/sd", code=100, cause="Key not found (/sd)", rel_index=3)


def test_watch(ctl):
    p = subprocess.Popen(ctl.argv("watch", "/w"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ctl.env)
    try:
        time.sleep(1.0)
        ctl("set", "/w", "first")
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and out == "first\n", (p.returncode, out, err)

    # --after-index reaches into the history, -r sees children. The "/w" write above took
    # index base+1; etcdctl treats --after-index 0 as "no index", so name base+1 explicitly.
    ctl("set", "/wr/a", "one")
    out, _ = ctl("watch", "-r", "--after-index", str(ctl.base + 1), "/wr")
    assert out == "[set] /wr/a\none\n", out


def test_watch_forever(ctl):
    p = subprocess.Popen(ctl.argv("watch", "-f", "/wf"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ctl.env)
    try:
        time.sleep(1.0)
        for v in ("a", "b", "c"):
            ctl("set", "/wf", v)
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=10)
    assert out.splitlines() == ["a", "b", "c"], (out, err)


def test_exec_watch(ctl):
    with tempfile.TemporaryDirectory() as d:
        outfile = os.path.join(d, "seen")
        # etcdctl 3.4 only finds the key before "--" when a flag was parsed (-r here)
        p = subprocess.Popen(ctl.argv("exec-watch", "-r", "/ew", "--", "sh", "-c",
                                      'echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE" >> %s' % outfile),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctl.env)
        try:
            time.sleep(1.0)
            ctl("set", "/ew", "hello")
            deadline = time.time() + 10
            while time.time() < deadline and not os.path.exists(outfile):
                time.sleep(0.1)
            time.sleep(0.3)
        finally:
            p.terminate()
            p.communicate(timeout=10)
        assert os.path.exists(outfile), "exec-watch never ran its command"
        with open(outfile) as f:
            assert f.read() == "set /ew hello\n"


def test_swap_with_index_and_rm_with_value(ctl):
    ctl("set", "/s", "one")
    ctl.err("set", "--swap-with-index", str(ctl.base + 99), "/s", "two", code=101,
            cause="Compare failed ([%d != %d])" % (ctl.base + 99, ctl.base + 1), rel_index=1)
    assert ctl("set", "--swap-with-index", str(ctl.base + 1), "/s", "two")[0] == "two\n"
    ctl.err("rm", "--with-value", "nope", "/s", code=101, cause="Compare failed ([nope != two])", rel_index=2)
    # etcdctl prints node.value of a compareAndDelete reply, which is empty
    assert ctl("rm", "--with-value", "two", "/s")[0] == "\n"


def test_cluster_health_and_member_list(ctl):
    out, _ = ctl("cluster-health")
    assert "cluster is healthy" in out and "got healthy result from %s" % ctl.server.url in out, out
    out, _ = ctl("member", "list")
    assert "clientURLs=%s" % ctl.server.url in out and "isLeader=true" in out, out
