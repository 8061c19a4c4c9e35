#!/usr/bin/env bash
# Cold start, as a new user lives it: a fresh clone (no target/), then the
# README's run command, timed until the chat page answers and the master
# says every server is up. Then an incremental rebuild after touching one
# handler. Prints both times; leaves nothing running.
#
#   bash bench/scripts/cold_start.sh            # clone of this checkout's HEAD
#
# Run it alone: a compile on the same 2 cores doubles the figure. Crates
# already in ~/.cargo/registry are not downloaded again (say so when you
# report a figure).
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$(mktemp -d /tmp/shaddock-cold.XXXXXX)"
git clone -q "$SRC" "$DIR/app"
cd "$DIR/app"
unset CARGO_TARGET_DIR
echo "cold start in $DIR/app (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
start=$(ms)
setsid cargo shaddock start > "$DIR/start.log" 2>&1 &
pid=$!
cleanup() { cargo shaddock stop >/dev/null 2>&1 || true; kill -INT -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT
until curl -sf -o /dev/null http://127.0.0.1:3001/ && grep -q "all servers are up" "$DIR/start.log"; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "start exited:"; tail -20 "$DIR/start.log"; exit 1; fi
  sleep 1
done
cold=$(( $(ms) - start ))
printf 'cold start (fresh clone -> chat page answering, all servers up): %d.%01d s\n' $((cold / 1000)) $((cold % 1000 / 100))
grep -c ' Compiling ' "$DIR/start.log" | xargs printf 'crates compiled: %s\n'
grep ' Compiling ' "$DIR/start.log" | awk '{print $2}' | sort | uniq -d | xargs -r printf 'compiled twice: %s\n'
cleanup
trap - EXIT
# Incremental: touch one handler, rebuild the app as `start` does.
touch game-server/src/servers/chat/handler/chat_handler.rs
inc_start=$(ms)
cargo build --release -q -p game-server -p web-server
inc=$(( $(ms) - inc_start ))
printf 'incremental rebuild after touching one handler: %d.%01d s\n' $((inc / 1000)) $((inc % 1000 / 100))
echo "(load after: $(cut -d' ' -f1-3 /proc/loadavg)); logs in $DIR"
