#!/usr/bin/env bash
# What the change log costs PostgreSQL in a push of resident registrations, measured inside
# the database (no server, no network): batches of 1,000 registrations (a member, its role,
# its account and the audit entry, sent as JSON documents as the server's held inserts are),
# each batch in one transaction, written three ways into three copies of the city schema:
#
#   A  as the server writes them today: the capture triggers queue every row with its image,
#      the queue is read back, its rows go to change_log with sequences from change_heads, and
#      the queue is emptied (the log's entries made in the database, which spares A the trip
#      of the images to the server and back);
#   B  a log-free design (not built): each synced row carries its partition and a sequence
#      from change_heads, indexed, and nothing else is written;
#   C  the registrations alone: no capture, no sequence (what the domain's rows cost).
#
# Prints each way's median milliseconds per batch. The schema is the one the server makes
# (`timebank-server init --demo` into a scratch database, dumped without data). Needs psql,
# pg_dump and a PostgreSQL that the user `postgres` reaches without a password (PGHOST,
# default 127.0.0.1). Scratch databases tb_paths_* are dropped at the end.
#
#   bash bench/pg-write-paths.sh [batches]      # default 20 batches each
set -euo pipefail
cd "$(dirname "$0")/.."
batches=${1:-20}
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
dbs=(tb_paths_src tb_paths_a tb_paths_b tb_paths_c)
cleanup() { for d in "${dbs[@]}"; do psql_ -d postgres -c "DROP DATABASE IF EXISTS $d" 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup

build_log=$(mktemp)
if ! cargo build --release -p timebank-server > "$build_log" 2>&1; then
  cat "$build_log"; exit 1
fi
rm -f "$build_log"
psql_ -d postgres -c "CREATE DATABASE tb_paths_src"
DATABASE_URL="postgres://$PGUSER@$PGHOST/tb_paths_src" RUST_LOG=warn \
  target/release/timebank-server init --demo > /dev/null
schema=$(mktemp)
pg_dump --schema-only -d tb_paths_src > "$schema"

for d in tb_paths_a tb_paths_b tb_paths_c; do
  psql_ -d postgres -c "CREATE DATABASE $d"
  psql_ -d "$d" -f "$schema" > /dev/null
  psql_ -d "$d" <<'SQL'
INSERT INTO places VALUES ('sd', NULL, 'subdistrict', 's', 's'), ('c1', 'sd', 'community', 'c', 'c');
INSERT INTO centers VALUES ('ctr1', 'x', 'x', 'sd');
INSERT INTO change_heads VALUES ('c1', 0, 0);
-- One row per batch: the batch's members, roles, accounts and audit entries as documents.
CREATE TABLE docs (k int PRIMARY KEY, m json, r json, a json, l json);
INSERT INTO docs SELECT k,
 (SELECT json_agg(json_build_object('id', md5(k||'m'||g)::uuid::text, 'name', '居民' || k || '-' || g,
   'phone', '136' || lpad((k*1000+g)::text, 8, '0'), 'date_of_birth', '1950-01-01', 'home_community_id', 'c1',
   'address', NULL, 'hardship', false, 'pin_hash', NULL, 'center_id', 'ctr1', 'active', true,
   'created_at', 1765000000000)) FROM generate_series(1,1000) g),
 (SELECT json_agg(json_build_object('member_id', md5(k||'m'||g)::uuid::text, 'role', 'resident'))
   FROM generate_series(1,1000) g),
 (SELECT json_agg(json_build_object('id', md5(k||'a'||g)::uuid::text, 'kind', 'member',
   'member_id', md5(k||'m'||g)::uuid::text, 'community_id', 'c1', 'programme_id', NULL, 'balance', 0,
   'created_at', 1765000000000)) FROM generate_series(1,1000) g),
 (SELECT json_agg(json_build_object('id', md5(k||'l'||g)::uuid::text, 'at', 1765000000000,
   'actor_id', 'admin', 'on_behalf_of', NULL, 'device_id', 'dev-a', 'action', 'member.register',
   'entity', 'member', 'entity_id', md5(k||'m'||g)::uuid::text,
   'detail', '{"roles":["resident"],"community":"c1"}')) FROM generate_series(1,1000) g)
 FROM generate_series(1, 200) k;
SQL
done

# A and C: the same statements; C has no capture triggers, so its queue stays empty.
for d in tb_paths_a tb_paths_c; do
  psql_ -d "$d" <<'SQL'
CREATE FUNCTION batch(k int) RETURNS double precision AS $$
DECLARE s timestamptz := clock_timestamp(); d docs; first bigint; n bigint; t text;
BEGIN
  SELECT * INTO d FROM docs WHERE docs.k = batch.k;
  INSERT INTO members (id, name, phone, date_of_birth, home_community_id, address, hardship, pin_hash, center_id, active, created_at)
    SELECT id, name, phone, date_of_birth, home_community_id, address, hardship, pin_hash, center_id, active, created_at
    FROM json_populate_recordset(NULL::members, d.m);
  INSERT INTO member_roles (member_id, role) SELECT member_id, role FROM json_populate_recordset(NULL::member_roles, d.r);
  INSERT INTO accounts (id, kind, member_id, community_id, programme_id, balance, created_at)
    SELECT id, kind, member_id, community_id, programme_id, balance, created_at FROM json_populate_recordset(NULL::accounts, d.a);
  INSERT INTO audit_log (id, at, actor_id, on_behalf_of, device_id, action, entity, entity_id, detail)
    SELECT id, at, actor_id, on_behalf_of, device_id, action, entity, entity_id, detail FROM json_populate_recordset(NULL::audit_log, d.l);
  -- The queue read back whole, as the server reads it.
  SELECT string_agg(tbl || pk || op || row_json, '') INTO t FROM (SELECT * FROM change_queue ORDER BY qid) q;
  SELECT count(*) INTO n FROM change_queue;
  UPDATE change_heads SET last_seq = last_seq + n WHERE community_id = 'c1' RETURNING last_seq - n INTO first;
  INSERT INTO change_log (community_id, seq, tbl, pk, op, row_json, at)
    SELECT 'c1', first + row_number() OVER (ORDER BY qid), tbl, pk, 'upsert', row_json, 1765000000000 FROM change_queue;
  DELETE FROM change_queue;
  RETURN extract(epoch FROM clock_timestamp() - s) * 1000;
END $$ LANGUAGE plpgsql;
SQL
done
psql_ -d tb_paths_c -c "DROP TRIGGER cs_members_ins ON members; DROP TRIGGER cs_member_roles_ins ON member_roles; DROP TRIGGER cs_accounts_ins ON accounts;"

psql_ -d tb_paths_b <<'SQL'
DROP TRIGGER cs_members_ins ON members; DROP TRIGGER cs_member_roles_ins ON member_roles; DROP TRIGGER cs_accounts_ins ON accounts;
ALTER TABLE members ADD COLUMN part text, ADD COLUMN pseq bigint; CREATE INDEX ON members (part, pseq);
ALTER TABLE member_roles ADD COLUMN part text, ADD COLUMN pseq bigint; CREATE INDEX ON member_roles (part, pseq);
ALTER TABLE accounts ADD COLUMN part text, ADD COLUMN pseq bigint; CREATE INDEX ON accounts (part, pseq);
CREATE FUNCTION batch(k int) RETURNS double precision AS $$
DECLARE s timestamptz := clock_timestamp(); d docs; first bigint;
BEGIN
  SELECT * INTO d FROM docs WHERE docs.k = batch.k;
  UPDATE change_heads SET last_seq = last_seq + 3000 WHERE community_id = 'c1' RETURNING last_seq - 3000 INTO first;
  INSERT INTO members (id, name, phone, date_of_birth, home_community_id, address, hardship, pin_hash, center_id, active, created_at, part, pseq)
    SELECT id, name, phone, date_of_birth, home_community_id, address, hardship, pin_hash, center_id, active, created_at, 'c1', first + i
    FROM json_populate_recordset(NULL::members, d.m) WITH ORDINALITY
      AS x(id, name, phone, date_of_birth, home_community_id, address, hardship, pin_hash, center_id, active, created_at, part, pseq, i);
  INSERT INTO member_roles (member_id, role, part, pseq) SELECT member_id, role, 'c1', first + 1000 + i
    FROM json_populate_recordset(NULL::member_roles, d.r) WITH ORDINALITY AS x(member_id, role, part, pseq, i);
  INSERT INTO accounts (id, kind, member_id, community_id, programme_id, balance, created_at, part, pseq)
    SELECT id, kind, member_id, community_id, programme_id, balance, created_at, 'c1', first + 2000 + i
    FROM json_populate_recordset(NULL::accounts, d.a) WITH ORDINALITY
      AS x(id, kind, member_id, community_id, programme_id, balance, created_at, part, pseq, i);
  INSERT INTO audit_log (id, at, actor_id, on_behalf_of, device_id, action, entity, entity_id, detail)
    SELECT id, at, actor_id, on_behalf_of, device_id, action, entity, entity_id, detail FROM json_populate_recordset(NULL::audit_log, d.l);
  RETURN extract(epoch FROM clock_timestamp() - s) * 1000;
END $$ LANGUAGE plpgsql;
SQL

# Alternating, so that a change in the machine's speed meets all three alike.
out=$(mktemp)
for k in $(seq 1 "$batches"); do
  for w in a b c; do
    echo "$w $(psql_ -At -d "tb_paths_$w" -c "SELECT round(batch($k)::numeric, 1)")" >> "$out"
  done
done
median() { grep "^$1 " "$out" | awk '{print $2}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
a=$(median a) b=$(median b) c=$(median c)
echo "PostgreSQL's time per batch of 1,000 registrations (median of $batches, ms):"
echo "  A  capture queue and change log (today):        $a"
echo "  B  partition and sequence on the rows (no log): $b"
echo "  C  the registrations alone:                     $c"
rm -f "$schema" "$out"
