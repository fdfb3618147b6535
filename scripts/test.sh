#!/usr/bin/env bash
# Runs every test of the time bank: formatting, lints, the CLI story, and the Rust unit and
# integration tests on SQLite and PostgreSQL. Ends with cargo's test summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/pg.sh
if [[ "${CI:-}" == "true" ]]; then
  export CARGO_TERM_COLOR=never
fi
export TIMEBANK_PG_URL="${TIMEBANK_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
echo "== CLI story"
bash tests/cli_story.sh | tee -a "$LOG"
echo "== cargo test"
cargo test --workspace 2>&1 | tee -a "$LOG"
# One closing line for everything that ran: the cargo test results and the CLI story.
python3 - "$LOG" <<'PY'
import re, sys
passed = failed = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", line) or re.match(r"^(\d+) passed, (\d+) failed$", line.strip())
    if m:
        passed += int(m.group(1))
        failed += int(m.group(2))
print(f"total: {passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
PY
