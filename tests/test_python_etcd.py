"""python-etcd 0.4.5's own integration tests (test_simple.py, test_auth.py, test_ssl.py)
against the target.

Where they come from: the python-etcd 0.4.5 sdist on PyPI ships src/etcd/tests/. run-all.sh
downloads it once (`pip download --no-binary :all: python-etcd==0.4.5`) into
$MUSUBI_TEST_CACHE (default ~/.cache/musubi-tests); this file downloads it itself if it
is not there yet.

How they run: they spawn a binary named `etcd` from $PATH with single-dash etcd 3.x flags
(`etcd -data-dir D -name test-node-0 -initial-advertise-peer-urls … -listen-client-urls …
-initial-cluster … -initial-cluster-state new`), wait 2 s, and talk to it on fixed ports
6001…/8001…. We run them unmodified except for:
  * a temp dir first on PATH holding `etcd -> musubi` (a symlink; musubi invoked as `etcd`
    behaves as `musubi serve`). With MUSUBI_TEST_TARGET=etcd it holds a wrapper that runs
    etcd 3.4 with --enable-v2 instead (0.4.5 predates 3.4's v2 opt-in).
  * the port numbers 6001-6004 and 8001-8003 are rewritten in the files to a free
    range, so nothing else on the machine can collide.
  * nothing else: TestSimple, TestErrors and TestWatch run against the upstream three-node
    cluster, and TestClusterFunctions kills node 0 of three and reconnects (test_auth.py
    is 1-node already).
  * `nose.tools.nottest` (nose does not install on Python 3.11) is stubbed, and so is
    `OpenSSL.crypto` for test_simple.py and test_auth.py (only the TLS helpers use it).
  * test_ssl.py runs in a second inner pytest with pyOpenSSL 25.3.0 (the last with
    `X509.add_extensions`, which its helpers call) and cryptography 46 on PYTHONPATH,
    pip-installed into $MUSUBI_TEST_CACHE/pyopenssl-25.3.0 (--target, so the system's
    packages are untouched). With pyOpenSSL importable, python-etcd switches urllib3 to it.
Each inner test is reported as one test here.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET

import pytest

import harness
from harness import ETCD_BIN, musubi_bin, target_kind

VERSION = "0.4.5"
CACHE = os.environ.get("MUSUBI_TEST_CACHE", os.path.expanduser("~/.cache/musubi-tests"))

UPSTREAM = [
    ("integration/test_simple.py", "TestSimple", t) for t in (
        "test_machines", "test_leader", "test_get_set_delete", "test_update",
        "test_retrieve_subkeys", "test_directory_ttl_update")
] + [
    ("integration/test_simple.py", "TestErrors", t) for t in (
        "test_is_not_a_file", "test_test_and_set", "test_creating_already_existing_directory")
] + [
    ("integration/test_simple.py", "TestWatch", t) for t in (
        "test_watch", "test_watch_indexed", "test_watch_generator", "test_watch_indexed_generator")
]
# test_auth.py was written for etcd 2.2's v2 auth, where GET /v2/auth/users listed names;
# since etcd 2.3 (so in 3.4, musubi's target) it lists objects, and all six tests fail
# against etcd 3.4 itself in their first assertion. The target must fail them exactly
# as etcd 3.4 does (same first line), which proves the 3.4 auth shapes are served.
AUTH_AS_ETCD34 = {
    ("EtcdUserTest", "test_names"): "AssertionError: Lists differ: [{'user': 'root', 'roles': [{'role': 'root",
    ("EtcdUserTest", "test_read"): "TypeError: unhashable type: 'dict'",
    ("EtcdUserTest", "test_write_and_delete"): "TypeError: unhashable type: 'dict'",
    ("EtcdRoleTest", "test_names"): "AssertionError: Lists differ: [{'role': 'guest', 'permissions': {'kv': {",
    ("EtcdRoleTest", "test_read"): "TypeError: unhashable type: 'dict'",
    ("EtcdRoleTest", "test_write_and_delete"): "TypeError: unhashable type: 'dict'",
}
CLUSTER = ["test_reconnect", "test_reconnect_with_several_hosts_passed",
           "test_reconnect_not_allowed", "test_reconnet_fails"]

# test_ssl.py against etcd 3.4 (/usr/bin/etcd 3.4.23, pyOpenSSL 25.3.0 whose bundled
# OpenSSL is 3.5): the helpers sign every certificate with SHA-1, and OpenSSL 3 refuses
# SHA-1 certificate signatures at its default security level ("CA signature digest
# algorithm too weak"), so the one test that must complete a verified handshake fails in
# the client before any request is sent. The server cannot help it: it only presents the
# certificate it was given. The three tests that expect a refusal pass. etcd 3.4 also
# rejects TestClientAuthenticatedAccess's `-ca-file` ("flag provided but not defined") and
# its test passes against nothing listening; musubi accepts -ca-file as etcd 2.x did
# (trusted CA + client cert auth) and the test passes against a TLS port refusing plain HTTP.
SSL_PASS_AS_ETCD34 = [
    ("TestEncryptedAccess", "test_get_set_unauthenticated"),
    ("TestEncryptedAccess", "test_get_set_unauthenticated_with_ca"),
    ("TestClientAuthenticatedAccess", "test_get_set_unauthenticated"),
]
SSL_FAIL_AS_ETCD34 = {
    ("TestEncryptedAccess", "test_get_set_authenticated"): (
        "etcd.EtcdConnectionFailed: Connection to etcd failed due to MaxRetryError(",
        "certificate verify failed"),
}
PYOPENSSL = ["pyOpenSSL==25.3.0", "cryptography==46.0.7"]

INNER_CONFTEST = "# the upstream tests run as written (three nodes)\n"


def sdist():
    pattern = os.path.join(CACHE, "python-etcd-%s.tar.gz" % VERSION)
    if not os.path.exists(pattern):
        os.makedirs(CACHE, exist_ok=True)
        p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--no-binary", ":all:", "python-etcd==%s" % VERSION, "-d", CACHE],
                           capture_output=True, text=True)
        assert p.returncode == 0 and os.path.exists(pattern), \
            "cannot get the python-etcd %s sdist (run tests/run-all.sh once with network): %s" % (
                VERSION, p.stderr)
    return pattern


def pyopenssl_dir():
    """A directory holding the pyOpenSSL test_ssl.py's helpers need (see the docstring)."""
    d = os.path.join(CACHE, "pyopenssl-25.3.0")
    if not os.path.exists(os.path.join(d, "OpenSSL", "crypto.py")):
        p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "--target", d] + PYOPENSSL, capture_output=True, text=True)
        assert p.returncode == 0, "cannot install %s into %s (run tests/run-all.sh once with network): %s" % (
            " ".join(PYOPENSSL), d, p.stderr)
    return d


