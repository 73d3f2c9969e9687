#!/usr/bin/env bash
# The one test command: installs what is missing, builds, runs every test layer.
#   tests/run-all.sh                 # everything
#   tests/run-all.sh -k conformance  # extra arguments go to pytest
# Environment: MUSUBI_TEST_TARGET=etcd runs the process tests against etcd 3.4 itself
# (proves the harness); MUSUBI_CONFORMANCE_SEED=N replays one conformance seed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

log() { printf '\n=== %s (at %d s)\n' "$*" "$SECONDS"; }

# Every process started below inherits this marker; at exit, whatever still carries it
# (a server a crashed test left running) is killed by pid.
export MUSUBI_TEST_RUN_ID="run-$$-$(date +%s%N)"
cleanup() {
  local pid id=$MUSUBI_TEST_RUN_ID
  unset MUSUBI_TEST_RUN_ID   # so the scanning commands below do not carry it
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/}; pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    if { tr '\0' '\n' < "$env"; } 2>/dev/null | grep -qx "MUSUBI_TEST_RUN_ID=$id"; then
      echo "run-all.sh: killing leftover process $pid: $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT

log "tools"
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v make >/dev/null || need+=(make)       # tikv-jemalloc-sys builds jemalloc with make
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)   # tests/test_netns.py: packet-drop partitions
command -v serf >/dev/null || need+=(serf)        # tests/test_agent.py: the real serf CLI (and agent)
command -v node >/dev/null || need+=(nodejs)      # tests/test_v3_clients.py: npm etcd3 (tests/js/)
command -v npm >/dev/null || need+=(npm)
command -v chromium >/dev/null || need+=(chromium)          # tests/test_dashboard.py: the dashboard
command -v chromedriver >/dev/null || need+=(chromium-driver)  # in headless Chromium, via selenium
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || need+=(python3)
"$PY" -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian's etcd-server and serf packages may start system daemons (2379; 7946, 7373); the
# tests use their own ports.
# Debian's own python3 refuses system-wide pip installs (PEP 668): retry with its override.
pip_q() {
  "$PY" -m pip "$@" -q --disable-pip-version-check 2>/dev/null \
    || "$PY" -m pip "$@" -q --disable-pip-version-check --break-system-packages
}
if ! "$PY" -c 'import etcd, pytest, requests, cryptography' 2>/dev/null \
   || [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("python-etcd"))')" != "0.4.5" ]; then
  pip_q install python-etcd==0.4.5 pytest requests cryptography
fi
# pytest-xdist runs the process tests in several workers (see "process tests" below)
"$PY" -c 'import xdist' 2>/dev/null || pip_q install pytest-xdist==3.8.0
# PyPI's Serf RPC client, driven against the agent (tests/test_agent_serfclient.py); it
# brings msgpack, which the agent tests' own RPC client uses (tests/test_agent_query.py)
"$PY" -c 'import serfclient, msgpack' 2>/dev/null || pip_q install serfclient==1.2.0 msgpack
# The Prometheus project's own text-format parser reads /metrics (tests/test_metrics.py)
"$PY" -c 'import prometheus_client' 2>/dev/null || pip_q install prometheus-client==0.26.0
# selenium drives Debian's chromium through Debian's chromedriver (tests/test_dashboard.py);
# 4.51 because 4.52 needs a newer certifi than the registry serves here
"$PY" -c 'import selenium' 2>/dev/null || pip_q install selenium==4.51.0
# v3 clients (tests/test_v3_clients.py): python etcd3 0.12 (gRPC) only imports with the old
# protobuf, and its Lock needs tenacity < 7; etcd3gw speaks to the JSON gateway
if ! "$PY" -c 'import etcd3, etcd3gw' 2>/dev/null \
   || [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("etcd3"), m.version("protobuf"), m.version("etcd3gw"))')" != "0.12.0 3.20.3 2.7.0" ] \
   || ! "$PY" -c 'import importlib.metadata as m, sys; sys.exit(int(m.version("tenacity").split(".")[0]) >= 7)'; then
  pip_q install etcd3==0.12.0 protobuf==3.20.3 "tenacity>=6.1,<7" etcd3gw==2.7.0
