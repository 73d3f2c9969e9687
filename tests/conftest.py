"""pytest fixtures: servers on free loopback ports, torn down after each test.

See harness.py for the environment variables (MUSUBI_BIN, MUSUBI_TEST_TARGET)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    return any(getattr(getattr(request.node, "rep_" + w, None), "failed", False)
               for w in ("setup", "call"))


@pytest.fixture
def fleet(request):
    f = harness.Fleet()
    yield f
    failed = _failed(request)
    f.close()
    if failed:
        for s in f.servers:
            sys.stdout.write("\n--- log of %s %s (port %d) ---\n%s\n"
                             % (s.kind, s.name, s.client_port, s.log_tail()))


@pytest.fixture
def target(fleet):
    """A running server under test (musubi unless MUSUBI_TEST_TARGET=etcd)."""
    return fleet.target().start()


@pytest.fixture
def reference(fleet):
    """A running etcd 3.4 with --enable-v2."""
    return fleet.etcd().start()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "alone: judged by a clock (a latency bound that is not ours to set), so "
        "tests/run-all.sh runs it after the others, with no other test beside it")


def pytest_report_header(config):
    return "musubi tests: target=%s MUSUBI_BIN=%s" % (harness.target_kind(), harness.musubi_bin())
