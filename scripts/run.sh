#!/usr/bin/env bash
# The main job: installs what is needed, builds the `timebank` CLI, creates a demo center
# database with realistic data and shows it. (The desktop app and the city server come with
# the next issues; this command will then launch them.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -q -p timebank-cli
TB="$PWD/target/release/timebank"
HOME_DIR="${TIMEBANK_HOME:-$HOME/.local/share/timebank}"
mkdir -p "$HOME_DIR"
DB="$HOME_DIR/demo.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
export TIMEBANK_DB="$DB"
"$TB" demo
echo
echo "== 仪表盘 Dashboard (staff 13900000002)"
"$TB" --as 13900000002 dashboard
echo
echo "== 待接订单 Order board of volunteer 马军 (13700000003)"
"$TB" --as 13700000003 order board | head -n 12
echo
echo "== 时间账户 Ma Jun's time account"
"$TB" --as 13700000003 account balance --limit 5
echo
echo "== 账本核对 Ledger verify"
"$TB" ledger verify
echo
echo "The demo database is $DB. Try for example:"
echo "  $TB --db $DB --as 13700000002 order list"
echo "  $TB --db $DB --as 13700000003 account statement"
echo "  $TB --db $DB --help"
