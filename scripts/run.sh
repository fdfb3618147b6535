#!/usr/bin/env bash
# The main job: installs what is needed, builds the `timebank` CLI, creates a demo center
# database with realistic data (recreated on every run) and shows it working: the center's
# dashboard, the demo volunteer's order board, their time account and the ledger check.
# (The desktop app is a later issue; this command will then launch it.)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
bash scripts/setup.sh
# Variables of the user's shell that would change what the demo shows.
unset TIMEBANK_AS TIMEBANK_NOW

echo "== 构建 Building the timebank CLI (release; several minutes the first time)"
cargo build --release -p timebank-cli
TB="$PWD/target/release/timebank"

DATA="${TIMEBANK_HOME:-$HOME/.local/share/timebank}"
DB="$DATA/demo.db"
mkdir -p "$DATA"
rm -f "$DB" "$DB-wal" "$DB-shm"

echo
echo "== 演示数据 Creating the demo database $DB"
SUMMARY=$("$TB" --db "$DB" demo --json)
# The demo's key people, read from its JSON summary.
field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$SUMMARY" "$1"; }
VOLUNTEER=$(field volunteer_phone)
STAFF=$(field staff_phone)
echo "  $(field members) members, $(field orders) orders, $(field activities) activities"
echo "  管理员 admin               --as $(field admin_phone)"
echo "  工作人员 staff             --as $STAFF"
echo "  志愿者 volunteer 马军      --as $VOLUNTEER"
echo "  家属 family 王秀芝         --as $(field family_phone)"
echo "  老人 elder 王德明          --as $(field elder_phone) (PIN $(field elder_pin))"

echo
echo "== 仪表盘 Dashboard of the center"
"$TB" --db "$DB" dashboard

echo
echo "== 待接订单 Order board of the volunteer $VOLUNTEER"
BOARD=$("$TB" --db "$DB" order board --as "$VOLUNTEER")
sed -n 1,15p <<<"$BOARD"
if [[ $(wc -l <<<"$BOARD") -gt 15 ]]; then
  echo "  ... ($(wc -l <<<"$BOARD") lines in all)"
fi

echo
echo "== 时间账户 The volunteer's time account (last 5 entries)"
"$TB" --db "$DB" account balance --as "$VOLUNTEER" --limit 5

echo
echo "== 账本核对 Ledger verify"
"$TB" --db "$DB" ledger verify

echo
echo "The demo database is $DB. Try for example:"
echo "  $TB --db $DB --as $VOLUNTEER account statement"
echo "  $TB --db $DB --as $STAFF order list --community 府苑新村"
echo "  $TB --db $DB --lang en --as $STAFF dashboard"
echo "  $TB --help"
