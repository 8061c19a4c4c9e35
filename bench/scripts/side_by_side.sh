#!/usr/bin/env bash
# Runs the same robot scenarios against our chat cluster (release build) and
# against Pomelo 2.2.7 (as shipped, then with TCP_NODELAY), one after the
# other in one run, and prints medians and ratios (bench/scripts/summarize.py).
#
#   bench/scripts/side_by_side.sh                 # everything, RUNS=3
#   RUNS=1 IDLE_HOLD=10 bench/scripts/side_by_side.sh   # a quicker pass
#   SYSTEMS="ours pomelo" SCENARIOS="chat ramp" bench/scripts/side_by_side.sh
#   SCENARIOS=storm bench/scripts/side_by_side.sh       # the login storm only
#
# Same topology for both: 1 gate, 2 connectors, 2 chat servers, robot on the
# same machine. Ports are moved away from the dev defaults (ours +10000:
# gate 13014; Pomelo +20000: gate 23014) so a colleague's dev cluster or
# Pomelo copy on 3014/3050 never collides with the benchmark. Each system is
# started fresh before each idle and storm run and again before its chat
# scenarios. Every robot report records the machine's load average before
# and after (and per ramp step), the robot's own CPU and the CPU of every
# server process; at the end `shaddock-bench plot` draws $OUT/plot.png from
# the ramps.
#
# Knobs (environment): RUNS (3), CLIENTS (1000), ROOMS (20), RATE (1),
# DURATION (10 s), RAMP_DURATION (6 s), RAMP_RATES (0.25,0.5,1,1.5, then
# 0.5 steps from 2 to 6 — 25k pushes/s apart from 100k to 300k — then 8..16),
# IDLE_CLIENTS (10000), IDLE_HOLD (60 s), STORM_USERS (10000), STORM_ROOMS
# (200: rooms of 50), STORM_CONCURRENCY (1000 logins in flight),
# SYSTEMS ("ours pomelo pomelo-nodelay"), SCENARIOS ("idle chat ramp storm"),
# OUT (target/bench/<time>), WORK (/tmp/shaddock-bench),
# BUDGETS (on; off lifts our per-client request budgets, for their cost),
# CONNECTOR_JSON (extra connector.json members for ours, e.g. '"write-window-ms": 10').
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS="${RUNS:-3}"
CLIENTS="${CLIENTS:-1000}"
ROOMS="${ROOMS:-20}"
RATE="${RATE:-1}"
DURATION="${DURATION:-10}"
RAMP_DURATION="${RAMP_DURATION:-6}"
# Finer near the knee: the pass/fail of a step sits on a p99 cliff near
# 50 ms somewhere between 100k and 300k pushes/s for ours (issue 13).
RAMP_RATES="${RAMP_RATES:-0.25,0.5,1,1.5,2,2.5,3,3.5,4,4.5,5,5.5,6,8,10,12,16}"
IDLE_CLIENTS="${IDLE_CLIENTS:-10000}"
IDLE_HOLD="${IDLE_HOLD:-60}"
STORM_USERS="${STORM_USERS:-10000}"
STORM_ROOMS="${STORM_ROOMS:-200}"
STORM_CONCURRENCY="${STORM_CONCURRENCY:-1000}"
SYSTEMS="${SYSTEMS:-ours pomelo pomelo-nodelay}"
SCENARIOS="${SCENARIOS:-idle chat ramp storm}"
WORK="${WORK:-/tmp/shaddock-bench}"
OUT="${OUT:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}"
OURS_OFF=10000
POMELO_OFF=20000
mkdir -p "$OUT" "$WORK"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

listening() { ss -ltn 2>/dev/null | awk '{print $4}' | grep -q ":$1\$"; }
wait_ports() {
  local p
  for _ in $(seq 1 120); do
    local all=1
    for p in "$@"; do listening "$p" || all=0; done
    [ "$all" = 1 ] && return 0
    sleep 0.5
  done
  echo "timed out waiting for ports $*" >&2
  return 1
}

# GS=<game-server binary> measures another build (e.g. a copy of the
# previous commit's) without rebuilding.
if [ -z "${GS:-}" ]; then
  log "building release binaries"
  (cd "$ROOT" && cargo build --release -p game-server -p shaddock-bench) >&2
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="${BENCH:-$TARGET_DIR/release/shaddock-bench}"
GS="${GS:-$TARGET_DIR/release/game-server}"

