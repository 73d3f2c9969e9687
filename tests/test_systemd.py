"""systemd's readiness protocol: under a `Type=notify` unit (Debian's own etcd.service is
one) systemd waits for READY=1 before it starts what depends on the store, and kills a
unit that never sends it. This machine's PID 1 is not systemd, so the test plays
systemd's part: a datagram socket in `$NOTIFY_SOCKET`, as systemd passes it. READY=1
must come once the member serves clients (a read answers at that moment), STOPPING=1 on
SIGTERM (etcd 3.4 sends READY=1 only). Runs against etcd 3.4 too (MUSUBI_TEST_TARGET=etcd).

The unit files in contrib/ are checked with `systemd-analyze verify` where it exists."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

import harness

CONTRIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "contrib")


class NotifySocket:
    """What systemd listens on for a Type=notify service."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="musubi-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout=30.0):
        """The next message's variables, as a dict."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if "=" in line)

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def test_ready_once_serving_and_stopping_on_sigterm(fleet, notify):
    server = fleet.target(env={"NOTIFY_SOCKET": notify.path})
    server.start(wait=False)
    message = notify.next()
    assert message.get("READY") == "1", message
    # Ready means serving: a read answers now, with no retry.
    st, _, body = server.request("GET", "/v2/keys/", timeout=5.0)
    assert st == 200, body
    server.proc.send_signal(signal.SIGTERM)
    if harness.target_kind() != "etcd":
        # etcd 3.4 says nothing on its way down; systemd then only sees the exit.
        message = notify.next()
        assert message.get("STOPPING") == "1", message
    # A clean stop for systemd: exit 0 (musubi), or death by the SIGTERM it sent (etcd).
    assert server.proc.wait(timeout=20) in (0, -signal.SIGTERM)


def test_debians_etcd_unit_runs_it_as_usr_bin_etcd(fleet, notify):
    """Debian's etcd.service: `Type=notify`, `ETCD_NAME`/`ETCD_DATA_DIR` in the environment,
    `/usr/bin/etcd $DAEMON_ARGS` (a link named etcd to musubi runs the server)."""
    if harness.target_kind() == "etcd":
        binary = None
    else:
        link_dir = tempfile.mkdtemp(prefix="musubi-etcd-link-")
        binary = os.path.join(link_dir, "etcd")
        os.symlink(os.path.abspath(harness.musubi_bin()), binary)
    server = fleet.spawn(harness.target_kind(), style="listen-only", binary=binary, env={
        "NOTIFY_SOCKET": notify.path, "ETCD_NAME": "debian-host",
        "ETCD_ENABLE_V2": "true"})
    if binary:
        # argv[0] must be the link itself for musubi to act as `etcd`.
        server.argv = lambda: [binary] + harness.Server.argv(server)[2:]
    server.start(wait=False)
    assert notify.next().get("READY") == "1"
    st, _, body = server.request("GET", "/v2/members", timeout=5.0)
    assert st == 200 and b'"name":"debian-host"' in body, body


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("unit", ["musubi.service", "musubi-agent.service"])
def test_the_contrib_units_are_valid(unit):
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", os.path.join(CONTRIB, unit)],
                       capture_output=True, text=True)
    # Only problems with the unit itself count: this machine has no musubi user or binary
    # in /usr/bin, and no running systemd.
    problems = [line for line in (p.stdout + p.stderr).splitlines()
                if unit in line and "Failed to" not in line and "not executable" not in line
                and "No such file" not in line]
    assert not problems, p.stdout + p.stderr
