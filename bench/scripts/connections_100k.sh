#!/usr/bin/env bash
# 100 000 concurrent connections held 60 s with heartbeats (issue 13, item 4):
# our chat app with 7 connectors, and 7 robot processes (`shaddock-bench idle`)
# each holding ~14 300 connections spread over every connector and over its
# own source addresses (127.0.0.x), all holding over the same window.
#
#   bench/scripts/connections_100k.sh
#   TOTAL=20000 HOLD=10 bench/scripts/connections_100k.sh     # a quick pass
#
# Why split (docs/benchmarks.md, "100 000 connections"): a process may hold at
# most `ulimit -Hn` (20 000 here) open files, servers and robots alike, so no
# connector and no robot holds more than ~15 000 sockets; one source address
# offers only the ephemeral port range (32768-60999: ~28 000 ports, and a
# robot binding its address takes a port per connection whatever the
# destination), so each robot uses SOURCES_PER_ROBOT addresses of its own.
#
# Prints and writes to $OUT/connections_100k.json: connections reached (robots'
# count and the connectors' established sockets from `ss`), disconnects during
# the hold, RSS per connection on each connector, the connectors' and robots'
# CPU during the hold (heartbeats: one each way per connection every 3 s).
#
# Knobs: TOTAL (100000), CONNECTORS (7), ROBOTS (7), SOURCES_PER_ROBOT (2),
# HOLD (60 s), CONNECT_RATE (per robot, 500/s), BASE_PORT (15000: gate
# BASE+14, connectors' client ports BASE+50.., cluster ports BASE+1050..,
# chat BASE+2050..; all below the ephemeral range), WORK
# (/tmp/shaddock-bench-100k), OUT (target/bench/100k-<time>), NO_BUILD=1,
# GS / BENCH (the game-server and shaddock-bench binaries to run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOTAL="${TOTAL:-100000}"
CONNECTORS="${CONNECTORS:-7}"
ROBOTS="${ROBOTS:-7}"
SOURCES_PER_ROBOT="${SOURCES_PER_ROBOT:-2}"
HOLD="${HOLD:-60}"
CONNECT_RATE="${CONNECT_RATE:-500}"
BASE="${BASE_PORT:-15000}"
WORK="${WORK:-/tmp/shaddock-bench-100k}"
OUT="${OUT:-$ROOT/target/bench/100k-$(date +%Y%m%d-%H%M%S)}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="${BENCH:-$TARGET_DIR/release/shaddock-bench}"
GS="${GS:-$TARGET_DIR/release/game-server}"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "connections_100k: $*" >&2; exit 1; }

# ---------- limits of this machine ----------
HARD=$(ulimit -Hn)
ulimit -n "$HARD"
PER_ROBOT=$(( (TOTAL + ROBOTS - 1) / ROBOTS ))
PER_CONNECTOR=$(( (TOTAL + CONNECTORS - 1) / CONNECTORS ))
read -r PORT_LO PORT_HI < /proc/sys/net/ipv4/ip_local_port_range
PORTS=$(( PORT_HI - PORT_LO + 1 ))
PER_SOURCE=$(( (PER_ROBOT + SOURCES_PER_ROBOT - 1) / SOURCES_PER_ROBOT ))
TIME_WAIT=$(ss -Htan state time-wait 2>/dev/null | wc -l)
log "open files: hard limit $HARD; $PER_ROBOT sockets per robot, $PER_CONNECTOR per connector"
log "ephemeral ports $PORT_LO-$PORT_HI ($PORTS per source address); $PER_SOURCE connections per source address; $TIME_WAIT sockets in TIME-WAIT now"
[ $((PER_ROBOT + 300)) -le "$HARD" ] || die "$PER_ROBOT sockets per robot exceed the open-files limit $HARD: raise ROBOTS"
[ $((PER_CONNECTOR + 500)) -le "$HARD" ] || die "$PER_CONNECTOR connections per connector exceed the open-files limit $HARD: raise CONNECTORS"
[ $((PER_SOURCE + 2000)) -lt "$PORTS" ] || die "$PER_SOURCE connections per source address come too close to the $PORTS ephemeral ports: raise SOURCES_PER_ROBOT"
# A robot that binds its source address cannot reuse a port still in
# TIME-WAIT on that address (tcp_tw_reuse helps connect(), not bind()), so an
# earlier run's leftovers count against the same addresses for 60 s.
[ "$TIME_WAIT" -lt $((PORTS - PER_SOURCE)) ] || log "WARNING: $TIME_WAIT sockets in TIME-WAIT: if connects fail with 'Address already in use', wait a minute"
[ $((ROBOTS * SOURCES_PER_ROBOT)) -le 240 ] || die "at most 240 source addresses (127.0.0.10-127.0.0.249)"
if [ -r /proc/sys/net/netfilter/nf_conntrack_max ]; then
  CT_MAX=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
  [ "$CT_MAX" -gt $((TOTAL + TIME_WAIT + 10000)) ] || log "WARNING: nf_conntrack_max $CT_MAX is close to $TOTAL connections: connects may be dropped"
