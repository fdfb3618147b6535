#!/usr/bin/env bash
# Runs every test of the time bank, failing fast: formatting, lints, the CLI story, then the
# Rust unit, integration and property tests on SQLite and PostgreSQL. Installs what is missing
# and starts PostgreSQL first. The output ends with cargo's test summaries and one total line
# (cargo tests plus the CLI story).
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
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
echo "== CLI story"
if [[ -f tests/cli_story.sh ]]; then
  bash tests/cli_story.sh | tee -a "$LOG"
else
  echo "notice: tests/cli_story.sh does not exist yet; skipping the CLI story"
fi
echo "== typhoon: the city server and a device as real processes"
bash tests/typhoon.sh 2>&1 | grep -v "INFO" | tee -a "$LOG"
echo "== cargo test"
cargo test --workspace 2>&1 | tee -a "$LOG"

# One closing line for everything that ran: cargo's "test result" lines and the story's
# "N passed, M failed" line. Fails if anything failed or nothing ran.
python3 - "$LOG" <<'PY'
import re, sys
passed = failed = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", line) or re.match(
        r"^(\d+) passed, (\d+) failed$", line.strip()
    )
    if m:
        passed += int(m.group(1))
        failed += int(m.group(2))
print(f"total: {passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
PY
