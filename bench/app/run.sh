#!/usr/bin/env bash
# Desktop app benchmark: release builds of the app and of a bare Tauri hello-world, a local
# city server with the demo data, both measured under a virtual display. Prints figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
(cd ui && npm run --silent build)
cargo build --release -p timebank-server -p timebank-app -p tauri-hello --features timebank-app/custom-protocol,tauri-hello/custom-protocol
WORK=$(mktemp -d)
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
S=target/release/timebank-server
"$S" init --demo --data-dir "$WORK/server" >/dev/null
CODE=$("$S" enrol --data-dir "$WORK/server" | tail -n 1)
PORT=18721
"$S" serve --data-dir "$WORK/server" --listen "127.0.0.1:$PORT" 2>/dev/null &
SERVER_PID=$!
sleep 1
APP="$PWD/target/release/timebank-app" HELLO="$PWD/target/release/tauri-hello" \
  SERVER_URL="http://127.0.0.1:$PORT" CODE="$CODE" WORK="$WORK" \
  xvfb-run -a -s '-screen 0 1280x800x24' dbus-run-session -- node bench/app/bench.mjs 2>&1 |
  grep -v -e dbus-daemon -e SpiRegistry -e sea_orm_migration
