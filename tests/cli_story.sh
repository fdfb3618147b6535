#!/usr/bin/env bash
# The story of the time bank, told through the `timebank` CLI, with the exact outputs checked.
# Run from the repository root (scripts/test.sh does): bash tests/cli_story.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p timebank-cli
TB="$PWD/target/debug/timebank"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export TIMEBANK_DB="$WORK/center.db"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "FAILED - $1"; }
expect() { # expect NAME EXPECTED ACTUAL: ACTUAL contains EXPECTED
  if [[ "$3" == *"$2"* ]]; then ok "$1"; else no "$1"; echo "  expected to contain: $2"; echo "  got: $3"; fi
}
refused() { # refused NAME EXPECTED_MESSAGE -- command...: must exit non-zero and print the message
  local name=$1 msg=$2; shift 3
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc -ne 0 && "$out" == *"$msg"* ]]; then ok "$name"; else no "$name"; echo "  rc=$rc, expected message: $msg"; echo "  got: $out"; fi
}
at() { export TIMEBANK_NOW="$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

at "2026-11-20T09:00:00+08:00"
$TB init --subdistrict 蒋村街道 --community 府苑新村 --community 蒋村花园 --center 蒋村街道社区服务中心 \
  --admin-name 周建华 --admin-phone 13900000001 --admin-birth 1975-05-04 >/dev/null
ADMIN=13900000001
$TB --as $ADMIN member add --name 李红 --phone 13900000002 --birth 1982-03-12 --community 府苑新村 --roles staff >/dev/null
STAFF=13900000002
$TB --as $STAFF member add --name 王德明 --phone 13700000001 --birth 1941-08-15 --community 府苑新村 --roles resident --address "府苑新村12幢2单元301室" >/dev/null
$TB --as $STAFF member add --name 王秀芝 --phone 13700000002 --birth 1968-02-20 --community 府苑新村 --roles resident,family >/dev/null
$TB --as $STAFF member add --name 马军 --phone 13700000003 --birth 1985-10-01 --community 府苑新村 --roles resident,volunteer --fields daily_living,health >/dev/null
$TB --as $STAFF member add --name 赵小明 --phone 13700000004 --birth 1981-06-01 --community 府苑新村 --roles resident >/dev/null
$TB --as $STAFF member link 13700000001 13700000002 --relation child >/dev/null
$TB --as $STAFF member pin 13700000001 --pin 2468 >/dev/null

# An unverified volunteer cannot take orders yet.
ORDER=$($TB --as 13700000002 --json order post --for 13700000001 --service meal_delivery \
  --description "父亲一个人在家，麻烦送一份午饭" --place-hint "府苑新村12幢" --minutes 60 | json 'd["id"]')
refused "an unverified volunteer cannot accept" "审核通过后才能接单" -- $TB --as 13700000003 order accept "$ORDER"
$TB --as $STAFF member verify 13700000003 >/dev/null

# The board shows the place hint, not the address.
BOARD=$($TB --as 13700000003 order board)
expect "the order is on Ma Jun's board" "助餐送餐" "$BOARD"
if [[ "$BOARD" == *"2单元301室"* ]]; then no "the board hides the exact address"; else ok "the board hides the exact address"; fi

at "2026-11-20T10:00:00+08:00"; $TB --as 13700000003 order accept "$ORDER" >/dev/null
SHOW=$($TB --as 13700000003 order show "$ORDER")
expect "the accepted volunteer sees the address" "府苑新村12幢2单元301室" "$SHOW"
at "2026-11-20T11:00:00+08:00"; $TB --as 13700000003 order check-in "$ORDER" >/dev/null
at "2026-11-20T11:52:00+08:00"
expect "check-out reports the time served" "52分钟" "$($TB --as 13700000003 order check-out "$ORDER")"
refused "a wrong PIN is refused" "密码不正确" -- $TB --as 13700000003 order confirm "$ORDER" --pin 1111
at "2026-11-20T11:53:00+08:00"
expect "the father confirms with his PIN and Ma Jun is credited (52 min rounds to 45)" "马军: +45分钟" "$($TB --as 13700000003 order confirm "$ORDER" --pin 2468)"
expect "Ma Jun's balance is the sign-up bonus plus the visit" "余额: 1小时45分" "$($TB --as 13700000003 account balance)"
expect "the passbook shows the running balance" "当前余额：1小时45分" "$($TB --as 13700000003 account statement)"
$TB --as 13700000002 feedback rate "$ORDER" --stars 5 --comment "马军很耐心，谢谢！" >/dev/null
AUDIT=$($TB --as $STAFF audit --entity "$ORDER")
expect "the audit shows the daughter posting on her father's behalf" "王秀芝 代表 王德明  post_order" "$AUDIT"
expect "the audit shows the PIN confirmation on the father's behalf" "马军 代表 王德明  confirm_visit" "$AUDIT"
DASH=$($TB --as $STAFF --json dashboard)
expect "the dashboard counts the completed order" "1" "$(echo "$DASH" | json 'd["orders_completed_month"]')"
expect "the dashboard counts the rating" "5.0" "$(echo "$DASH" | json 'd["satisfaction_avg"]')"
expect "the inbox tells the daughter the volunteer arrived" "volunteer_arrived" "$($TB --as 13700000002 inbox)"

# Rules that block, with the exact message.
refused "a gift to someone who is not family is refused" "按照本项目规则，时间只能赠送给配偶和直系亲属；赵小明不在此范围内。" -- $TB --as 13700000003 gift --to 13700000004 --minutes 30
$TB --as $ADMIN rules set --payer beneficiary >/dev/null
refused "spending under the minimum age is refused" "按照本项目规则，年满60周岁才能使用时间兑换服务（当前45周岁）。" -- \
  $TB --as 13700000004 order post --service shopping --description "帮忙买菜" --place-hint "府苑新村" --address "3幢" --minutes 30
refused "English messages too" "Under this programme's rules hours can be spent from age 60 (this member is 45)." -- \
  $TB --lang en --as 13700000004 order post --service shopping --description "帮忙买菜" --place-hint "府苑新村" --address "3幢" --minutes 30
refused "a volunteer cannot change the rules" "您没有权限执行此操作" -- $TB --as 13700000003 rules set --payer issuing

# The ledger verifies; a tampered balance is named.
expect "the ledger verifies" "账本核对无误" "$($TB ledger verify)"
$TB backup "$WORK/backup.db" >/dev/null
python3 - "$TIMEBANK_DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE accounts SET balance = balance + 7 WHERE member_id IS NOT NULL AND balance > 0"); c.commit()
PY
rc=0; OUT=$($TB ledger verify 2>&1) || rc=$?
if [[ $rc -eq 3 && "$OUT" == *"马军"* ]]; then ok "ledger verify exits 3 and names the tampered account"; else no "ledger verify exits 3 and names the tampered account"; echo "  rc=$rc $OUT"; fi
APPEND=$(python3 - "$TIMEBANK_DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for sql in ["UPDATE ledger_entries SET amount = 0", "DELETE FROM transfers"]:
    try:
        c.execute(sql); print("ALLOWED:", sql)
    except sqlite3.DatabaseError as e:
        print("refused:", e)
PY
)
expect "the database refuses to edit ledger entries" "refused: ledger_append_only: UPDATE on ledger_entries" "$APPEND"
expect "the database refuses to delete transfers" "refused: ledger_append_only: DELETE on transfers" "$APPEND"
$TB restore "$WORK/backup.db" >/dev/null
expect "the restored database verifies" "账本核对无误" "$($TB ledger verify)"

