#!/usr/bin/env bash
# User-space instructions per push on one connector, counted by callgrind.
#
# Instruction counts do not depend on what else the machine is doing, so
# this is the number to compare while changing the push path on a shared
# 2-core box (timings are not; see docs/benchmarks.md). It starts our chat
# cluster from the release build (1 gate, 2 connectors, 2 chat servers;
# ports +30000), runs connector-server-1 under valgrind's callgrind, drives
# a small chat load through the robot, then divides connector-1's total
# instructions by the pushes it delivered (its own /metrics counter).
#
#   bench/scripts/profile_push.sh                  # 100 clients, 5 rooms, 2 msg/s, 10 s
#   CLIENTS=200 RATE=1 bench/scripts/profile_push.sh
#   callgrind_annotate --inclusive=yes <out>/callgrind.out | less   # where it goes
#
# Knobs: CLIENTS (100), ROOMS (5), RATE (2), DURATION (10), OUT
# (target/bench/profile-<time>), CONNECTOR_JSON (extra connector options as
# JSON object members, e.g. '"write-window-ms": 10').
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLIENTS="${CLIENTS:-100}"
ROOMS="${ROOMS:-5}"
RATE="${RATE:-2}"
DURATION="${DURATION:-10}"
OUT="${OUT:-$ROOT/target/bench/profile-$(date +%Y%m%d-%H%M%S)}"
WORK="$OUT/app"
O=30000
BENCH="$ROOT/target/release/shaddock-bench"
GS="$ROOT/target/release/game-server"
mkdir -p "$WORK/config" "$WORK/logs"
for b in "$BENCH" "$GS"; do
  [ -x "$b" ] || { echo "missing $b: cargo build --release -p game-server -p shaddock-bench" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

cat > "$WORK/config/servers.json" <<EOF
{"production": {
  "gate": [{"id": "gate-server-1", "host": "127.0.0.1", "clientPort": $((3014 + O)), "frontend": true}],
  "connector": [
    {"id": "connector-server-1", "host": "127.0.0.1", "port": $((4050 + O)), "clientPort": $((3050 + O)), "frontend": true, "metricsPort": $((9101 + O))},
    {"id": "connector-server-2", "host": "127.0.0.1", "port": $((4051 + O)), "clientPort": $((3051 + O)), "frontend": true}
  ],
  "chat": [
    {"id": "chat-server-1", "host": "127.0.0.1", "port": $((6050 + O))},
    {"id": "chat-server-2", "host": "127.0.0.1", "port": $((6051 + O))}
  ]
}}
EOF
printf '{"production": {"id": "master-server-1", "host": "127.0.0.1", "port": %d}}\n' $((3005 + O)) \
  > "$WORK/config/master.json"
(umask 077; printf '{"production": {"secret": "%s"}}\n' \
  "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" > "$WORK/config/cluster.json")
EXTRA="${CONNECTOR_JSON:+, $CONNECTOR_JSON}"
printf '{"production": {"gate": {"max-connections-per-address": 0}, "connector": {"max-connections-per-address": 0%s}}}\n' \
  "$EXTRA" > "$WORK/config/connector.json"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { # id [wrapper...]
  local id="$1"; shift
  (cd "$WORK" && RUST_LOG=warn exec "$@" "$GS" --env production --server-id "$id" \
     > "logs/$id.console.log" 2>&1) &
  PIDS+=($!)
}
listening() { ss -ltn 2>/dev/null | awk '{print $4}' | grep -q ":$1\$"; }
wait_ports() {
  for _ in $(seq 1 240); do
    local all=1 p
    for p in "$@"; do listening "$p" || all=0; done
    [ "$all" = 1 ] && return 0
    sleep 0.5
  done
  echo "timed out waiting for ports $*" >&2; exit 1
}

start chat-server-1
start chat-server-2
start connector-server-1 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out"
CG=$!
start connector-server-2
start gate-server-1
wait_ports $((3014 + O)) $((3050 + O)) $((3051 + O)) $((6050 + O)) $((6051 + O)) $((9101 + O))
sleep 2

"$BENCH" chat --label profile --gate "ws://127.0.0.1:$((3014 + O))" -c "$CLIENTS" -r "$ROOMS" \
  --rate "$RATE" -d "$DURATION" --timeout 30 --json-out "$OUT/chat.json" | grep -v '^{' || true

metrics=$(curl -sS --max-time 30 "http://127.0.0.1:$((9101 + O))/metrics") \
  || { echo "cannot read connector-server-1's /metrics" >&2; exit 1; }
pushes=$(awk '/^shaddock_pushes_total/ {s += $NF} END {print s + 0}' <<<"$metrics")
# callgrind writes its counts when the process exits; SIGTERM is a graceful stop.
kill -TERM "$CG"
for _ in $(seq 1 120); do kill -0 "$CG" 2>/dev/null || break; sleep 0.5; done
ir=$(callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t = $1} END {print t}')
echo "connector-server-1: $ir instructions, $pushes pushes delivered"
python3 - "$ir" "$pushes" "$OUT" <<'EOF'
import json, sys
ir, pushes, out = int(sys.argv[1]), int(float(sys.argv[2])), sys.argv[3]
per = ir / pushes if pushes else float("nan")
print(f"instructions per push (whole process, handshakes and logins included): {per:,.0f}")
json.dump({"instructions": ir, "pushes": pushes, "per_push": per}, open(f"{out}/profile.json", "w"))
EOF
echo "callgrind_annotate --inclusive=yes $OUT/callgrind.out"
