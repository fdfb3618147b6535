#!/usr/bin/env bash
# Takes the README's screenshots from the real app (debug build with the embedded UI), with a
# local city server and the demo data, under a virtual display. Writes docs/screenshots/*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd ui && npm run --silent build)
cargo build -p timebank-server -p timebank-app --features timebank-app/custom-protocol
WORK=$(mktemp -d)
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
S=target/debug/timebank-server
"$S" init --demo --data-dir "$WORK/server" >/dev/null
CODE=$("$S" enrol --data-dir "$WORK/server" | tail -n 1)
PORT=18722
"$S" serve --data-dir "$WORK/server" --listen "127.0.0.1:$PORT" 2>/dev/null &
SERVER_PID=$!
sleep 1
mkdir -p docs/screenshots
APP="$PWD/target/debug/timebank-app" SERVER_URL="http://127.0.0.1:$PORT" CODE="$CODE" WORK="$WORK" \
  OUT="$PWD/docs/screenshots" \
  xvfb-run -a -s '-screen 0 1280x800x24' dbus-run-session -- node scripts/screenshots.mjs 2>&1 |
  grep -v -e dbus-daemon -e SpiRegistry -e sea_orm_migration