# ---------- ours ----------
OURS="$WORK/ours"
ours_config() {
  mkdir -p "$OURS/config" "$OURS/logs"
  local o=$OURS_OFF
  local servers
  servers=$(cat <<EOF
    "gate": [
      {"id": "gate-server-1", "host": "127.0.0.1", "clientPort": $((3014 + o)), "frontend": true}
    ],
    "connector": [
      {"id": "connector-server-1", "host": "127.0.0.1", "port": $((4050 + o)), "clientPort": $((3050 + o)), "frontend": true},
      {"id": "connector-server-2", "host": "127.0.0.1", "port": $((4051 + o)), "clientPort": $((3051 + o)), "frontend": true}
    ],
    "chat": [
      {"id": "chat-server-1", "host": "127.0.0.1", "port": $((6050 + o))},
      {"id": "chat-server-2", "host": "127.0.0.1", "port": $((6051 + o))}
    ]
EOF
)
  printf '{\n  "production": {\n%s\n  }\n}\n' "$servers" > "$OURS/config/servers.json"
  printf '{"production": {"id": "master-server-1", "host": "127.0.0.1", "port": %d}}\n' \
    $((3005 + o)) > "$OURS/config/master.json"
  # Production needs a cluster secret (docs/security.md).
  (umask 077; printf '{"production": {"secret": "%s"}}\n' \
    "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" > "$OURS/config/cluster.json")
  # Every robot connects from 127.0.0.1: lift the per-address and total
  # connection caps (docs/security.md) on the gate and the connectors — the
  # idle run holds 10 000 connections from one address on one connector and
  # the storm sends 10 000 logins through the gate from it (the rate per
  # address is off by default); the per-client budgets stay.
  # BUDGETS=off also turns the per-client request budgets off, to measure
  # what they cost on the hot path (docs/reliability.md).
  local extra=""
  if [ "${BUDGETS:-on}" = off ]; then
    extra=', "requests-per-second": 0, "max-inflight": 1000000, "max-queued-bytes": 1073741824'
  fi
  # CONNECTOR_JSON adds connector options, e.g. '"write-window-ms": 10'.
  local conn_extra="$extra${CONNECTOR_JSON:+, $CONNECTOR_JSON}"
  printf '{"production": {"%s": {"max-connections": 0, "max-connections-per-address": 0%s}, "%s": {"max-connections": 0, "max-connections-per-address": 0%s}}}\n' \
    gate "$extra" connector "$conn_extra" > "$OURS/config/connector.json"
}
ours_start() {
  ours_stop
  ours_config
  : > "$OURS/pids"
  local id
  for id in chat-server-1 chat-server-2 connector-server-1 connector-server-2 gate-server-1; do
    (cd "$OURS" || exit 1
     RUST_LOG="${RUST_LOG:-warn}" nohup "$GS" --env production --server-id "$id" \
       > "logs/$id.console.log" 2>&1 &
     echo $! >> "$OURS/pids")
  done
  wait_ports $((3014 + OURS_OFF)) $((3050 + OURS_OFF)) $((3051 + OURS_OFF)) \
    $((6050 + OURS_OFF)) $((6051 + OURS_OFF))
  sleep 1
  log "ours up: pids $(xargs < "$OURS/pids")"
}
ours_stop() {
  [ -f "$OURS/pids" ] || return 0
  local p
  for p in $(cat "$OURS/pids"); do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 40); do
    local left=0
    for p in $(cat "$OURS/pids"); do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.25
  done
  for p in $(cat "$OURS/pids"); do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$OURS/pids"
}
ours_connector1_pid() { sed -n 3p "$OURS/pids"; }

# ---------- pomelo ----------
POMELO="$WORK/pomelo"
pomelo_start() { # $1 = 0 (as shipped) | 1 (TCP_NODELAY)
  pomelo_stop
  "$ROOT/bench/scripts/pomelo_prepare.sh" "$POMELO" "$POMELO_OFF" >&2
  (cd "$POMELO" && POMELO_NODELAY="$1" ./run.sh) >&2
}
pomelo_stop() { [ -x "$POMELO/stop.sh" ] && (cd "$POMELO" && ./stop.sh) >&2 || true; }
pomelo_connector1_pid() { "$POMELO/pids.sh" --table | awk '/id=connector-server-1 /{print $1}'; }

cleanup() { ours_stop; pomelo_stop; }
trap cleanup EXIT

