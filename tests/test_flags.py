"""Bad command lines, refused in the words of the real programs: `musubi agent` as
`serf agent`, `musubi members` as `serf members`, `musubi serve` as etcd 3.4. All three
parse with one Go `flag` parser (musubi_gocompat::flag); docs/flags.md and
docs/agent-config.md have the tables. Each case runs the real program (Debian's serf and
etcd-server) with the same arguments and compares what both print and their exit codes.
"""

import os
import subprocess

import pytest

import harness
from agents import SERF_BIN


def run(argv, cwd):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd)


needs_serf = pytest.mark.skipif(not os.path.exists(SERF_BIN), reason="Debian's serf is not installed")
needs_etcd = pytest.mark.skipif(not os.path.exists(harness.ETCD_BIN),
                                reason="Debian's etcd-server is not installed")


@needs_serf
@pytest.mark.parametrize("args", [["-bogus"], ["--bogus=1"], ["-node"], ["---x"], ["-rejoin=maybe"],
                                  ["-protocol=abc"], ["-retry-max", "1.5"],
                                  ["-protocol=99999999999999999999"]])
def test_agent_refuses_a_bad_flag_as_serf_agent_does(tmp_path, args):
    theirs = run([SERF_BIN, "agent"] + args, tmp_path)
    ours = run([harness.musubi_bin(), "agent"] + args, tmp_path)
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert ours.stderr == theirs.stderr != ""
    assert theirs.stdout.startswith("==> Usage: serf agent [options]\n")
    assert ours.stdout.startswith("==> Usage: musubi agent [options]\n")


@needs_serf
@pytest.mark.parametrize("args, message", [
    (["-tag", "novalue"], "==> Error: Invalid tag: 'novalue'"),
    (["-retry-interval=5"], '==> Error: time: missing unit in duration "5"'),
])
def test_agent_refuses_a_bad_tag_or_duration_as_serf_agent_does(tmp_path, args, message):
    theirs = run([SERF_BIN, "agent"] + args, tmp_path)
    ours = run([harness.musubi_bin(), "agent"] + args, tmp_path)
    assert (ours.returncode, theirs.returncode) == (1, 1)
    # serf prints it on stdout, musubi's agent its errors on stderr
    assert theirs.stdout.splitlines()[0] == message
    assert ours.stderr.splitlines()[0] == message


@needs_serf
def test_agent_help_is_the_usage_on_stderr(tmp_path):
    for args in (["-h"], ["--help"], ["x", "-help"]):
        theirs = run([SERF_BIN, "agent"] + args, tmp_path)
        ours = run([harness.musubi_bin(), "agent"] + args, tmp_path)
        assert (ours.returncode, theirs.returncode, ours.stdout) == (0, 0, "")
        assert ours.stderr.startswith("Usage: musubi agent [options]\n")


@needs_serf
@pytest.mark.parametrize("args", [["-bogus"], ["-status"], ["---x"], ["-detailed=maybe"]])
def test_members_refuses_a_bad_flag_as_serf_members_does(tmp_path, args):
    theirs = run([SERF_BIN, "members"] + args, tmp_path)
    ours = run([harness.musubi_bin(), "members"] + args, tmp_path)
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert ours.stderr == theirs.stderr != ""
    assert ours.stdout.startswith("Usage: musubi members [options]\n")


@needs_etcd
@pytest.mark.parametrize("args", [["--bogus"], ["-bogus"], ["--name"], ["---x"],
                                  ["--client-cert-auth=maybe"], ["--snapshot-count=abc"],
                                  ["--snapshot-count=-1"], ["--snapshot-count=99999999999999999999999"],
                                  ["--heartbeat-interval=1.5"]])
def test_serve_refuses_a_bad_flag_as_etcd_does(tmp_path, args):
    theirs = run([harness.ETCD_BIN] + args, tmp_path)
    ours = run([harness.musubi_bin(), "serve"] + args, tmp_path)
    assert (ours.returncode, theirs.returncode) == (2, 2)
    first = theirs.stderr.splitlines()[0]
    assert first.startswith(("flag ", "bad flag", "invalid "))
    assert ours.stderr.splitlines()[0] == first
    assert ours.stdout == theirs.stdout == ""


@needs_etcd
@pytest.mark.parametrize("args, stray", [(["--name", "a", "extra"], "extra"),
                                         (["--client-cert-auth", "false"], "false"),
                                         (["--", "x"], "x")])
def test_serve_refuses_an_argument_after_the_flags_as_etcd_does(tmp_path, args, stray):
    theirs = run([harness.ETCD_BIN] + args, tmp_path)
    ours = run([harness.musubi_bin(), "serve"] + args, tmp_path)
    assert (ours.returncode, theirs.returncode) == (1, 1)
    said = "error verifying flags, '%s' is not a valid flag. See '" % stray
    assert said + "etcd --help'." in theirs.stderr
    assert ours.stderr == "musubi serve: " + said + "musubi serve --help'.\n"