fi

mkdir -p "$OUT" "$WORK"
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building release binaries"
  (cd "$ROOT" && cargo build --release -p game-server -p shaddock-bench) >&2
fi
[ -x "$BENCH" ] && [ -x "$GS" ] || die "$BENCH or $GS missing: cargo build --release -p game-server -p shaddock-bench"

# ---------- the app: 1 gate, CONNECTORS connectors, 2 chat servers ----------
APP="$WORK/app"
PIDS="$WORK/pids"
conn_ids=()
conn_ports=()
for i in $(seq 1 "$CONNECTORS"); do
  conn_ids+=("connector-server-$i")
  conn_ports+=($((BASE + 49 + i)))
done
write_config() {
  rm -rf "$APP"
  mkdir -p "$APP/config" "$APP/logs"
  local conns="" i
  for i in $(seq 1 "$CONNECTORS"); do
    [ -n "$conns" ] && conns+=","
    conns+="{\"id\": \"connector-server-$i\", \"host\": \"127.0.0.1\", \"port\": $((BASE + 1049 + i)), \"clientPort\": $((BASE + 49 + i)), \"frontend\": true}"
  done
  cat > "$APP/config/servers.json" <<EOF
{"production": {
  "gate": [{"id": "gate-server-1", "host": "127.0.0.1", "clientPort": $((BASE + 14)), "frontend": true}],
  "connector": [$conns],
  "chat": [{"id": "chat-server-1", "host": "127.0.0.1", "port": $((BASE + 2050))},
           {"id": "chat-server-2", "host": "127.0.0.1", "port": $((BASE + 2051))}]
}}
EOF
  printf '{"production": {"id": "master-server-1", "host": "127.0.0.1", "port": %d}}\n' \
    $((BASE + 5)) > "$APP/config/master.json"
  (umask 077; printf '{"production": {"secret": "%s"}}\n' \
    "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" > "$APP/config/cluster.json")
  # Connector limits (docs/security.md): 20 000 connections per frontend is
  # the default and the open-files limit anyway; say 19 000 so the connector
  # refuses cleanly before accept() fails. Per address (default 256): off,
  # the robots are a few addresses on purpose. The rate per address is off by
  # default. Heartbeats stay the default 3 s.
  cat > "$APP/config/connector.json" <<EOF
{"production": {"connector": {"max-connections": 19000, "max-connections-per-address": 0},
                "gate": {"max-connections-per-address": 0}}}
EOF
}
servers_stop() {
  [ -f "$PIDS" ] || return 0
  local p
  for p in $(cut -d' ' -f2 "$PIDS"); do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 60); do
    local left=0
    for p in $(cut -d' ' -f2 "$PIDS"); do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.5
  done
  for p in $(cut -d' ' -f2 "$PIDS"); do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$PIDS"
}
robot_pids=()
cleanup() {
  local p
  for p in "${robot_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  servers_stop
}
trap cleanup EXIT

servers_stop
write_config
: > "$PIDS"
for id in chat-server-1 chat-server-2 "${conn_ids[@]}" gate-server-1; do
  # `cd` first on its own: `$!` must be the server's pid, not a subshell's.
  (cd "$APP" || exit 1
   RUST_LOG="${RUST_LOG:-warn}" nohup "$GS" --env production --server-id "$id" \
     > "logs/$id.console.log" 2>&1 &
   echo "$id $!" >> "$PIDS")
