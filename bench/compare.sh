#!/usr/bin/env bash
# Side-by-side v2 benchmark: etcd 3.4 (--enable-v2) and musubi (release) on loopback,
# one node each, wrk -t2 -c64 -d10s PUT (64-byte values) and GET; plus `musubi bench`
# if the binary has it. Appends a dated markdown section to docs/benchmarks.md.
#   bench/compare.sh                 # DURATION=10s CONNS=64 THREADS=2 by default
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MUSUBI_BIN=${MUSUBI_BIN:-$ROOT/target/release/musubi}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
OUT=${OUT:-$ROOT/docs/benchmarks.md}

[ -x "$MUSUBI_BIN" ] || cargo build --release -p musubi
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/musubi-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # name binary-prefix...   (sets PORT; runs in this shell so PIDS is kept)
  local name=$1; shift
  local cp pp
  cp=$(free_port); pp=$(free_port)
  "$@" --name "$name" --data-dir "$WORK/$name.data" \
    --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "$name=http://127.0.0.1:$pp" --initial-cluster-state new --enable-v2 \
    >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$cp/version" >/dev/null && { PORT=$cp; return; }
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

preload() { for i in $(seq 0 999); do echo "url = \"http://127.0.0.1:$1/v2/keys/bench/k$i\""; echo "-X PUT"; echo "-d value=$(printf 'x%.0s' $(seq 64))"; echo "-o /dev/null"; done | curl -s -K - ; }

# wrk --latency output -> "rps p50_ms p99_ms"
run_wrk() { # port script
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "bench/$2" "http://127.0.0.1:$1" > "$WORK/wrk.out" 2>&1
  python3 - "$WORK/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print("%.0f %.2f %.2f %s" % (rps, p50, p99, errs.group(1) if errs else 0))
PY
}

declare -A R
for side in etcd musubi; do
  if [ "$side" = etcd ]; then start etcd "$ETCD_BIN"; else start musubi "$MUSUBI_BIN" serve; fi
  port=$PORT
  preload "$port"
  R[$side,put]=$(run_wrk "$port" put.lua)
  R[$side,get]=$(run_wrk "$port" get.lua)
  # The same load generator against both servers: musubi bench drives any v2 endpoint.
  for op in put get; do
    echo "### musubi bench $op against $side" >> "$WORK/musubi-bench.txt"
    "$MUSUBI_BIN" bench "$op" --endpoints "http://127.0.0.1:$port" --conns "$CONNS" \
      --duration "$DURATION" --key-space 1000 >> "$WORK/musubi-bench.txt" 2>&1 || true
  done
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
done

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }
row() { # op
  read -r er ep50 ep99 eerr <<<"${R[etcd,$1]}"
  read -r mr mp50 mp99 merr <<<"${R[musubi,$1]}"
  echo "| v2 $1 | $er | $ep50 | $ep99 | $mr | $mp50 | $mp99 | $(ratio "$mr" "$er") | $(ratio "$mp99" "$ep99") | $eerr / $merr |"
}
mkdir -p "$(dirname "$OUT")"
{
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) — one node each, loopback, $(nproc) cores"
  echo
  echo "Command: \`bench/compare.sh\` (wrk -t$THREADS -c$CONNS -d$DURATION, 64-byte values, 1000 keys; etcd $("$ETCD_BIN" --version | head -1 | awk '{print $3}') --enable-v2; musubi $(git rev-parse --short HEAD 2>/dev/null || echo '?'))."
  echo
  echo "| op | etcd req/s | etcd p50 ms | etcd p99 ms | musubi req/s | musubi p50 ms | musubi p99 ms | musubi/etcd throughput | musubi/etcd p99 | non-2xx etcd / musubi |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  row put
  row get
  if [ -s "$WORK/musubi-bench.txt" ]; then
    echo; echo "\`musubi bench put|get --conns $CONNS --duration $DURATION --key-space 1000\` against each:"; echo; echo '```'; cat "$WORK/musubi-bench.txt"; echo '```'
  fi
} | tee -a "$OUT"
