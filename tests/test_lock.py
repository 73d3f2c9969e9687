"""`musubi lock` and `musubi elect` (docs/lock.md) as real processes on a 3-member cluster,
over v3 and v2 (`--api 3|2`). With MUSUBI_TEST_TARGET=etcd the cluster is etcd 3.4 (with
--enable-v2) and the lock client is still musubi: that proves the tests test the tool.

What must hold: no two holders' children overlap and tokens strictly increase; a holder
killed with -9 or stopped loses its child (the guardian kills the group) before the next
holder starts; python-etcd's Lock (v2) and etcdctl lock (v3) exclude musubi lock on the same
name; an election has one leader at a time and --listen sees each; exit codes pass through.
"""

import json
import os
import signal
import subprocess
import time

import pytest

import harness
from v3util import Ctl3

APIS = ["3", "2"]
# Short leases keep the tests quick; grace must fit in them (see `lock --help`).
TTL = ["--ttl", "4s", "--grace", "1s", "--lock-delay", "1s"]


@pytest.fixture
def cluster(fleet):
    return fleet.cluster(3)


def endpoints(members):
    return ",".join(m.url for m in members)


def musubi(members, *args):
    return [harness.musubi_bin(), *args[:2], "--endpoints", endpoints(members), *args[2:]]


def lock_argv(members, api, name, *rest):
    return [harness.musubi_bin(), "lock", name, "--api", api, "--endpoints", endpoints(members),
            *rest]