done
listening() { ss -Hltn 2>/dev/null | awk '{print $4}' | grep -q ":$1\$"; }
for _ in $(seq 1 120); do
  all=1
  for p in "${conn_ports[@]}" $((BASE + 14)); do listening "$p" || all=0; done
  [ "$all" = 1 ] && break
  sleep 0.5
done
[ "$all" = 1 ] || die "servers did not listen within 60 s; logs in $APP/logs"
sleep 1
log "servers up: $(tr '\n' ' ' < "$PIDS")"

# ---------- samples: <phase> <id> <pid> <rss kB> <cpu ticks> <established> ----------
SAMPLES="$OUT/samples.tsv"
: > "$SAMPLES"
sample() { # $1 = phase
  local id pid port rss cpu est
  while read -r id pid; do
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    cpu=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    est=0
    if [[ "$id" == connector-server-* ]]; then
      port=$((BASE + 49 + ${id##*-}))
      est=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$id" "$pid" "${rss:-0}" "${cpu:-0}" "$est" \
      "$(date +%s.%N)" >> "$SAMPLES"
  done < "$PIDS"
}
sample before

# ---------- robots ----------
urls=()
for p in "${conn_ports[@]}"; do urls+=("ws://127.0.0.1:$p"); done
rm -f "$WORK"/ready-* "$WORK/go"
left=$TOTAL
for r in $(seq 0 $((ROBOTS - 1))); do
  n=$(( left < PER_ROBOT ? left : PER_ROBOT ))
  left=$((left - n))
  [ "$n" -gt 0 ] || break
  # Each robot starts its round robin at another connector, so the
  # remainders do not all land on connector 1.
  list=""
  for k in $(seq 0 $((CONNECTORS - 1))); do
    list+="${list:+,}${urls[$(( (r + k) % CONNECTORS ))]}"
  done
  srcs=""
  for s in $(seq 0 $((SOURCES_PER_ROBOT - 1))); do
    srcs+="${srcs:+,}127.0.0.$((10 + r * SOURCES_PER_ROBOT + s))"
  done
  "$BENCH" idle --label "100k-robot-$r" --connector "$list" --source-addrs "$srcs" -c "$n" \
    --connect-rate "$CONNECT_RATE" --hold "$HOLD" --settle 1 --quiet \
    --ready-file "$WORK/ready-$r" --go-file "$WORK/go" --go-timeout 1200 \
    --json-out "$OUT/robot-$r.json" > "$OUT/robot-$r.log" 2>&1 &
  robot_pids+=($!)
  log "robot $r (pid $!): $n connections from $srcs"
done

log "waiting for every robot to connect (at $CONNECT_RATE/s each: ~$((PER_ROBOT / CONNECT_RATE + 5)) s)"
deadline=$(( $(date +%s) + 1200 ))
while :; do
  ready=$(find "$WORK" -maxdepth 1 -name 'ready-*' | wc -l)
  [ "$ready" -ge "${#robot_pids[@]}" ] && break
  for i in "${!robot_pids[@]}"; do
    kill -0 "${robot_pids[$i]}" 2>/dev/null || [ -f "$WORK/ready-$i" ] \
      || die "robot $i exited before connecting: $(tail -3 "$OUT/robot-$i.log")"
  done
  [ "$(date +%s)" -lt "$deadline" ] || die "robots not connected within 1200 s"
  sleep 1
done
sample connected
touch "$WORK/go"
GO=$(date +%s)
log "all robots connected; holding ${HOLD}s"
sleep $(( HOLD > 3 ? HOLD - 2 : 1 ))
sample end
for i in "${!robot_pids[@]}"; do
  wait "${robot_pids[$i]}" || log "robot $i failed: $(tail -3 "$OUT/robot-$i.log")"
done
robot_pids=()
log "robots done ($(( $(date +%s) - GO )) s after go)"

# ---------- report ----------
python3 - "$OUT" "$TOTAL" "$HOLD" "$(getconf CLK_TCK)" "$(cat /proc/loadavg)" <<'EOF'
import json, sys
from pathlib import Path
out, total, hold, tck, load = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
samples = {}
for line in (out / "samples.tsv").read_text().splitlines():
    phase, sid, pid, rss, cpu, est, t = line.split("\t")
    samples.setdefault(sid, {})[phase] = dict(rss=int(rss), cpu=float(cpu) / tck, est=int(est), t=float(t))
robots = []
for f in sorted(out.glob("robot-*.json")):
    try:
        robots.append(json.loads(f.read_text())["idle"])
    except (ValueError, KeyError) as e:
        print(f"{f.name}: no report ({e})", file=sys.stderr)
connectors = []
for sid, s in sorted(samples.items()):
    if not sid.startswith("connector-") or not {"before", "connected", "end"} <= s.keys():
        continue
    n = s["connected"]["est"]
    span = s["end"]["t"] - s["connected"]["t"]
    connectors.append(dict(
        id=sid, connections=n, connections_end=s["end"]["est"],
        rss_before_kb=s["before"]["rss"], rss_connected_kb=s["connected"]["rss"], rss_end_kb=s["end"]["rss"],
        rss_per_conn_kb=(s["connected"]["rss"] - s["before"]["rss"]) / n if n else None,
        rss_per_conn_end_kb=(s["end"]["rss"] - s["before"]["rss"]) / n if n else None,
        cores_hold=(s["end"]["cpu"] - s["connected"]["cpu"]) / span if span > 0 else None))
others = {sid: s for sid, s in samples.items() if not sid.startswith("connector-")}
result = dict(
    total_target=total,
    connected_robots=sum(r["connected"] for r in robots),
    connect_errors=sum(r["connect_errors"] for r in robots),
    established_on_connectors=sum(c["connections"] for c in connectors),
    established_at_end=sum(c["connections_end"] for c in connectors),
    disconnects=sum(r["disconnects"] for r in robots),
    hold_s=min((r["hold_s"] for r in robots), default=0.0),
    robots=len(robots),
    robot_cpu_s=sum(r["robot_cpu_s"] for r in robots),
    robot_cores_hold=sum(r["robot_cores_hold"] for r in robots),
    robot_rss_kb=sum(r["robot_rss_kb"] for r in robots),
    connect_s_max=max((r["connect_s"] for r in robots), default=0.0),
    connectors=connectors,
    other_servers_rss_kb={k: v.get("end", {}).get("rss") for k, v in others.items()},
    loadavg_end=load,
)
result["pass"] = (result["established_on_connectors"] >= total and result["disconnects"] == 0
                  and result["connect_errors"] == 0 and result["hold_s"] >= hold - 0.5)
(out / "connections_100k.json").write_text(json.dumps(result, indent=2) + "\n")
print(f"connections: {result['connected_robots']} by the robots ({result['connect_errors']} errors), "
      f"{result['established_on_connectors']} established on {len(connectors)} connectors "
      f"({result['established_at_end']} at the end of the hold)")
print(f"held {result['hold_s']:.0f} s: {result['disconnects']} disconnects")
print("| connector | connections | RSS before MB | RSS KB/conn (open) | (end of hold) | cores during hold |")
print("|---|---|---|---|---|---|")
f = lambda v, d=2: "–" if v is None else f"{v:.{d}f}"
for c in connectors:
    print(f"| {c['id']} | {c['connections']} | {c['rss_before_kb'] / 1024:.1f} | {f(c['rss_per_conn_kb'])} "
          f"| {f(c['rss_per_conn_end_kb'])} | {f(c['cores_hold'])} |")
print(f"robots: {result['robots']} processes, CPU {result['robot_cpu_s']:.1f} s in all, "
      f"{result['robot_cores_hold']:.2f} cores during the hold, RSS {result['robot_rss_kb'] / 1024:.0f} MB; "
      f"slowest connect phase {result['connect_s_max']:.0f} s; load average at the end: {load}")
print(("PASS" if result["pass"] else "FAIL") + f": {total} connections held {hold:.0f} s with 0 disconnects")
print(f"JSON: {out / 'connections_100k.json'}")
sys.exit(0 if result["pass"] else 1)
EOF
