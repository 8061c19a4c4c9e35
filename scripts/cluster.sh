#!/usr/bin/env bash
# Starts/stops the chat app's servers of config/servers.json as background
# processes, one per server (what `pomelo start -D` does, without a master).
#
#   scripts/cluster.sh start|stop|status [env]      (env: $SHADDOCK_ENV or development)
#
# Pids go to logs/<server-id>.pid, console output to logs/<server-id>.out,
# the server's own log to logs/<server-id>.log. `stop` signals only the
# recorded pids (SIGTERM: graceful), and only if they still run game-server.
# GAME_SERVER_BIN overrides the binary (default target/debug/game-server,
# built with cargo when missing). Needs python3 (or jq) to read the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-status}
env=${2:-${SHADDOCK_ENV:-development}}
bin=${GAME_SERVER_BIN:-target/debug/game-server}
mkdir -p logs

# Server ids of $env in servers.json order.
ids() {
  if command -v python3 >/dev/null; then
    python3 -c 'import json,sys
d=json.load(open("config/servers.json"))
if sys.argv[1] not in d: sys.exit("config/servers.json has no environment " + sys.argv[1])
print("\n".join(s["id"] for t in d[sys.argv[1]].values() for s in t))' "$env"
  else
    jq -er --arg e "$env" '.[$e] | to_entries[] | .value[] | .id' config/servers.json
  fi
}

# Pid of a running server from its pid file (empty if none / not ours).
pid_of() {
  local f="logs/$1.pid" pid
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "game-server.* --server-id $1 "; then
    echo "$pid"
  fi
}

case $cmd in
start)
  [[ -x $bin ]] || cargo build -p game-server
  # Like `shaddock start`: a development cluster gets a random secret
  # (docs/security.md); production must bring its own.
  if [[ ! -f config/cluster.json && -z ${SHADDOCK_CLUSTER_SECRET:-} && $env != production ]]; then
    (umask 077; printf '{"%s": {"secret": "%s"}}\n' "$env" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >config/cluster.json)
    echo "wrote a random cluster secret to config/cluster.json"
  fi
  mapfile -t all < <(ids)
  # Backends first (reverse file order), so connectors find them at once.
  for ((i = ${#all[@]} - 1; i >= 0; i--)); do
    id=${all[i]}
    if [[ -n $(pid_of "$id") ]]; then echo "$id already running"; continue; fi
    nohup "$bin" --env "$env" --server-id "$id" >"logs/$id.out" 2>&1 </dev/null &
    echo $! >"logs/$id.pid"
  done
  sleep 1
  failed=0
  for id in "${all[@]}"; do
    if [[ -n $(pid_of "$id") ]]; then echo "started $id (pid $(<"logs/$id.pid"))"
    else echo "FAILED $id:"; tail -n 3 "logs/$id.out"; rm -f "logs/$id.pid"; failed=1; fi
  done
  exit $failed
  ;;
stop)
  # Frontends first (file order), so their disconnects still reach the chat servers.
  for id in $(ids); do
    pid=$(pid_of "$id")
    if [[ -n $pid ]]; then
      kill -TERM "$pid"
      # pid_of, not kill -0: an exited but unreaped server is a zombie.
      for _ in $(seq 100); do [[ -n $(pid_of "$id") ]] || break; sleep 0.1; done
      if [[ -n $(pid_of "$id") ]]; then echo "$id (pid $pid) ignored SIGTERM for 10 s; killing"; kill -KILL "$pid"; fi
      echo "stopped $id"
    fi
    rm -f "logs/$id.pid"
  done
  ;;
status)
  for id in $(ids); do
    pid=$(pid_of "$id")
    if [[ -n $pid ]]; then echo "$id running (pid $pid)"; else echo "$id stopped"; fi
  done
  ;;
*)
  echo "usage: $0 start|stop|status [env]" >&2
  exit 2
  ;;
esac
