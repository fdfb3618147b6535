#!/usr/bin/env bash
# Runs every test of the time bank, failing fast: formatting, the UI's type check, component
# tests (Vitest) and browser tests with an accessibility scan (Playwright + axe in Chromium),
# lints, the CLI story, the typhoon test with real processes, the Rust unit, integration and
# property tests on SQLite and PostgreSQL (which also build the desktop app, once), and the
# end-to-end tests of the real desktop app under a virtual display. Installs what is missing
# and starts PostgreSQL first. The output ends with one total line over every runner.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
bash scripts/setup.sh
if [[ "${CI:-}" == "true" ]]; then
  export CARGO_TERM_COLOR=never
fi

if [[ "${TIMEBANK_SKIP_PG:-}" == "1" ]]; then
  echo "== PostgreSQL: skipped (TIMEBANK_SKIP_PG=1; CI never skips it)"
elif [[ -n "${TIMEBANK_PG_URL:-}" ]]; then
  echo "== PostgreSQL: using TIMEBANK_PG_URL as given"
else
  bash scripts/pg.sh
  export TIMEBANK_PG_URL=postgres://postgres@127.0.0.1:5432/postgres
  export TIMEBANK_PG_SOCKET_URL='postgres://postgres@localhost/postgres?host=/var/run/postgresql'
fi

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== UI: type check, build, component tests (Vitest)"
(cd ui && npm run --silent build && NO_COLOR=1 npx vitest run 2>&1) | tee -a "$LOG"
echo "== UI: browser tests with the accessibility scan (Playwright + axe, Debian's Chromium)"
(cd ui && node tests/browser/run.mjs 2>&1) | tee -a "$LOG"
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== CLI story"
if [[ -f tests/cli_story.sh ]]; then
  bash tests/cli_story.sh | tee -a "$LOG"
else
  echo "notice: tests/cli_story.sh does not exist yet; skipping the CLI story"
fi
echo "== typhoon: the city server and a device as real processes"
bash tests/typhoon.sh 2>&1 | grep -v "INFO" | tee -a "$LOG"
echo "== cargo test (builds the desktop app with its embedded UI, once per run)"
# The same features as the app the end-to-end tests run, so that Tauri is built only once.
cargo test --workspace --features timebank-app/custom-protocol 2>&1 | tee -a "$LOG"
echo "== end to end: the real desktop app under a virtual display (tauri-driver, WebKitWebDriver)"
TIMEBANK_APP="$PWD/target/debug/timebank-app" TIMEBANK_SERVER="$PWD/target/debug/timebank-server" \
  xvfb-run -a -s '-screen 0 1280x800x24' dbus-run-session -- node tests/e2e/run.mjs 2>&1 |
  grep -v -e 'dbus-daemon' -e 'SpiRegistry' -e 'sea_orm_migration' | tee -a "$LOG"

# One closing line for everything that ran: cargo's "test result" lines, Vitest's "Tests" line
# and the "[name: ]N passed, M failed" lines of the story, the typhoon, the browser and the
# end-to-end runs. Fails if anything failed or nothing ran.
python3 - "$LOG" <<'PY'
import re, sys
passed = failed = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", line) or re.match(
        r"^(?:[\w -]+: )?(\d+) passed, (\d+) failed$", line.strip()
    )
    v = re.match(r"^Tests\s+(?:(\d+) failed \| )?(\d+) passed", line.strip())
    if m:
        passed += int(m.group(1))
        failed += int(m.group(2))
    elif v:
        passed += int(v.group(2))
        failed += int(v.group(1) or 0)
print(f"total: {passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
PY
