#!/usr/bin/env bash
# Side-by-side gossip benchmark: 20 musubi agents and 20 Debian `serf agent`s on loopback,
# same (LAN) profile, interleaved rounds: failure-detection time, event dissemination time,
# gossip bytes per member per second idle and under events (bench/agent_compare.py says
# how each is measured). Appends a dated markdown section to docs/benchmarks.md.
#   sudo bench/agent-compare.sh                  # CLUSTER=20 ROUNDS=3 IDLE_SECONDS=20 EVENTS=5
#   MUSUBI_BIN=target/debug/musubi ROUNDS=1 bench/agent-compare.sh
# Needs root (nftables counters), serf, python3 with msgpack.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export MUSUBI_BIN=${MUSUBI_BIN:-$ROOT/target/release/musubi}
OUT=${OUT:-$ROOT/docs/benchmarks.md}

[ "$(id -u)" = 0 ] || { echo "needs root: nftables counts the gossip bytes" >&2; exit 1; }
[ -x "$MUSUBI_BIN" ] || cargo build --release -p musubi
command -v serf >/dev/null || { echo "serf is missing (apt-get install serf)" >&2; exit 1; }
command -v nft >/dev/null || { echo "nft is missing (apt-get install nftables)" >&2; exit 1; }
python3 -c 'import msgpack' 2>/dev/null || { echo "python3 msgpack is missing (pip install msgpack)" >&2; exit 1; }

REPORT=$(mktemp)
trap 'rm -f "$REPORT"' EXIT
python3 bench/agent_compare.py | tee "$REPORT"
# the per-round lines go to the terminal only; the markdown section from its heading on,
# under the file's Agent part (made on the first run)
grep -q '^# Agent' "$OUT" || printf '\n# Agent: musubi against serf, same machine, same run\n\nMade by `bench/agent-compare.sh`; what each row measures is in bench/agent_compare.py.\n\n' >> "$OUT"
sed -n '/^## /,$p' "$REPORT" >> "$OUT"
echo "appended to $OUT"