def run_inner(files, pythonpath_extra=()):
    """Unpacks the sdist, runs `files` (relative to etcd/tests) with `etcd` on PATH being
    the target, and yields ({(class, test): (outcome, text)}, output tail)."""
    work = tempfile.mkdtemp(prefix="musubi-python-etcd-")
    try:
        with tarfile.open(sdist()) as t:
            t.extractall(work)
        root = os.path.join(work, "python-etcd-%s" % VERSION, "src")
        tests = os.path.join(root, "etcd", "tests")
        client = harness.free_ports(4)
        peer = harness.free_ports(3)
        ports = {str(6001 + i): str(client + i) for i in range(4)}
        ports.update({str(8001 + i): str(peer + i) for i in range(3)})
        old_port = re.compile(r"(?<!\d)(%s)(?!\d)" % "|".join(ports))
        for rel in files:
            path = os.path.join(tests, rel)
            with open(path) as f:
                src = f.read()
            # In one pass: replaced one port after another, a new client port holding an
            # old peer port's digits (28001 holds 8001) was rewritten again.
            src = old_port.sub(lambda m: ports[m.group(1)], src)
            with open(path, "w") as f:
                f.write(src)
        with open(os.path.join(tests, "conftest.py"), "w") as f:
            f.write(INNER_CONFTEST)

        stubs = os.path.join(work, "stubs")
        os.makedirs(os.path.join(stubs, "nose"))
        with open(os.path.join(stubs, "nose", "__init__.py"), "w") as f:
            f.write("")
        with open(os.path.join(stubs, "nose", "tools.py"), "w") as f:
            f.write("def nottest(f):\n    f.__test__ = False\n    return f\n")
        if not pythonpath_extra:
            os.makedirs(os.path.join(stubs, "OpenSSL"))
            with open(os.path.join(stubs, "OpenSSL", "__init__.py"), "w") as f:
                f.write("")
            with open(os.path.join(stubs, "OpenSSL", "crypto.py"), "w") as f:
                f.write("# stub: only the TLS helpers use it, and they run with the real one\n")

        bindir = os.path.join(work, "bin")
        os.makedirs(bindir)
        etcd = os.path.join(bindir, "etcd")
        if target_kind() == "etcd":
            with open(etcd, "w") as f:
                f.write('#!/bin/sh\nexec %s "$@" --enable-v2\n' % ETCD_BIN)
            os.chmod(etcd, 0o755)
        else:
            assert os.path.exists(musubi_bin()), "no musubi binary at %s" % musubi_bin()
            os.symlink(os.path.abspath(musubi_bin()), etcd)

        env = dict(os.environ)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        env["PYTHONPATH"] = os.pathsep.join([stubs, *pythonpath_extra, root])
        junit = os.path.join(work, "junit.xml")
        p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                            "--rootdir", tests, "--junitxml", junit]
                           + [os.path.join(tests, rel) for rel in files],
                           cwd=work, env=env, capture_output=True, text=True, timeout=900)
        results = {}
        if os.path.exists(junit):
            for case in ET.parse(junit).iter("testcase"):
                cls = case.get("classname", "").rsplit(".", 1)[-1]
                outcome, text = "passed", ""
                for child in case:
                    if child.tag in ("failure", "error"):
                        outcome, text = "failed", (child.get("message", "") + "\n" + (child.text or ""))
                    elif child.tag == "skipped":
                        outcome, text = "skipped", child.get("message", "")
                results[(cls, case.get("name"))] = (outcome, text)
        yield results, p.stdout[-6000:] + p.stderr[-3000:]
    finally:
        # the inner helper kills its etcd processes; anything left is ours to end by pid
        for d in glob.glob(os.path.join(work, "python-etcd*")):
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def inner_results():
    yield from run_inner(["integration/test_simple.py", "test_auth.py"])


