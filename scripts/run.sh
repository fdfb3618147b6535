#!/usr/bin/env bash
# The main job: installs what is needed, builds the city server and the desktop app (release;
# several minutes the first time), starts a local city server on its embedded default (SQLite
# in a data directory) with the demo data, and launches the desktop app enrolled to it as a
# community center workstation. Closing the app stops the server. Without a display (a server
# or CI machine) the app runs under a virtual display and a screenshot is saved.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
bash scripts/setup.sh
unset TIMEBANK_DATA_DIR TIMEBANK_ENROL_SERVER TIMEBANK_ENROL_CODE DATABASE_URL

echo "== 构建 Building the UI, the city server and the desktop app (release)"
(cd ui && npm run --silent build)
cargo build --release -p timebank-server -p timebank-app --features timebank-app/custom-protocol
SERVER="$PWD/target/release/timebank-server"
APP="$PWD/target/release/timebank-app"

HOME_DIR="${TIMEBANK_HOME:-$HOME/.local/share/timebank}/run"
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR"
PORT="${TIMEBANK_PORT:-8620}"

echo "== 城市服务器 Creating the city server's demo data in $HOME_DIR/server"
"$SERVER" init --demo --data-dir "$HOME_DIR/server" >"$HOME_DIR/demo.json"
CODE=$("$SERVER" enrol --data-dir "$HOME_DIR/server" | tail -n 1)
"$SERVER" serve --data-dir "$HOME_DIR/server" --listen "127.0.0.1:$PORT" 2>"$HOME_DIR/server.log" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "  city server: http://127.0.0.1:$PORT (log: $HOME_DIR/server.log)"

cat <<TXT

== 桌面应用 Launching the desktop app, enrolled to the city server as a center workstation
  Sign in (PIN 1234 for everyone below; the elder 王德明 confirms visits with PIN 2468):
    周建华  administrator and staff      沈伟  staff of 府苑新村
    王秀芝  family of 王德明              马军  volunteer
  App data and logs: $HOME_DIR/app
TXT

ARGS=(--data-dir "$HOME_DIR/app" --enrol-server "http://127.0.0.1:$PORT" --enrol-code "$CODE")
if [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]; then
  "$APP" "${ARGS[@]}"
else
  SHOT="$PWD/target/run-screenshot.png"
  echo "  No display here: running under a virtual display; a screenshot goes to $SHOT."
  echo "  Press Ctrl-C to stop."
  xvfb-run -a -s '-screen 0 1280x800x24' dbus-run-session -- bash -c '
    "$0" "${@:2}" & APP=$!
    sleep 12; import -window root "$1" && echo "  screenshot saved: $1"
    wait $APP' "$APP" "$SHOT" "${ARGS[@]}" 2>&1 | grep -v -e dbus-daemon -e SpiRegistry || true
fi
