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
echo "== CLI story"
bash tests/cli_story.sh
echo "== cargo test"
cargo test --workspace