# CSV import: all or nothing, every bad row named by its line.
cat > "$WORK/bad.csv" <<'CSV'
name,phone,date_of_birth,community,roles,address,service_fields
张桂英,13811112222,1945-03-02,府苑新村,resident,府苑新村3幢,
李建国,12345,1950-01-01,府苑新村,resident,,
陈志强,13811113333,1990-13-01,府苑新村,volunteer,,health
刘海燕,13811114444,1988-05-05,不存在的社区,volunteer,,health
CSV
rc=0; OUT=$($TB --as $STAFF member import "$WORK/bad.csv" 2>&1) || rc=$?
expect "a bad import names line 3" "第3行 [phone]" "$OUT"
expect "a bad import names line 4" "第4行 [date_of_birth]" "$OUT"
expect "a bad import names line 5" "第5行 [community]" "$OUT"
expect "nothing is imported from a bad file" "没有导入任何数据" "$OUT"
[[ -z "$($TB --as $STAFF member list --community 府苑新村 | grep 张桂英 || true)" ]] && ok "the good row of a bad file was not imported" || no "the good row of a bad file was not imported"
cat > "$WORK/good.csv" <<'CSV'
name,phone,date_of_birth,community,roles,address,service_fields
张桂英,13811112222,1945-03-02,府苑新村,resident,府苑新村3幢,
陈志强,13811113333,1990-12-01,蒋村花园,resident;volunteer,,health;emergency
CSV
expect "a good file is imported" "已导入 2 (1 名志愿者)" "$($TB --as $STAFF member import "$WORK/good.csv")"
expect "reports by field" "daily_living 生活照料,1,1,45" "$($TB --as $STAFF report csv --by field)"
$TB --as $ADMIN export json --out "$WORK/export.json"
expect "the export holds every table without PIN hashes" "ok" "$(python3 -c "import json; d=json.load(open('$WORK/export.json')); t=d['tables']; assert len(t['ledger_entries'])>0 and all(m['pin_hash'] is None for m in t['members']); print('ok')")"
expect "the demo seeds a database" "王德明" "$(TIMEBANK_NOW= $TB --db "$WORK/demo.db" demo)"
expect "the demo's ledger verifies" "账本核对无误" "$($TB --db "$WORK/demo.db" ledger verify)"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