# ---------- scenarios ----------
# run_system <name> <start-cmd> <gate port> <connector-1 port> <topology> <pid-of-connector-1 cmd>
run_system() {
  local name="$1" start="$2" gate="ws://127.0.0.1:$3" conn1="ws://127.0.0.1:$4" topo="$5" c1pid="$6" i
  if [[ " $SCENARIOS " == *" idle "* ]]; then
    for i in $(seq 1 "$RUNS"); do
      $start
      log "$name: idle $IDLE_CLIENTS connections on one connector, hold ${IDLE_HOLD}s (run $i)"
      "$BENCH" idle --label "$name" --gate "$gate" --connector "$conn1" --pids "$($c1pid)" \
        -c "$IDLE_CLIENTS" --hold "$IDLE_HOLD" --json-out "$OUT/$name-idle-$i.json" | grep -v '^{' || true
    done
  fi
  if [[ " $SCENARIOS " == *" chat "* || " $SCENARIOS " == *" ramp "* ]]; then
    $start
  fi
  if [[ " $SCENARIOS " == *" chat "* ]]; then
    for i in $(seq 1 "$RUNS"); do
      log "$name: chat $CLIENTS clients, $ROOMS rooms, $RATE msg/s, ${DURATION}s (run $i)"
      "$BENCH" chat --label "$name" --gate "$gate" --topology "$topo" -c "$CLIENTS" -r "$ROOMS" \
        --rate "$RATE" -d "$DURATION" --json-out "$OUT/$name-chat-$i.json" | grep -v '^{' || true
    done
  fi
  if [[ " $SCENARIOS " == *" ramp "* ]]; then
    for i in $(seq 1 "$RUNS"); do
      log "$name: ramp $CLIENTS clients, $ROOMS rooms, rates $RAMP_RATES, ${RAMP_DURATION}s per step (run $i)"
      "$BENCH" chat --ramp --label "$name" --gate "$gate" --topology "$topo" -c "$CLIENTS" -r "$ROOMS" \
        --rates "$RAMP_RATES" --ramp-failures 2 -d "$RAMP_DURATION" --json-out "$OUT/$name-ramp-$i.json" | grep -v '^{' || true
    done
  fi
  if [[ " $SCENARIOS " == *" storm "* ]]; then
    for i in $(seq 1 "$RUNS"); do
      $start
      log "$name: login storm, $STORM_USERS users, $STORM_ROOMS rooms, $STORM_CONCURRENCY in flight (run $i)"
      "$BENCH" storm --label "$name" --gate "$gate" --topology "$topo" -c "$STORM_USERS" -r "$STORM_ROOMS" \
        --concurrency "$STORM_CONCURRENCY" --json-out "$OUT/$name-storm-$i.json" | grep -v '^{' || true
    done
  fi
}

for system in $SYSTEMS; do
  case "$system" in
    ours)
      run_system ours ours_start $((3014 + OURS_OFF)) $((3050 + OURS_OFF)) \
        "$OURS/config/servers.json" ours_connector1_pid
      ours_stop
      ;;
    pomelo)
      run_system pomelo "pomelo_start 0" $((3014 + POMELO_OFF)) $((3050 + POMELO_OFF)) \
        "$POMELO/game-server/config/servers.json" pomelo_connector1_pid
      pomelo_stop
      ;;
    pomelo-nodelay)
      run_system pomelo-nodelay "pomelo_start 1" $((3014 + POMELO_OFF)) $((3050 + POMELO_OFF)) \
        "$POMELO/game-server/config/servers.json" pomelo_connector1_pid
      pomelo_stop
      ;;
    *) echo "unknown system $system (ours, pomelo, pomelo-nodelay)" >&2; exit 2 ;;
  esac
done

log "results in $OUT"
python3 "$ROOT/bench/scripts/summarize.py" "$OUT" | tee "$OUT/summary.md"
if ls "$OUT"/*-ramp-*.json > /dev/null 2>&1; then
  # The plot's labels need a TrueType font (plotters with ab_glyph).
  if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ "$(id -u)" = 0 ]; then
    log "installing fonts-dejavu-core for the plot's labels"
    (apt-get install -y -q fonts-dejavu-core || { apt-get update -q && apt-get install -y -q fonts-dejavu-core; }) >&2 || true
  fi
  "$BENCH" plot "$OUT" >&2 || log "no plot: see the error above (shaddock-bench plot --font <file.ttf> $OUT)"
fi
