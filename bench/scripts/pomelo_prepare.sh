#!/usr/bin/env bash
# Copy ../shared/pomelo-chat to a private, writable folder and move every port
# by an offset, so a benchmark never collides with a colleague's Pomelo or dev
# cluster on 3014/3050/3051 (and they never kill ours through a shared copy).
#   bench/scripts/pomelo_prepare.sh <dest> [offset]     (offset default 20000)
# Result: <dest>/run.sh, stop.sh, pids.sh work as documented, with gate
# 3014+offset, connectors 3050/3051+offset, rpc 4050/4051+offset, chat
# 6050/6051+offset, master 3005+offset.
set -euo pipefail
SRC="${POMELO_CHAT_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared/pomelo-chat}"
DEST="${1:?usage: pomelo_prepare.sh <dest> [offset]}"
OFF="${2:-20000}"
[ -d "$SRC" ] || { echo "pomelo-chat not found at $SRC (set POMELO_CHAT_SRC)" >&2; exit 1; }
if [ -f "$DEST/.pomelo.pid" ] && kill -0 "$(cat "$DEST/.pomelo.pid")" 2>/dev/null; then
  echo "$DEST is running; stop it first ($DEST/stop.sh)" >&2
  exit 1
fi
# Keep node_modules of an earlier copy (npm install takes a while).
if [ -d "$DEST/game-server/node_modules" ]; then
  mv "$DEST/game-server/node_modules" "$DEST.node_modules.keep"
fi
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -r "$SRC" "$DEST"
chmod -R u+w "$DEST"
if [ -d "$DEST.node_modules.keep" ]; then
  mv "$DEST.node_modules.keep" "$DEST/game-server/node_modules"
fi
for p in 3005 3014 3050 3051 4050 4051 6050 6051; do
  n=$((p + OFF))
  sed -i "s/\b$p\b/$n/g" "$DEST/game-server/config/servers.json" "$DEST/game-server/config/master.json" \
    "$DEST/run.sh" "$DEST/stop.sh"
done
echo "$DEST: gate 127.0.0.1:$((3014 + OFF)), connectors :$((3050 + OFF)) :$((3051 + OFF))"
