#!/usr/bin/env bash
# Seeds from a real server: runs `musubi serve` on loopback with a fresh data dir and a low
# --snapshot-count, writes keys with curl (sets, a directory, TTLs, compare-and-swap,
# in-order keys, deletes), stops it, and copies what it left on disk into the corpora:
#   corpus/wal_records/server-segment  its log segment (wal_records input format)
#   corpus/snapshot/server-current-snap, server-store, server-vote
#   corpus/v2_query/server-*           the query strings it was sent
# Usage (from fuzz/): ./seeds-from-server.sh [path/to/musubi]   (default: ../target/release/musubi,
# else ../target/debug/musubi). Needs curl and python3. Ports 23790-23799 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"
bin=${1:-}
if [[ -z $bin ]]; then
    for b in ../target/release/musubi ../target/debug/musubi; do
        [[ -x $b ]] && { bin=$b; break; }
    done
fi
[[ -n $bin && -x $bin ]] || { echo "no musubi binary: cargo build --release --bin musubi" >&2; exit 1; }

work=$(mktemp -d)
client=http://127.0.0.1:23791
peer=http://127.0.0.1:23792
"$bin" serve --name seed --data-dir "$work/data" --snapshot-count 20 \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "seed=$peer" >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "$client/version" >/dev/null && break; sleep 0.2; done

queries=()
put() { # key query
    queries+=("$2")
    quiet_put "$@"
}
quiet_put() { curl -sf -X PUT "$client/v2/keys$1?$2" >/dev/null; }
for i in $(seq 1 12); do quiet_put "/k$i" "value=v$i"; done
put /dir "dir=true"
put /dir/a "value=hello+world%21"
put /dir/ttl "value=short&ttl=300"
put /dir/a "prevValue=hello%20world%21&value=swapped"
put /dir/new "prevExist=false&value=created"
put /dir/ttl "refresh=true&ttl=600&prevExist=true"
for i in 1 2 3; do curl -sf -X POST "$client/v2/keys/queue" -d "value=job$i" >/dev/null; done
curl -sf -X DELETE "$client/v2/keys/k1" >/dev/null
curl -sf -X DELETE "$client/v2/keys/k2?prevIndex=2" >/dev/null || true
for i in $(seq 13 30); do quiet_put "/many/k$i" "value=$(printf 'x%.0s' $(seq $i))"; done
curl -sf "$client/v2/keys/?recursive=true&sorted=true" >/dev/null
queries+=("recursive=true&sorted=true")
sleep 1
kill -TERM $pid
wait $pid || true

python3 - "$work/data" "${queries[@]}" <<'EOF'
import os, struct, sys, pathlib
data = pathlib.Path(sys.argv[1])
out = pathlib.Path("corpus")
def find(name):
    hits = sorted(p for p in data.rglob(name))
    return hits
segs = sorted(data.rglob("*.wal"))
assert segs, "no log segment written"
seg = segs[-1]
first = int(seg.name[:-4])
body = seg.read_bytes().rstrip(b"\0") + b"\0" * 8
if first < 0xf0:
    (out / "wal_records" / "server-segment").write_bytes(bytes([first]) + body)
else:
    print(f"skipping {seg.name}: first index {first} does not fit the input format")
def parts(raw):
    at, got = 0, []
    while at + 16 <= len(raw):
        (n,) = struct.unpack_from("<I", raw, at)
        got.append(raw[at + 16 : at + 16 + n])
        at += 16 + n
    return got
snaps = find("current.snap")
assert snaps, "no snapshot taken (raise the writes or lower --snapshot-count)"
raw = snaps[0].read_bytes()
(out / "snapshot" / "server-current-snap").write_bytes(raw)
(out / "snapshot" / "server-store").write_bytes(parts(raw)[1])
for vote in find("vote"):
    (out / "snapshot" / "server-vote").write_bytes(vote.read_bytes())
for i, q in enumerate(dict.fromkeys(sys.argv[2:])):
    (out / "v2_query" / f"server-{i:02}").write_bytes(b"\x01" + q.encode())
print("server seeds written:", seg.name, snaps[0].name)
EOF
