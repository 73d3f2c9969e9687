#!/usr/bin/env bash
# Side-by-side v2 benchmark: etcd 3.4 (--enable-v2) and musubi (release) on loopback,
# MEMBERS members each (one by default), wrk -t2 -c64 -d10s PUT (64-byte values) and GET
# against the leader; plus `musubi bench`. Appends a dated markdown section to
# docs/benchmarks.md.
#   bench/compare.sh                 # DURATION=10s CONNS=64 THREADS=2 MEMBERS=1 by default
#   MEMBERS=3 bench/compare.sh       # three-member clusters side by side
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MUSUBI_BIN=${MUSUBI_BIN:-$ROOT/target/release/musubi}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
MEMBERS=${MEMBERS:-1}
OUT=${OUT:-$ROOT/docs/benchmarks.md}

[ -x "$MUSUBI_BIN" ] || cargo build --release -p musubi
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/musubi-bench.XXXXXX)
PIDS=()
cleanup() { stop; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # side binary-prefix...   (sets PORT to the leader's client port; PIDS kept)
  local side=$1; shift
  local cps=() pps=() initial="" i
  for i in $(seq "$MEMBERS"); do cps+=("$(free_port)"); pps+=("$(free_port)"); done
  for i in $(seq 0 $((MEMBERS - 1))); do
    initial+="${initial:+,}$side$i=http://127.0.0.1:${pps[$i]}"
  done
  for i in $(seq 0 $((MEMBERS - 1))); do
    "$@" --name "$side$i" --data-dir "$WORK/$side$i.data" \
      --listen-client-urls "http://127.0.0.1:${cps[$i]}" --advertise-client-urls "http://127.0.0.1:${cps[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${pps[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pps[$i]}" \
      --initial-cluster "$initial" --initial-cluster-state new --enable-v2 \
      >"$WORK/$side$i.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 400); do
    PORT=$(curl -sf "http://127.0.0.1:${cps[0]}/v2/members/leader" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientURLs"][0].rsplit(":",1)[1])' 2>/dev/null) \
      && [ -n "$PORT" ] && curl -sf -XPUT "http://127.0.0.1:$PORT/v2/keys/ready" -d value=1 >/dev/null && return
    sleep 0.05
  done
  echo "$side did not start:" >&2; cat "$WORK/$side"*.log >&2; exit 1
}

stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

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
  stop
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
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) — $MEMBERS member(s) each, loopback, $(nproc) cores"
  echo
  echo "Command: \`MEMBERS=$MEMBERS bench/compare.sh\` (requests to the leader; wrk -t$THREADS -c$CONNS -d$DURATION, 64-byte values, 1000 keys; etcd $("$ETCD_BIN" --version | head -1 | awk '{print $3}') --enable-v2; musubi $(git rev-parse --short HEAD 2>/dev/null || echo '?'))."
  echo
  echo "| op | etcd req/s | etcd p50 ms | etcd p99 ms | musubi req/s | musubi p50 ms | musubi p99 ms | musubi/etcd throughput | musubi/etcd p99 | non-2xx etcd / musubi |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  row put
  row get
  if [ -s "$WORK/musubi-bench.txt" ]; then
    echo; echo "\`musubi bench put|get --conns $CONNS --duration $DURATION --key-space 1000\` against each:"; echo; echo '```'; cat "$WORK/musubi-bench.txt"; echo '```'
  fi
} | tee -a "$OUT"