@pytest.fixture(scope="module")
def ssl_results():
    yield from run_inner(["integration/test_ssl.py"], [pyopenssl_dir()])


@pytest.mark.parametrize("rel,cls,name", UPSTREAM, ids=["%s::%s" % (c, t) for _, c, t in UPSTREAM])
def test_python_etcd(inner_results, rel, cls, name):
    results, output = inner_results
    assert (cls, name) in results, "python-etcd %s::%s::%s did not run; inner pytest said:\n%s" % (
        rel, cls, name, output)
    outcome, text = results[(cls, name)]
    assert outcome == "passed", "python-etcd %s::%s::%s %s:\n%s" % (rel, cls, name, outcome, text[-4000:])


@pytest.mark.parametrize("cls,name", sorted(AUTH_AS_ETCD34), ids=["%s::%s" % k for k in sorted(AUTH_AS_ETCD34)])
def test_python_etcd_auth_like_etcd34(inner_results, cls, name):
    results, output = inner_results
    assert (cls, name) in results, "python-etcd test_auth.py::%s::%s did not run:\n%s" % (cls, name, output)
    outcome, text = results[(cls, name)]
    want = AUTH_AS_ETCD34[(cls, name)]
    first = text.strip().splitlines()[0] if text.strip() else ""
    assert outcome == "failed" and first.startswith(want), (
        "python-etcd test_auth.py::%s::%s must fail exactly as against etcd 3.4 (%r), got %s:\n%s"
        % (cls, name, want, outcome, text[-3000:]))


@pytest.mark.parametrize("name", CLUSTER)
def test_python_etcd_cluster(inner_results, name):
    results, output = inner_results
    outcome, text = results.get(("TestClusterFunctions", name), ("missing", output))
    assert outcome == "passed", "python-etcd TestClusterFunctions::%s %s:\n%s" % (name, outcome, text[-4000:])


@pytest.mark.parametrize("cls,name", SSL_PASS_AS_ETCD34, ids=["%s::%s" % k for k in SSL_PASS_AS_ETCD34])
def test_python_etcd_ssl(ssl_results, cls, name):
    results, output = ssl_results
    outcome, text = results.get((cls, name), ("missing", output))
    assert outcome == "passed", "python-etcd test_ssl.py::%s::%s %s:\n%s" % (cls, name, outcome, text[-4000:])


@pytest.mark.parametrize("cls,name", sorted(SSL_FAIL_AS_ETCD34), ids=["%s::%s" % k for k in sorted(SSL_FAIL_AS_ETCD34)])
def test_python_etcd_ssl_like_etcd34(ssl_results, cls, name):
    results, output = ssl_results
    outcome, text = results.get((cls, name), ("missing", output))
    start, reason = SSL_FAIL_AS_ETCD34[(cls, name)]
    first = text.strip().splitlines()[0] if text.strip() else ""
    assert outcome == "failed" and first.startswith(start) and reason in first, (
        "python-etcd test_ssl.py::%s::%s must fail as against etcd 3.4 (%r ... %r), got %s:\n%s"
        % (cls, name, start, reason, outcome, text[-3000:]))
