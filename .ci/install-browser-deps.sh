#!/usr/bin/env bash
# Installs what the browser end-to-end test (web-server/tests/browser.rs →
# web-server/e2e/chat.e2e.mjs) needs, on a fresh Debian machine:
#   * Debian's chromium (/usr/bin/chromium) and a CJK font, only when missing;
#   * playwright-core, pinned by web-server/e2e/package-lock.json (npm ci).
# Idempotent: a second run installs nothing new (npm ci is skipped when
# node_modules already matches the lock). Safe to run by hand:
#   bash .ci/install-browser-deps.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# One run at a time: the browser tests run in parallel and each may call
# this script; two apt-get runs at once fail on dpkg's lock (exit 100).
exec 9>"${TMPDIR:-/tmp}/shaddock-install-browser-deps.lock"
flock 9

# chromium drives the test; a CJK font lets Chinese names and messages (the
# page allows them) render as text instead of boxes in the screenshots.
want=()
[ -x /usr/bin/chromium ] || want+=(chromium)
dpkg-query -W -f='${Status}' fonts-wqy-microhei 2>/dev/null | grep -q "ok installed" || want+=(fonts-wqy-microhei)
if [ "${#want[@]}" -gt 0 ]; then
  echo "install-browser-deps: apt-get install ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${want[@]}" fonts-dejavu-core
else
  echo "install-browser-deps: chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo '?'))"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-browser-deps: node and npm are required (apt-get install -y nodejs npm)" >&2
  exit 1
fi

E2E=web-server/e2e
lock="$E2E/package-lock.json"
stamp="$E2E/node_modules/.package-lock.json"
# npm writes node_modules/.package-lock.json on install; if it is newer than
# the committed lock, the tree already matches and `npm ci` would only
# re-download the same files.
if [ -f "$stamp" ] && [ "$stamp" -nt "$lock" ] && [ -d "$E2E/node_modules/playwright-core" ]; then
  echo "install-browser-deps: $E2E/node_modules up to date"
else
  echo "install-browser-deps: npm ci in $E2E"
  (cd "$E2E" && npm ci --no-audit --no-fund)
fi
echo "install-browser-deps: done"