def popen(argv, **kw):
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def run(argv, timeout=60):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def alive(pid):
    """A process that exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_pids(path):
    with open(path) as f:
        return [int(p) for p in f.read().split()]


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@pytest.mark.parametrize("api", APIS)
def test_racing_holders_never_overlap_and_tokens_rise(cluster, tmp_path, api):
    log = tmp_path / "log"
    child = ("echo start $MUSUBI_LOCK_TOKEN $ETCD_LOCK_REV >> %s; sleep 0.1; "
             "echo end $MUSUBI_LOCK_TOKEN >> %s" % (log, log))
    procs = [popen(lock_argv(cluster, api, "L", "--", "sh", "-c", child)) for _ in range(20)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 40
    tokens = []
    for start, end in zip(lines[0::2], lines[1::2]):
        _, token, rev = start.split()
        assert end == "end " + token, lines  # nobody started before this one ended
        assert rev == token
        tokens.append(int(token))
    assert tokens == sorted(set(tokens)), tokens


@pytest.mark.parametrize("api", APIS)
def test_kill_9_of_the_holder_kills_its_child_group_before_the_next_holder(
        cluster, tmp_path, api):
    pids = tmp_path / "pids"
    holder = popen(lock_argv(cluster, api, "L", *TTL, "--", "sh", "-c",
                             "sleep 1000 & echo $$ $! > %s; wait" % pids))
    harness.wait_for("the holder's child", lambda: pids.exists() and pids.read_text())
    group = read_pids(pids)
    report = tmp_path / "report"
    waiter = popen(lock_argv(cluster, api, "L", *TTL, "--", "sh", "-c",
                             "for p in %s; do kill -0 $p 2>/dev/null && "
                             "grep -qv ' Z ' /proc/$p/stat && echo alive $p; done; echo checked"
                             % " ".join(map(str, group))))
    try:
        time.sleep(0.5)
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        # The guardian sees its holder's end at once: the group is gone within the grace.
        harness.wait_for("the group's end", lambda: not any(alive(p) for p in group),
                         timeout=3)
        assert time.monotonic() - killed < 3
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, err
        assert out == "checked\n"
    finally:
        stop(holder)
        stop(waiter)


@pytest.mark.parametrize("api", APIS)
def test_a_stopped_holder_loses_its_child_at_the_deadline(cluster, tmp_path, api):
    pids = tmp_path / "pids"
    holder = popen(lock_argv(cluster, api, "L", *TTL, "--", "sh", "-c",
                             "echo $$ > %s; exec sleep 1000" % pids))
    try:
        harness.wait_for("the holder's child", lambda: pids.exists() and pids.read_text())
        [child] = read_pids(pids)
        os.kill(holder.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        harness.wait_for("the child's end", lambda: not alive(child), timeout=10)
        # Killed before the TTL (4 s) is up, counted from the last renewal.
        assert time.monotonic() - stopped < 4
        code, _, err = run(lock_argv(cluster, api, "L", *TTL, "--", "true"))
        assert code == 0, err
        os.kill(holder.pid, signal.SIGCONT)
        _, err = holder.communicate(timeout=30)
        assert holder.returncode == 120, err
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGCONT)
        stop(holder)


@pytest.mark.parametrize("api", APIS)
def test_exit_codes(cluster, tmp_path, api):
    def code(*argv):
        return run(lock_argv(cluster, api, "X", *argv))[0]

    assert code("--", "true") == 0
    assert code("--", "sh", "-c", "exit 42") == 42
    assert code("--", "sh", "-c", "kill -TERM $$") == 143
    assert code("--", "/nonexistent/program") == 127
    assert code("--", str(tmp_path)) == 126
    assert code("--shell", "--", "exit 7") == 7
    holder = popen(lock_argv(cluster, api, "X", *TTL))
    try:
        harness.wait_for("the hold", lambda: holder.stdout.readline())
        assert code("--try", "--", "true") == 124
        assert code("--timeout", "1s", "--", "true") == 124
        token = int(holder.stdout.readline().split()[1])
        assert code("--check", str(token)) == 0
        assert code("--check", str(token + 1000)) == 3
        status = json.loads(run(lock_argv(cluster, api, "X", "--status", "--format", "json"))[1])
        assert [h["token"] for h in status["holders"]] == [token]
        # A waiter stopped by a signal leaves the queue at once (and exits 128+N).
        waiter = popen(lock_argv(cluster, api, "X", "--", "true"))
        harness.wait_for("the waiter's key", lambda: json.loads(run(lock_argv(
            cluster, api, "X", "--status", "--format", "json"))[1])["waiters"])
        waiter.send_signal(signal.SIGTERM)
        waiter.communicate(timeout=30)
        assert waiter.returncode == 143
        status = json.loads(run(lock_argv(cluster, api, "X", "--status", "--format", "json"))[1])
        assert status["waiters"] == []
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=30)
    assert holder.returncode == 0
    assert code("--check", str(token)) == 3
    assert code("--try", "--", "true") == 0

    # --release: a holder that cannot release its key itself (here: stopped) is released.
    holder = popen(lock_argv(cluster, api, "X", *TTL))
    try:
        harness.wait_for("the hold", lambda: holder.stdout.readline())
        token = int(holder.stdout.readline().split()[1])
        os.kill(holder.pid, signal.SIGSTOP)
        assert code("--release", str(token)) == 0
        assert code("--release", str(token)) == 3
        assert code("--try", "--", "true") == 0
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        stop(holder)


@pytest.mark.parametrize("api", APIS)
def test_a_semaphore_holds_n_at_once(cluster, tmp_path, api):
    d = tmp_path
    child = ("touch %s/h.$$; echo $(ls %s | grep -c '^h\\.') >> %s/counts; sleep 0.3; rm %s/h.$$"
             % (d, d, d, d))
    procs = [popen(lock_argv(cluster, api, "S", "-n", "3", "--", "sh", "-c", child))
             for _ in range(9)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    counts = [int(c) for c in (d / "counts").read_text().split()]
    assert len(counts) == 9
    assert max(counts) <= 3
    assert max(counts) > 1

    # Contenders that disagree on -n: the newcomer refuses (125), the holders go on.
    holder = popen(lock_argv(cluster, api, "S", "-n", "3", *TTL))
    try:
        harness.wait_for("the hold", lambda: holder.stdout.readline())
        code, _, err = run(lock_argv(cluster, api, "S", "-n", "2", "--", "true"))
        assert code == 125, err
        assert run(lock_argv(cluster, api, "S", "-n", "3", "--try", "--", "true"))[0] == 0
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=30)
    assert holder.returncode == 0


def test_python_etcd_lock_and_musubi_lock_exclude_each_other(cluster):
    import etcd

    host, port = cluster[0].url.rsplit("//", 1)[1].split(":")
    client = etcd.Client(host=host, port=int(port))
    theirs = etcd.Lock(client, "P")
    theirs.acquire(blocking=True, lock_ttl=60)
    try:
        assert run(lock_argv(cluster, "2", "P", "--try", "--", "true"))[0] == 124
    finally:
        theirs.release()
    assert run(lock_argv(cluster, "2", "P", "--try", "--", "true"))[0] == 0

    holder = popen(lock_argv(cluster, "2", "P", *TTL))
    try:
        harness.wait_for("the hold", lambda: holder.stdout.readline())
        other = etcd.Lock(client, "P")
        assert other.acquire(blocking=False, lock_ttl=60) is False
        other.release()
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=30)
    mine = etcd.Lock(client, "P")
    assert mine.acquire(blocking=False, lock_ttl=60) is True
    mine.release()


def test_etcdctl_lock_and_musubi_lock_exclude_each_other(cluster):
    ctl = Ctl3(cluster[0])
    theirs = ctl.popen("lock", "E")
    try:
        harness.wait_for("etcdctl's hold", lambda: theirs.stdout.readline())
        assert run(lock_argv(cluster, "3", "E", "--try", "--", "true"))[0] == 124
    finally:
        theirs.send_signal(signal.SIGINT)
        theirs.communicate(timeout=30)
    assert run(lock_argv(cluster, "3", "E", "--try", "--", "true"))[0] == 0

    holder = popen(lock_argv(cluster, "3", "E", *TTL))
    try:
        harness.wait_for("the hold", lambda: holder.stdout.readline())
        waiting = ctl.popen("lock", "E", "echo", "got it")
        time.sleep(2)
        assert waiting.poll() is None  # etcdctl still waits behind musubi
        holder.send_signal(signal.SIGTERM)
        out, err = waiting.communicate(timeout=30)
        assert out == "got it\n", err
    finally:
        stop(holder)


@pytest.mark.parametrize("api", APIS)
def test_one_leader_at_a_time_and_listen_sees_each(cluster, tmp_path, api):
    d = tmp_path
    log = d / "log"
    # Each leader's child logs how many leaders' children were alive when it started.
    child = ("n=$(ls %s | grep -c '^alive\\.'); echo \"$LEADER $MUSUBI_LOCK_TOKEN $n\" >> %s; "
             "touch %s/alive.$$; trap 'rm -f %s/alive.$$; exit 143' TERM; "
             "while :; do sleep 0.1; done" % (d, log, d, d))
    listen = popen([harness.musubi_bin(), "elect", "V", "--listen", "--api", api,
                    "--endpoints", endpoints(cluster), "--format", "json"])
    candidates = []
    for i in range(3):
        argv = [harness.musubi_bin(), "elect", "V", "c%d" % i, "--api", api,
                "--endpoints", endpoints(cluster), *TTL, "--", "sh", "-c", child]
        candidates.append(popen(argv, env=dict(os.environ, LEADER="c%d" % i)))
        harness.wait_for("c%d's campaign" % i, lambda: len(leaders(cluster, api)) == i + 1)
    try:
        harness.wait_for("the first leader", lambda: log.exists() and log.read_text())
        for _ in range(2):
            leader = log.read_text().split("\n")[-2].split()[0]
            os.kill(candidates[int(leader[1:])].pid, signal.SIGKILL)
            lines = len(log.read_text().split("\n"))
            harness.wait_for("the next leader", lambda: len(log.read_text().split("\n")) > lines,
                             timeout=20)
        entries = [line.split() for line in log.read_text().split("\n")[:-1]]
        assert [e[0] for e in entries] == ["c0", "c1", "c2"]
        assert [e[2] for e in entries] == ["0", "0", "0"]  # never two leaders' children
        tokens = [int(e[1]) for e in entries]
        assert tokens == sorted(tokens)
        code, out, _ = run([harness.musubi_bin(), "elect", "V", "--leader", "--api", api,
                            "--endpoints", endpoints(cluster)])
        assert code == 0 and out.split("\n")[1] == "c2"
    finally:
        for p in candidates:
            stop(p)
        listen.send_signal(signal.SIGINT)
        out, _ = listen.communicate(timeout=30)
    seen = [json.loads(line)["leader"] for line in out.split("\n") if line]
    values = [leader["value"] for leader in seen if leader]
    assert values[:3] == ["c0", "c1", "c2"], seen


def leaders(cluster, api):
    """The campaign's keys (the v3 prefix V/, or v2's /_musubi/elect/V)."""
    if api == "3":
        out = Ctl3(cluster[0])("get", "V/", "--prefix", "--keys-only")
        return [k for k in out.split("\n") if k]
    status, _, body = cluster[0].request("GET", "/v2/keys/_musubi/elect/V")
    return json.loads(body)["node"].get("nodes", []) if status == 200 else []


@pytest.mark.parametrize("api", APIS)
def test_the_holder_renews_through_another_member_when_its_member_dies(cluster, api):
    # Renewals time out at a third of the TTL and fail over, so a dead member (the leader,
    # perhaps: then the rest are without one for an election) costs no lease at the default
    # TTL (10 s).
    holder = popen(lock_argv(cluster, api, "F", "--", "sleep", "10"))
    try:
        time.sleep(1)
        cluster[0].kill()
        _, err = holder.communicate(timeout=60)
        assert holder.returncode == 0, err
    finally:
        stop(holder)
