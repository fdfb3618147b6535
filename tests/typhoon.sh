#!/usr/bin/env bash
# The typhoon story with real processes on loopback: the city server binary and a center's
# `timebank` device. The server goes down, the center keeps taking and completing orders,
# the server comes back, everything converges and nothing is lost; then `kill -9` of the
# server and of the device in the middle of a sync, restart, converge.
# Run from the repository root: bash tests/typhoon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p timebank-cli -p timebank-server
TB="$PWD/target/debug/timebank"
SRV="$PWD/target/debug/timebank-server"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "FAILED - $1"; }
check() { if [[ "$2" == "$3" ]]; then ok "$1"; else no "$1"; echo "  expected: $2"; echo "  got:      $3"; fi; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
export TIMEBANK_DATA_DIR="$WORK/server"
CITY="$WORK/server/city.db"
start_server() {
  "$SRV" serve --listen "127.0.0.1:$PORT" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -fsS "$URL/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}
q() { python3 - "$1" "$2" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print("\n".join("|".join(str(x) for x in r) for r in c.execute(sys.argv[2])))
PY
}
same() { # same NAME SQL: the query gives the same answer on the device and the server
  check "$1" "$(q "$CITY" "$2")" "$(q "$DEV" "$2")"
}

"$SRV" init --community 府苑新村 --community 蒋村花园 >/dev/null
start_server
CODE=$("$SRV" enrol)
export TIMEBANK_DB="$WORK/center.db"
DEV="$TIMEBANK_DB"
"$TB" enrol --server "$URL" --code "$CODE" --name 蒋村服务中心前台 >/dev/null
check "the device got the administrator from the server" "13900000001" "$(q "$DEV" "SELECT phone FROM members")"
ADMIN=13900000001
"$TB" --as $ADMIN member add --name 李红 --phone 13900000002 --birth 1982-03-12 --community 府苑新村 --roles staff >/dev/null
STAFF=13900000002
"$TB" --as $STAFF member add --name 王德明 --phone 13700000001 --birth 1941-08-15 --community 府苑新村 --roles resident --address "府苑新村12幢" >/dev/null
"$TB" --as $STAFF member add --name 马军 --phone 13700000003 --birth 1985-10-01 --community 府苑新村 --roles resident,volunteer --fields daily_living,emergency >/dev/null
"$TB" --as $STAFF member verify 13700000003 >/dev/null
"$TB" --as $STAFF member pin 13700000001 --pin 2468 >/dev/null
"$TB" sync >/dev/null
same "members reached the server" "SELECT id, name, phone FROM members ORDER BY id"

# The typhoon: the server goes down; the center keeps working.
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
# (The visit happened during the last three hours; device clocks are never ahead of the
# server's here, which clamps them.)
NOW=$(date +%s%3N)
ORDER=$(TIMEBANK_NOW=$((NOW - 10800000)) "$TB" --as $STAFF --json order post --for 13700000001 --service typhoon_check --urgent --description "台风天，请上门查看门窗" --place-hint 府苑新村12幢 --minutes 60 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
TIMEBANK_NOW=$((NOW - 10200000)) "$TB" --as 13700000003 order accept "$ORDER" >/dev/null
TIMEBANK_NOW=$((NOW - 7200000)) "$TB" --as 13700000003 order check-in "$ORDER" >/dev/null
TIMEBANK_NOW=$((NOW - 3600000)) "$TB" --as 13700000003 order check-out "$ORDER" >/dev/null
TIMEBANK_NOW=$((NOW - 3500000)) "$TB" --as 13700000003 order confirm "$ORDER" --pin 2468 >/dev/null
rc=0; OUT=$("$TB" sync 2>&1) || rc=$?
check "sync says offline while the server is down" "4" "$rc"
[[ "$OUT" == *"离线"* ]] && ok "the message says offline in plain words" || { no "the message says offline in plain words"; echo "$OUT"; }
STATUS=$("$TB" --json sync-status)
check "the status counts the waiting changes" "False 5" "$(echo "$STATUS" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["online"], d["pending"])')"

# The server comes back: everything converges, nothing is lost or counted twice.
start_server
"$TB" sync >/dev/null
check "nothing is left waiting" "0" "$("$TB" --json sync-status | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')"
check "the server has the completed order" "completed" "$(q "$CITY" "SELECT status FROM orders WHERE id = '$ORDER'")"
same "orders converge" "SELECT id, status, accepted_count, visits_done FROM orders ORDER BY id"
same "balances converge" "SELECT id, balance FROM accounts ORDER BY id"
same "ledger entries converge" "SELECT id, transfer_id, account_id, amount FROM ledger_entries ORDER BY id"
check "Ma Jun was credited once (bonus + 60 min)" "120" "$(q "$CITY" "SELECT balance FROM accounts a JOIN members m ON m.id = a.member_id WHERE m.phone = '13700000003'")"
"$TB" ledger verify >/dev/null && ok "the device's ledger verifies" || no "the device's ledger verifies"

# Two devices accept the same order while the server is down: the first acceptance the server
# commits wins, the other volunteer is told why, and the losing device converges.
LAPTOP="$WORK/laptop.db"
"$TB" --db "$LAPTOP" enrol --server "$URL" --code "$("$SRV" enrol --role volunteer)" --name 刘海燕的电脑 >/dev/null
"$TB" --as $STAFF member add --name 刘海燕 --phone 13700000006 --birth 1992-01-01 --community 府苑新村 --roles resident,volunteer --fields daily_living >/dev/null
"$TB" --as $STAFF member verify 13700000006 >/dev/null
O2=$("$TB" --as $STAFF --json order post --for 13700000001 --service shopping --description "帮忙买菜" --place-hint 府苑新村12幢 --minutes 30 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$TB" sync >/dev/null
"$TB" --db "$LAPTOP" sync >/dev/null
check "the laptop sees the order on its volunteer's board" "1" "$("$TB" --db "$LAPTOP" --as 13700000006 --json order board | python3 -c "import json,sys; print(sum(1 for o in json.load(sys.stdin) if o['id'] == '$O2'))")"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
"$TB" --as 13700000003 order accept "$O2" >/dev/null
"$TB" --db "$LAPTOP" --as 13700000006 order accept "$O2" >/dev/null
start_server
"$TB" sync >/dev/null
"$TB" --db "$LAPTOP" --json sync >"$WORK/laptop-sync.json"
check "the laptop's acceptance is rejected: already taken" "order_full" "$(python3 -c "import json; print(json.load(open('$WORK/laptop-sync.json'))['rejections'][0]['error']['code'])")"
INBOX=$("$TB" --db "$LAPTOP" --as 13700000006 inbox)
[[ "$INBOX" == *"sync_rejected"* && "$INBOX" == *"马军"* ]] && ok "刘海燕 is told the order was taken by 马军" || { no "刘海燕 is told the order was taken by 马军"; echo "$INBOX"; }
check "the laptop shows the order taken by 马军 only" "马军" "$("$TB" --db "$LAPTOP" --as 13700000006 --json order show "$O2" | python3 -c 'import json,sys; print("、".join(json.load(sys.stdin)["volunteers"]))')"
DEV_SAVED="$DEV"; DEV="$LAPTOP"
same "the losing device converges on the order" "SELECT id, status, accepted_count FROM orders ORDER BY id"
same "the losing device converges on acceptances" "SELECT id, volunteer_id, status FROM order_volunteers ORDER BY id"
DEV="$DEV_SAVED"

# kill -9 of the server in the middle of a big push, then of the device; restart; converge.
python3 - "$WORK/people.csv" <<'PY'
import sys
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("name,phone,date_of_birth,community,roles,address,service_fields\n")
    for i in range(3000):
        f.write(f"居民{i},135{i:08d},1950-01-01,{'府苑新村' if i % 2 else '蒋村花园'},resident,,\n")
PY
"$TB" --as $STAFF member import "$WORK/people.csv" >/dev/null
"$TB" sync >/dev/null 2>&1 &
SYNC_PID=$!
sleep 0.4
kill -9 "$SERVER_PID"; SERVER_PID=""
wait "$SYNC_PID" 2>/dev/null || true
start_server
"$TB" sync >/dev/null 2>&1 &
SYNC_PID=$!
sleep 0.3
kill -9 "$SYNC_PID" 2>/dev/null || true
wait "$SYNC_PID" 2>/dev/null || true
"$TB" sync >/dev/null
same "members converge after both were killed" "SELECT COUNT(*), MIN(id), MAX(id) FROM members"
same "accounts converge after both were killed" "SELECT COUNT(*), SUM(balance) FROM accounts"
check "every pushed mutation was applied exactly once" "$(q "$CITY" "SELECT COUNT(*) FROM push_results")" "$(q "$CITY" "SELECT COUNT(DISTINCT mutation_id) FROM push_results")"
check "the server applied the import once" "3000" "$(q "$CITY" "SELECT COUNT(*) FROM members WHERE name LIKE '居民%'")"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