fi
# npm etcd3 1.1.2, pinned by tests/js/package-lock.json
if [ ! -f tests/js/node_modules/etcd3/package.json ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# python-etcd's own integration tests ship in its sdist (tests/test_python_etcd.py)
export MUSUBI_TEST_CACHE=${MUSUBI_TEST_CACHE:-$HOME/.cache/musubi-tests}
if [ ! -f "$MUSUBI_TEST_CACHE/python-etcd-0.4.5.tar.gz" ]; then
  mkdir -p "$MUSUBI_TEST_CACHE"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    python-etcd==0.4.5 -d "$MUSUBI_TEST_CACHE"
fi
# its test_ssl.py needs pyOpenSSL < 26 (X509.add_extensions); kept apart from the system's
# packages and put on PYTHONPATH for that one file only (tests/test_python_etcd.py)
if [ ! -f "$MUSUBI_TEST_CACHE/pyopenssl-25.3.0/OpenSSL/crypto.py" ]; then
  "$PY" -m pip install -q --disable-pip-version-check --target "$MUSUBI_TEST_CACHE/pyopenssl-25.3.0" \
    pyOpenSSL==25.3.0 cryptography==46.0.7
fi

log "build"
# A whole-suite run builds every crate once: incremental caches would only double the
# build directory's size on disk (several GB), with nothing to reuse.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/musubi-fuzz-target}
# The three builds (release for the process tests, debug for cargo test, ASan for fuzzing)
# take several GB together. On a disk with less than MUSUBI_RECLAIM_BELOW_GIB free (20),
# a stage's build directory goes as soon as its tests have run, so the peak is the
# release build plus the largest other one, not all three: a CI machine once ran out.
free_gib() { df -Pk "$1" | awk 'NR == 2 { print int($4 / 1048576) }'; }
reclaim() { # DIR WHAT
  [ -d "$1" ] || return 0
  local free
  free=$(free_gib "$1")
  if [ "$free" -lt "${MUSUBI_RECLAIM_BELOW_GIB:-20}" ]; then
    echo "run-all.sh: $free GiB free: removing the $2 build ($1, $(du -sh "$1" | cut -f1))"
    rm -rf "$1"
  fi
}
echo "disk: $(free_gib "$ROOT") GiB free"
cargo build --release -p musubi
export MUSUBI_BIN=${MUSUBI_BIN:-$TARGET_DIR/release/musubi}

status=0
log "cargo tests (cargo nextest run --workspace, then the doc tests)"
# nextest runs the tests of every test binary side by side: the agent simulation's test of
# four minutes and more shares the two cores with the rest instead of running after them.
# Plain cargo test where nextest is not installed.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast || status=1
  cargo test --workspace --doc || status=1
else
  cargo test --workspace || status=1
fi
reclaim "$TARGET_DIR/debug" "debug (cargo test)"

log "fuzz: every target for 60 s on the checked-in corpus (fuzz/run-short.sh)"
fuzz/run-short.sh || status=1
reclaim "$FUZZ_TARGET_DIR" "fuzz"
echo "disk: $(free_gib "$ROOT") GiB free"

log "process tests (pytest tests/)"
# Most of a process test is waiting (for elections, timeouts, gossip rounds): serially the
# machine's cores sat idle most of the time. MUSUBI_TEST_WORKERS workers (default 3; 1
# runs serially) each take the next file (--dist loadfile: a file's tests run in order on
# one worker, so a module-scoped fixture, such as tests/test_python_etcd.py's inner runs of
# a minute and more, is set up once); harness.free_port gives each worker its own ports.
# Tests marked `alone` (judged by a latency bound) run afterwards, one by one.
# --durations: the slowest tests in the log, to see where the suite's time goes.
pytest_run() {
  "$PY" -m pytest tests/ -p no:cacheprovider -ra --durations=40 "$@"
  local code=$?
  [ $code -eq 5 ] && return 0   # nothing selected (an -m or -k of the caller's)
  return $code
}
workers=${MUSUBI_TEST_WORKERS:-3}
if [ "$workers" -gt 1 ]; then
  pytest_run -n "$workers" --dist loadfile -m "not alone" "$@" || status=1
  pytest_run -m alone "$@" || status=1
else
  pytest_run "$@" || status=1
fi

exit $status
