//! The device side of sync (used by the CLI and the desktop app): enrolment, pushing the
//! outbox, pulling the change log of the device's partitions, and the status a UI shows.
//!
//! One round ([`sync_once`]) pushes every pending mutation in sequence order (the server
//! answers each once; a duplicate delivery gets the stored answer), then pulls every partition
//! page by page, applying each page and advancing its cursor in one transaction (an
//! interrupted pull resumes where it stopped; a page applied twice changes nothing). Pushed
//! mutations leave the outbox only after a complete pull, which includes their effects.
//!
//! Mutations made while a round runs stay pending, and each page a pull applies is rebased
//! under them: their effects are taken back to the before-images of the device's journal, the
//! server's rows are applied, and they run again on top as the server will run them (see
//! [`take_back_waiting`] and [`redo_waiting`]); one that no longer holds on the server's rows
//! leaves the screen and waits for the server's decision.
use crate::error::{Code, CoreError, Result};
use crate::service::outbox::{self, get_setting, set_setting};
use crate::service::Grant;
use crate::sql;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use timebank_migrations::SCHEMA_VERSION;

pub const PROTOCOL: u32 = 1;
pub const K_SERVER: &str = "sync_server";
pub const K_TOKEN: &str = "sync_token";
pub const K_PARTITIONS: &str = "sync_partitions";
pub const K_LAST_OK: &str = "sync_last_success";
pub const K_LAST_ERROR: &str = "sync_last_error";
pub const K_LAST_ERROR_EN: &str = "sync_last_error_en";
/// The role the device was enrolled with (`center` for a center's workstation, `volunteer`).
pub const K_ROLE: &str = "sync_role";
/// The progress of the pull running now (JSON of [`PullProgress`]; empty between rounds).
pub const K_PULL_PROGRESS: &str = "sync_pull_progress";
/// The most mutations pushed in one batch. A batch is applied in one transaction on the city
/// server (or in a group's, with other batches that wait), so larger batches share its fixed
/// costs among more mutations: with 1,000 instead of 500, the server's own time for a device's
/// 10,000 registrations was 716-746 ms against 731-938 in alternating runs (fewer commits,
/// less waiting for the held inserts; bench/RESULTS.md). The server takes up to 5,000.
pub const BATCH: usize = 1000;
/// The most bytes of mutations pushed in one batch (what [`Transport::push_bytes`] gives by
/// default): 1 MiB, an eighth of the city server's limit on a request's body (8 MiB), and about
/// 8 s on a 1 Mbit/s line, well within a request's 30 s. A batch of long texts (a safeguarding
/// report may hold 5,000 characters, about 15 KB) is then never refused for its size nor
/// times out on a slow line, either of which would hold the device's outbox back for good;
/// registrations (about 400 bytes each) still go 1,000 at a time.
pub const PUSH_BYTES: usize = 1 << 20;
/// The device's own limit on a push batch's bytes, when a line too slow for the transport's
/// ([`Transport::push_bytes`]) made a batch time out: half that batch's size after each
/// timeout, doubled after each round that got a batch through and ended well, forgotten once
/// back at the transport's limit. Kept across rounds, so that a slow line still takes the
/// outbox, in smaller batches, instead of the same batch timing out at every round.
pub const K_PUSH_BYTES: &str = "sync_push_bytes";
/// The least the device's own limit goes down to (a batch still holds at least one mutation,
/// whatever its size).
const MIN_PUSH_BYTES: usize = 2_048;
/// What a mutation's JSON adds to the lengths of its texts: its keys, quotes, commas and
/// numbers (at most 20 digits each), with room to spare.
const MUTATION_JSON_EXTRA: usize = 160;
/// Changes asked for per pulled page (the server's most: fewer pages, less fixed cost per row;
/// a page is about 2 MB of JSON).
pub const PULL_PAGE: i64 = 5000;
/// The device's own page size, when a line too slow for [`PULL_PAGE`] made a page time out:
/// halved after each timeout, doubled after each round whose pull ended well, forgotten once
/// back at [`PULL_PAGE`] (as [`K_PUSH_BYTES`] for the push).
pub const K_PULL_PAGE: &str = "sync_pull_page";
/// The columns of pulled rows that this device's tables lacked, by table, as JSON (see
/// [`after_migrations`]).
pub const K_UNKNOWN_COLUMNS: &str = "sync_unknown_columns";
/// Set when the device must pull everything again at its next round (see [`after_migrations`];
/// [`forget_pulled`] removes it).
pub const K_PULL_AGAIN: &str = "sync_pull_again";
/// The schema version the device's journal triggers were built for (see [`after_migrations`]).
pub const K_JOURNAL_SCHEMA: &str = "sync_journal_schema";
/// The least the device's own page size goes down to.
const MIN_PULL_PAGE: i64 = 50;

/// Wire types (the server's JSON; `server/` defines the same shapes with their OpenAPI schema).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Mutation {
    pub id: String,
    pub seq: i64,
    pub name: String,
    pub args: Value,
    pub hlc: String,
    pub schema_version: i32,
    pub actor_id: String,
    /// The device's wall-clock time of the change (the server clamps it to its own clock).
    pub at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PushResult {
    pub seq: i64,
    pub mutation_id: String,
    pub status: String,
    pub duplicate: bool,
    pub result: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PushResponse {
    pub results: Vec<PushResult>,
    pub next_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Change {
    pub seq: i64,
    pub table: String,
    pub pk: String,
    pub op: String,
    pub row: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PullPage {
    pub community: String,
    pub changes: Vec<Change>,
    pub next_after: i64,
    pub head: i64,
    pub checksum: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Enrolled {
    pub device_id: String,
    pub token: String,
    pub center_id: String,
    pub communities: Vec<String>,
    pub role: String,
}

/// How the client reaches the city server.
#[allow(async_fn_in_trait)]
pub trait Transport {
    async fn push(&self, token: &str, mutations: &[Mutation]) -> Result<PushResponse>;
    async fn pull(&self, token: &str, partition: &str, after: i64, limit: i64) -> Result<PullPage>;
    /// The current server version of rows this device changed optimistically.
    async fn rows(&self, token: &str, keys: &[(String, String)]) -> Result<Vec<RowState>>;
    /// How many push batches may be on their way at once. With two, the server applies a
    /// batch while the device sends the next and records the answers to the one before; the
    /// server still takes a device's batches strictly in sequence (one that overtakes the
    /// batch before it is answered with the sequence it expects, and is sent again). A push
    /// future is left unpolled while the client records another batch's answer, so it must
    /// not use the device's database (it could hold the connection or the write lock that
    /// the client waits for).
    fn pushes_in_flight(&self) -> usize {
        1
    }
    /// The most bytes of mutations one push batch may carry (a batch holds at least one
    /// mutation, whatever its size).
    fn push_bytes(&self) -> usize {
        PUSH_BYTES
    }
}

/// The server's current version of one row (None: the row does not exist there).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RowState {
    pub table: String,
    pub pk: String,
    pub row: Option<Value>,
}

/// The checksum the server puts on a page (SHA-256 over `seq|table|pk|op|row` lines).
pub fn checksum(changes: &[Change]) -> String {
    checksum_of(changes.iter().map(|c| {
        (
            c.seq,
            c.table.as_str(),
            c.pk.as_str(),
            c.op.as_str(),
            &c.row,
        )
    }))
}

/// SHA-256 over one `seq|table|pk|op|row` line per change, the row as compact JSON (what
/// `format!("{row}")` writes), in hex: the page checksum of both the server and the device.
/// Each line is written into one reused buffer and hashed, with no text of the whole page.
pub fn checksum_of<'a>(
    changes: impl IntoIterator<Item = (i64, &'a str, &'a str, &'a str, &'a Value)>,
) -> String {
    use std::io::Write;
    let mut h = Sha256::new();
    let mut line: Vec<u8> = Vec::with_capacity(512);
    for (seq, table, pk, op, row) in changes {
        line.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(line, "{seq}|{table}|{pk}|{op}|");
        let _ = serde_json::to_writer(&mut line, row);
        line.push(b'\n');
        h.update(&line);
    }
    h.finalize().iter().map(|x| format!("{x:02x}")).collect()
}

/// Tables the sync applies, with their primary-key columns (the server's list).
pub const TABLES: &[(&str, &[&str])] = &[
    ("places", &["id"]),
    ("centers", &["id"]),
    ("center_communities", &["center_id", "community_id"]),
    ("programmes", &["id"]),
    ("service_fields", &["code"]),
    ("services", &["code"]),
    ("members", &["id"]),
    ("member_roles", &["member_id", "role"]),
    ("family_links", &["member_id", "relative_id"]),
    ("volunteer_profiles", &["member_id"]),
    ("orders", &["id"]),
    ("order_visits", &["id"]),
    ("order_volunteers", &["id"]),
    ("visit_attendance", &["id"]),
    ("activities", &["id"]),
    ("activity_signups", &["activity_id", "member_id"]),
    ("accounts", &["id"]),
    ("transfers", &["id"]),
    ("ledger_entries", &["id"]),
    ("ledger_flags", &["id"]),
    ("feedback", &["id"]),
    ("safeguarding_reports", &["id"]),
    ("inbox_messages", &["id"]),
];

/// Install the capture triggers that queue every touched row of a synced table in
/// `change_queue`, with the row as it is after the write (idempotent, replacing earlier
/// versions): the city server's, which it logs into its change log.
pub async fn install_capture(db: &DatabaseConnection) -> Result<()> {
    match db.get_database_backend() {
        DbBackend::Postgres => install_capture_postgres(db).await,
        _ => install_capture_sqlite(db, false).await,
    }
}

/// Install a device's capture triggers (idempotent): its journal of which rows each local
/// mutation touched (`change_queue.mutation_id`, set by `service::execute_as`) and what each row
/// was before (`before_row`), from which a pull takes waiting mutations back (see
/// [`take_back_waiting`]).
pub async fn install_journal(db: &DatabaseConnection) -> Result<()> {
    install_capture_sqlite(db, true).await
}

/// PostgreSQL's capture triggers: one per statement (not per row), over the statement's
/// transition table, so that a multi-row insert of a pushed batch queues its rows in one
/// `INSERT … SELECT` instead of a PL/pgSQL call and an insert for each row (that took half the
/// time of sending a batch's rows). Rows are queued in the order the statement wrote them.
async fn install_capture_postgres(db: &DatabaseConnection) -> Result<()> {
    // Several server processes may start at once on one database: one at a time here
    // (concurrent CREATE OR REPLACE of one function fails with "tuple concurrently updated").
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    let db = &txn;
    db.execute_unprepared("SELECT pg_advisory_xact_lock(727274)")
        .await?;
    for (t, pk) in TABLES {
        let key = |r: &str| {
            pk.iter()
                .map(|c| format!("{r}.{c}::text"))
                .collect::<Vec<_>>()
                .join(" || '|' || ")
        };
        // Earlier versions: one trigger for each row, through timebank_capture().
        db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS cc_{t} ON {t}"))
            .await?;
        // A row created is queued as `insert`, one changed as `upsert`: the change log needs
        // not look up where a row just created has been logged before.
        for op in ["insert", "upsert"] {
            db.execute_unprepared(&format!(
                "CREATE OR REPLACE FUNCTION timebank_capture_{t}_{op}() RETURNS trigger AS $$ BEGIN \
                 INSERT INTO change_queue (tbl, pk, op, row_json) SELECT '{t}', {}, '{op}', to_jsonb(n)::text FROM new_rows n; \
                 RETURN NULL; END $$ LANGUAGE plpgsql",
                key("n")
            ))
            .await?;
        }
        db.execute_unprepared(&format!(
            "CREATE OR REPLACE FUNCTION timebank_capture_{t}_delete() RETURNS trigger AS $$ BEGIN \
             INSERT INTO change_queue (tbl, pk, op) SELECT '{t}', {}, 'delete' FROM old_rows o; \
             RETURN NULL; END $$ LANGUAGE plpgsql",
            key("o")
        ))
        .await?;
        for (name, event, table, function) in [
            ("ins", "INSERT", "NEW TABLE AS new_rows", "insert"),
            ("upd", "UPDATE", "NEW TABLE AS new_rows", "upsert"),
            ("del", "DELETE", "OLD TABLE AS old_rows", "delete"),
        ] {
            db.execute_unprepared(&format!(
                "CREATE OR REPLACE TRIGGER cs_{t}_{name} AFTER {event} ON {t} REFERENCING {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION timebank_capture_{t}_{function}()"
            ))
            .await?;
        }
    }
    db.execute_unprepared("DROP FUNCTION IF EXISTS timebank_capture()")
        .await?;
    txn.commit().await?;
    Ok(())
}

/// SQLite's capture triggers: `cq_` on the city server (each queued row keeps what the row is
/// after the write, `row_json`, for the change log), `cj_` on a device (`images`: each queued
/// row keeps what the row was before, `before_row`, the JSON `null` for a row just created).
async fn install_capture_sqlite(db: &DatabaseConnection, images: bool) -> Result<()> {
    // In one transaction: no local write lands between an old trigger and its successor.
    let txn = crate::db::begin_write(db).await?;
    let db = &txn;
    let prefix = if images { "cj" } else { "cq" };
    for (t, pk) in TABLES {
        let cols = table_columns(db, t).await?;
        for op in ["INSERT", "UPDATE", "DELETE"] {
            let o = op.to_lowercase();
            // Earlier versions: `cc_` also queued the rows applied from the server; `cq_` on
            // a device kept no images; `cj_` on the server would keep images nobody reads.
            // Its own too: an earlier version of it may not keep the row images it should.
            for old in ["cc", "cq", "cj"] {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {old}_{t}_{o}"))
                    .await?;
            }
            // Rows written while a device applies the server's changes are not queued (they
            // are the server's, not a local mutation's); nor, on the city server, rows that a
            // connection queues with its own triggers (see [`connection_capture_sqlite`]).
            let skip = if images { APPLYING } else { OWN_CAPTURE };
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {prefix}_{t}_{o} AFTER {op} ON {t} \
                 WHEN NOT EXISTS (SELECT 1 FROM device_settings WHERE key = '{skip}') BEGIN \
                 INSERT INTO change_queue {}; END",
                queued_row(t, pk, &cols, op, images)
            ))
            .await?;
        }
    }
    if images {
        set_setting(db, K_JOURNAL_SCHEMA, &SCHEMA_VERSION.to_string()).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The key in `device_settings` that a device's transaction writes (and removes before it
/// ends) while it applies the server's changes: its capture triggers do not journal those rows,
/// and the ledger's append-only triggers let a pending entry be replaced by the final one.
pub const APPLYING: &str = "sync_applying";

/// The key in `device_settings` that a transaction of the city server writes (and removes
/// before it ends) while the connection's own triggers queue its rows
/// ([`connection_capture_sqlite`]): the database's capture triggers then skip them. It lets
/// nothing else step aside (unlike [`APPLYING`], which the server never sets).
pub const OWN_CAPTURE: &str = "capture_by_connection";

/// The columns of table `t`, in order.
async fn table_columns<C: ConnectionTrait>(db: &C, t: &str) -> Result<Vec<String>> {
    Ok(sql::all(
        db,
        "SELECT name FROM pragma_table_info(?) ORDER BY cid",
        vec![t.into()],
    )
    .await?
    .iter()
    .filter_map(|r| r.try_get::<String>("", "name").ok())
    .collect())
}

/// What an SQLite capture trigger for `op` (`INSERT`, `UPDATE`, `DELETE`) on table `t` (key
/// `pk`, columns `cols`) queues: `(tbl, pk, op, before_row, row_json) VALUES (…)`. A device
/// (`images`) keeps what the row was before (for the rebase), the JSON `null` for a row just
/// created; the city server what it is after (for its change log), and queues a row created
/// as `insert` (see the PostgreSQL triggers).
fn queued_row(t: &str, pk: &[&str], cols: &[String], op: &str, images: bool) -> String {
    let image = |of: &str| {
        format!(
            "json_object({})",
            cols.iter()
                .map(|c| format!("'{c}', {of}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let row = if op == "DELETE" { "OLD" } else { "NEW" };
    let kind = match (op, images) {
        ("INSERT", false) => "insert",
        ("DELETE", _) => "delete",
        _ => "upsert",
    };
    let key = pk
        .iter()
        .map(|c| format!("{row}.{c}"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let (before, after) = match (images, op) {
        (false, "DELETE") => ("NULL".to_owned(), "NULL".to_owned()),
        (false, _) => ("NULL".to_owned(), image("NEW")),
        (true, "INSERT") => ("'null'".to_owned(), "NULL".to_owned()),
        (true, _) => (image("OLD"), "NULL".to_owned()),
    };
    format!(
        "(tbl, pk, op, before_row, row_json) VALUES ('{t}', {key}, '{kind}', {before}, {after})"
    )
}

/// The city server's capture for one SQLite connection of its own (its pushes' writer), as a
/// script to run on each new connection: a `TEMP` queue, `change_capture`, and `TEMP`
/// triggers that queue there what the connection writes while its transaction has set
/// [`OWN_CAPTURE`] (which the database's own triggers then skip). The rows queued are those the
/// database's triggers would have queued, but a temporary table is neither written to the
/// database's file and log at the commit nor kept in its pages meanwhile. In a synthetic check
/// of a push's rows (bench/RESULTS.md) queuing them in the database took about a quarter of
/// the time: their inserts, their deletion at the end of the transaction, the commit's pages.
pub async fn connection_capture_sqlite<C: ConnectionTrait>(db: &C) -> Result<String> {
    let mut script = format!(
        "PRAGMA temp_store = MEMORY; \
         CREATE TEMP TABLE IF NOT EXISTS {CONNECTION_QUEUE} (tbl TEXT NOT NULL, pk TEXT NOT NULL, \
         op TEXT NOT NULL, before_row TEXT, row_json TEXT);"
    );
    for (t, pk) in TABLES {
        let cols = table_columns(db, t).await?;
        for op in ["INSERT", "UPDATE", "DELETE"] {
            script.push_str(&format!(
                " CREATE TEMP TRIGGER IF NOT EXISTS ct_{t}_{o} AFTER {op} ON {t} \
                 WHEN EXISTS (SELECT 1 FROM device_settings WHERE key = '{OWN_CAPTURE}') BEGIN \
                 INSERT INTO {CONNECTION_QUEUE} {}; END;",
                queued_row(t, pk, &cols, op, false),
                o = op.to_lowercase()
            ));
        }
    }
    Ok(script)
}

/// The temporary queue of [`connection_capture_sqlite`].
pub const CONNECTION_QUEUE: &str = "change_capture";

/// What a round needs to know before it starts, read in one statement instead of five (each
/// a hand-off to the connection's worker thread): the device's token, whether an earlier round
/// left a pull's progress behind, the device's own limits for a slow line ([`K_PUSH_BYTES`],
/// [`K_PULL_PAGE`]), whether it must pull everything again ([`K_PULL_AGAIN`]), and whether the
/// device, enrolled by an earlier version, still has older capture triggers (`cc_` queued the
/// rows applied from the server too, `cq_` kept no before-images), which are then replaced.
struct RoundStart {
    token: Option<String>,
    progress_left: bool,
    push_bytes: Option<usize>,
    pull_page: Option<i64>,
    pull_again: bool,
}

async fn round_start(db: &DatabaseConnection) -> Result<RoundStart> {
    let sqlite = db.get_database_backend() == DbBackend::Sqlite;
    let old_triggers = if sqlite {
        "(SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' \
         AND (name LIKE 'cc!_%' ESCAPE '!' OR name LIKE 'cq!_%' ESCAPE '!'))"
    } else {
        "0"
    };
    let row = sql::one(
        db,
        &format!(
            "SELECT (SELECT value FROM device_settings WHERE key = ?) AS token, \
             (SELECT value FROM device_settings WHERE key = ?) AS progress, \
             (SELECT value FROM device_settings WHERE key = ?) AS push_bytes, \
             (SELECT value FROM device_settings WHERE key = ?) AS pull_page, \
             (SELECT value FROM device_settings WHERE key = ?) AS pull_again, \
             CAST({old_triggers} AS BIGINT) AS old_triggers"
        ),
        vec![
            K_TOKEN.into(),
            K_PULL_PROGRESS.into(),
            K_PUSH_BYTES.into(),
            K_PULL_PAGE.into(),
            K_PULL_AGAIN.into(),
        ],
    )
    .await?
    .ok_or_else(|| CoreError::new(Code::Database).with("detail", "no row from a plain SELECT"))?;
    let progress: Option<String> = row.try_get("", "progress")?;
    if row.try_get::<i64>("", "old_triggers")? > 0 {
        install_journal(db).await?;
    }
    let push_bytes: Option<String> = row.try_get("", "push_bytes")?;
    let pull_page: Option<String> = row.try_get("", "pull_page")?;
    Ok(RoundStart {
        token: row.try_get("", "token")?,
        progress_left: progress.is_some_and(|p| !p.is_empty()),
        push_bytes: push_bytes.and_then(|v| v.parse().ok()),
        pull_page: pull_page.and_then(|v| v.parse().ok()),
        pull_again: row.try_get::<Option<String>>("", "pull_again")?.is_some(),
    })
}

/// Apply one change to the device's SQLite database (inside the caller's transaction).
async fn apply_change<C: ConnectionTrait>(c: &C, columns: &mut Columns, ch: &Change) -> Result<()> {
    let Some((table, pk)) = TABLES.iter().find(|(t, _)| *t == ch.table) else {
        // A table this version does not know: skipped, not fatal, and remembered.
        columns.unknown_table(&ch.table);
        return Ok(());
    };
    if ch.op == "delete" {
        let keys: Vec<&str> = ch.pk.split('|').collect();
        let cond = pk
            .iter()
            .map(|k| format!("{k} = ?"))
            .collect::<Vec<_>>()
            .join(" AND ");
        sql::exec(
            c,
            &format!("DELETE FROM {table} WHERE {cond}"),
            keys.iter().map(|k| (*k).into()).collect(),
        )
        .await?;
        return Ok(());
    }
    let Value::Object(row) = &ch.row else {
        return Err(CoreError::invalid(
            "row",
            "同步数据格式错误",
            "malformed row in a pulled change",
        ));
    };
    // A local optimistic transfer that the server's decided otherwise (the same visit credited
    // under another id, by another device's confirmation) gives way to the server's.
    if ch.table == "transfers" {
        for key in ["credit_key", "reverses_id"] {
            if let Some(Value::String(k)) = row.get(key) {
                let losers = sql::all(
                    c,
                    &format!("SELECT id FROM transfers WHERE {key} = ? AND id <> ?"),
                    vec![k.clone().into(), ch.pk.clone().into()],
                )
                .await?;
                for l in losers {
                    let id: String = l.try_get("", "id")?;
                    sql::exec(
                        c,
                        "DELETE FROM ledger_entries WHERE transfer_id = ?",
                        vec![id.clone().into()],
                    )
                    .await?;
                    sql::exec(c, "DELETE FROM transfers WHERE id = ?", vec![id.into()]).await?;
                }
            }
        }
    }
    let cols = row.keys().collect::<Vec<_>>();
    upsert(c, columns, table, pk, &cols, &[row]).await
}

/// One statement upserting `rows` (objects with the columns `cols`) into `table`, in order.
/// The rows go to SQLite as one JSON array read by `jsonb_each`: the statement's text depends
/// only on the table and its columns (so it is prepared once, whatever the number of rows), and
/// `->>` gives each JSON value its SQL value: text, integer, real, 1 or 0 for a boolean, NULL,
/// the JSON text of an array or object. `jsonb_each` (not `json_each`) hands each row to `->>`
/// in SQLite's binary form, so the array is parsed once instead of each row again as text for
/// every column (that was an eighth of a new device's initial pull).
async fn upsert<C: ConnectionTrait>(
    c: &C,
    columns: &mut Columns,
    table: &str,
    pk: &[&str],
    cols: &[&String],
    rows: &[&serde_json::Map<String, Value>],
) -> Result<()> {
    if let Some(bad) = cols.iter().find(|c| !is_column_name(c)) {
        return Err(CoreError::invalid(
            "row",
            "同步数据格式错误",
            "malformed row in a pulled change",
        )
        .with("column", bad.as_str()));
    }
    let cols = &columns.known_of(c, table, cols).await?;
    let names = cols
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let values = cols
        .iter()
        .map(|c| format!("value ->> '{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let updates = cols
        .iter()
        .filter(|c| !pk.contains(&c.as_str()))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let action = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {updates}")
    };
    let json = serde_json::to_string(rows).map_err(|e| {
        CoreError::invalid(
            "row",
            "同步数据格式错误",
            "malformed row in a pulled change",
        )
        .with("detail", e)
    })?;
    if table == "members" && cols.iter().any(|c| c.as_str() == "phone") {
        give_up_pulled_phones(c, rows).await?;
    }
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join.
    sql::exec(
        c,
        &format!(
            "INSERT INTO {table} ({names}) SELECT {values} FROM jsonb_each(?) WHERE true ON CONFLICT ({}) {action}",
            pk.join(", ")
        ),
        vec![json.into()],
    )
    .await?;
    Ok(())
}

/// A phone number is one member's at a time (a unique index). The server's rows say whose it
/// is; a member of this device holding the number of a pulled member with another id (a
/// registration the server refused as a duplicate, or a member who gave the number up in a
/// partition not pulled yet) lets it go, marked with its own id after a `#`, until the round's
/// repair or the row's own change from the server puts it right. Otherwise the upsert of the
/// pulled rows would fail on that number in every round, and the device would never pull the
/// partition again. The holders are found in the server (one query of the phone's index per
/// 500 pulled rows: a join of the pulled JSON with `members` was planned as a scan of every
/// member for each pulled row).
async fn give_up_pulled_phones<C: ConnectionTrait>(
    c: &C,
    rows: &[&serde_json::Map<String, Value>],
) -> Result<()> {
    let mut claims: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for r in rows {
        if let (Some(Value::String(phone)), Some(Value::String(id))) = (r.get("phone"), r.get("id"))
        {
            claims.entry(phone.as_str()).or_default().push(id.as_str());
        }
    }
    let phones: Vec<&str> = claims.keys().copied().collect();
    let mut giving: Vec<String> = Vec::new();
    for chunk in phones.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let held = sql::all(
            c,
            &format!("SELECT id, phone FROM members WHERE phone IN ({marks})"),
            chunk.iter().map(|p| (*p).into()).collect(),
        )
        .await?;
        for h in held {
            let (id, phone): (String, String) = (h.try_get("", "id")?, h.try_get("", "phone")?);
            if claims
                .get(phone.as_str())
                .is_some_and(|ids| ids.iter().any(|other| *other != id))
            {
                giving.push(id);
            }
        }
    }
    for chunk in giving.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        sql::exec(
            c,
            &format!("UPDATE members SET phone = phone || '#' || id WHERE id IN ({marks})"),
            chunk.iter().map(|id| id.clone().into()).collect(),
        )
        .await?;
    }
    Ok(())
}

/// The columns of the device's synced tables, read once for each transaction that applies
/// the server's rows, and what of the pulled rows the device's schema lacks. A device one
/// schema version behind the city (the server serves two) gets rows of a table that a
/// migration has given a new column, or of a new table: the device keeps the columns it has
/// (before, SQLite refused the row, and the page failed in every round until the app was
/// updated) and skips the tables it does not know, and remembers what it left out
/// ([`K_UNKNOWN_COLUMNS`]): once an update of the app adds it, the device pulls everything
/// again ([`after_migrations`]), so its rows get the values it left out.
#[derive(Default)]
struct Columns {
    known: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// By table, the columns left out; a table the device does not have at all, with none.
    unknown: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl Columns {
    /// `cols` of a pulled row of `table` that the device's table has, in their order; the
    /// others are noted.
    async fn known_of<'a, C: ConnectionTrait>(
        &mut self,
        c: &C,
        table: &str,
        cols: &[&'a String],
    ) -> Result<Vec<&'a String>> {
        if !self.known.contains_key(table) {
            let have = table_columns(c, table).await?.into_iter().collect();
            self.known.insert(table.to_owned(), have);
        }
        let have = &self.known[table];
        let (keep, leave): (Vec<&String>, Vec<&String>) =
            cols.iter().partition(|col| have.contains(col.as_str()));
        if !leave.is_empty() {
            self.unknown
                .entry(table.to_owned())
                .or_default()
                .extend(leave.into_iter().cloned());
        }
        Ok(keep)
    }

    /// Note a pulled row of a table this version does not know (it is skipped).
    fn unknown_table(&mut self, table: &str) {
        if is_column_name(table) {
            self.unknown.entry(table.to_owned()).or_default();
        }
    }

    /// Add what was left out to what is remembered, inside the applying transaction.
    async fn remember_unknown<C: ConnectionTrait>(&self, c: &C) -> Result<()> {
        if self.unknown.is_empty() {
            return Ok(());
        }
        let mut all = unknown_columns(c).await?;
        for (table, cols) in &self.unknown {
            all.entry(table.clone())
                .or_default()
                .extend(cols.iter().cloned());
        }
        set_setting(
            c,
            K_UNKNOWN_COLUMNS,
            &serde_json::to_string(&all).unwrap_or_default(),
        )
        .await
    }
}

/// What the device left out of pulled rows, by table ([`K_UNKNOWN_COLUMNS`]); a setting that
/// cannot be read is nothing.
async fn unknown_columns<C: ConnectionTrait>(
    c: &C,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>> {
    Ok(get_setting(c, K_UNKNOWN_COLUMNS)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

/// What a device does once its schema is up to date ([`crate::db::connect`]), when the
/// migrations changed its synced tables:
/// - its journal's triggers, built from the columns of each table when it was enrolled (or
///   since), are built again when they were built for another schema version
///   ([`K_JOURNAL_SCHEMA`]): a column a migration added would otherwise be missing from the
///   before-images, and a rebase would leave it as a waiting mutation set it;
/// - when its tables now have a column (or a table) it left out of pulled rows ([`Columns`]),
///   its next round pulls everything again ([`K_PULL_AGAIN`]: what was pulled is forgotten
///   as the round starts pulling, the outbox kept, as when the city's log no longer goes back
///   as far as its cursor). Until then it keeps its rows, so it works offline as before. (Its
///   cursors are not merely moved back: the log from the start would take rows back to older
///   versions page by page, over rows the city has since lost or deleted for good.)
pub async fn after_migrations(db: &DatabaseConnection) -> Result<()> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    let row = sql::one(
        db,
        "SELECT (SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' \
         AND name LIKE 'cj!_%' ESCAPE '!') AS journal, \
         (SELECT value FROM device_settings WHERE key = ?) AS built_for, \
         (SELECT value FROM device_settings WHERE key = ?) AS unknown",
        vec![K_JOURNAL_SCHEMA.into(), K_UNKNOWN_COLUMNS.into()],
    )
    .await?;
    let Some(row) = row else { return Ok(()) };
    let journal: i64 = row.try_get("", "journal")?;
    let built_for: Option<String> = row.try_get("", "built_for")?;
    if journal > 0 && built_for.as_deref() != Some(&SCHEMA_VERSION.to_string()) {
        install_journal(db).await?;
    }
    if row.try_get::<Option<String>>("", "unknown")?.is_none() {
        return Ok(());
    }
    let txn = crate::db::begin_write(db).await?;
    let mut left_out = unknown_columns(&txn).await?;
    let mut added = false;
    let mut done = Vec::new();
    for (table, cols) in left_out.iter_mut() {
        let have = table_columns(&txn, table).await?;
        if have.is_empty() {
            continue; // a table it still does not have
        }
        let before = cols.len();
        cols.retain(|c| !have.contains(c));
        // A table it did not have (no columns noted), or a column it had not.
        if before == 0 || cols.len() < before {
            added = true;
        }
        if cols.is_empty() {
            done.push(table.clone());
        }
    }
    for table in done {
        left_out.remove(&table);
    }
    if added {
        set_setting(&txn, K_PULL_AGAIN, "1").await?;
        if left_out.is_empty() {
            sql::exec(
                &txn,
                "DELETE FROM device_settings WHERE key = ?",
                vec![K_UNKNOWN_COLUMNS.into()],
            )
            .await?;
        } else {
            set_setting(
                &txn,
                K_UNKNOWN_COLUMNS,
                &serde_json::to_string(&left_out).unwrap_or_default(),
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// A column name as the schema spells them (the names of a pulled row become SQL text).
fn is_column_name(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Rows of one table per multi-row upsert when a page is applied.
const UPSERT_ROWS: usize = 1000;

/// Apply changes (inside the caller's transaction) table by table, parents first, each table's
/// changes in their order: consecutive upserts of one table with the same columns go in one
/// statement (SQLite applies its rows one after the other, so a row twice in a run ends as its
/// later version); deletes, and transfers while the device holds optimistic ones of its own,
/// one by one. Taking the tables apart changes nothing in the result: a row's changes keep
/// their order, unique constraints are within one table, foreign keys are checked at commit,
/// and the capture triggers step aside while a page is applied. (In log order a page is
/// mostly one or two rows per table at a time: each mutation's rows one after the other.)
async fn apply_changes<C: ConnectionTrait>(c: &C, changes: &[&Change]) -> Result<()> {
    let mut columns = Columns::default();
    let mut changes = changes.to_vec();
    changes.sort_by_key(|ch| {
        TABLES
            .iter()
            .position(|(t, _)| *t == ch.table)
            .unwrap_or(TABLES.len())
    });
    let own_transfers = sql::scalar_i64(
        c,
        "SELECT COUNT(*) FROM change_queue WHERE tbl = 'transfers' AND mutation_id IS NOT NULL",
        vec![],
    )
    .await?
        > 0;
    fn batchable(
        ch: &Change,
        own_transfers: bool,
    ) -> Option<(&'static [&'static str], Vec<&String>)> {
        let (_, pk) = TABLES.iter().find(|(t, _)| *t == ch.table)?;
        match (&ch.row, ch.op.as_str()) {
            (Value::Object(row), "upsert") if !(own_transfers && ch.table == "transfers") => {
                Some((pk, row.keys().collect()))
            }
            _ => None,
        }
    }
    let mut i = 0;
    while i < changes.len() {
        let Some((pk, cols)) = batchable(changes[i], own_transfers) else {
            apply_change(c, &mut columns, changes[i]).await?;
            i += 1;
            continue;
        };
        let table = &changes[i].table;
        let mut j = i + 1;
        while j < changes.len()
            && j - i < UPSERT_ROWS
            && changes[j].table == *table
            && batchable(changes[j], own_transfers).is_some_and(|(_, k)| k == cols)
        {
            j += 1;
        }
        let rows: Vec<&serde_json::Map<String, Value>> = changes[i..j]
            .iter()
            .filter_map(|ch| match &ch.row {
                Value::Object(row) => Some(row),
                _ => None,
            })
            .collect();
        upsert(c, &mut columns, table, pk, &cols, &rows).await?;
        i = j;
    }
    columns.remember_unknown(c).await
}

/// The partitions this device pulls (`*` and its communities), None when it was never
/// enrolled; a setting that cannot be read is no partition at all.
pub async fn enrolled_partitions<C: ConnectionTrait>(c: &C) -> Result<Option<Vec<String>>> {
    Ok(get_setting(c, K_PARTITIONS)
        .await?
        .map(|s| serde_json::from_str(&s).unwrap_or_default()))
}

/// What this device was enrolled for (its role and communities), None when it was never
/// enrolled (or on the city server, whose database holds no enrolment).
pub async fn enrolled_grant<C: ConnectionTrait>(c: &C) -> Result<Option<Grant>> {
    let Some(role) = get_setting(c, K_ROLE).await? else {
        return Ok(None);
    };
    let parts = enrolled_partitions(c).await?.unwrap_or_default();
    Ok(Some(Grant::new(
        &role,
        parts.iter().filter(|p| p.as_str() != "*"),
    )))
}

fn cursor_key(partition: &str) -> String {
    format!("sync_cursor:{partition}")
}

/// Apply a page and advance the partition's cursor in one transaction. A page whose
/// checksum does not match, or that does not start after the cursor, changes nothing.
pub async fn apply_page(
    db: &DatabaseConnection,
    partition: &str,
    page: &PullPage,
) -> Result<usize> {
    if checksum(&page.changes) != page.checksum {
        return Err(CoreError::invalid(
            "checksum",
            "同步数据校验失败，将重新获取",
            "a pulled page failed its checksum; it will be fetched again",
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    let cursor: i64 = get_setting(&txn, &cursor_key(partition))
        .await?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if page.next_after <= cursor {
        return Ok(0); // already applied
    }
    begin_apply(&txn).await?;
    let waiting = take_back_waiting(&txn).await?;
    let fresh: Vec<&Change> = page.changes.iter().filter(|c| c.seq > cursor).collect();
    apply_changes(&txn, &fresh).await?;
    let n = fresh.len();
    end_apply(&txn).await?;
    redo_waiting(&txn, &waiting).await?;
    set_setting(&txn, &cursor_key(partition), &page.next_after.to_string()).await?;
    txn.commit().await?;
    Ok(n)
}

/// The first half of the rebase (sync.md): take the effects of the mutations waiting in the
/// outbox back, newest journal entry first, to the rows as they were before (from the journal's
/// before-images; a row a waiting mutation created is removed), and drop their journal. Runs
/// between [`begin_apply`] and [`end_apply`], so nothing of it is journalled. Gives the waiting
/// mutations in sequence order for [`redo_waiting`].
async fn take_back_waiting<C: ConnectionTrait>(
    txn: &C,
) -> Result<Vec<crate::entities::outbox::Model>> {
    let waiting = outbox::pending(txn).await?;
    if waiting.is_empty() {
        return Ok(waiting);
    }
    let journal = sql::all(
        txn,
        "SELECT q.tbl, q.pk, q.before_row FROM change_queue q JOIN outbox o ON o.id = q.mutation_id \
         WHERE o.status = 'pending' ORDER BY q.rowid DESC",
        vec![],
    )
    .await?;
    // The journal's before-images are of the device's own tables (a column a migration has
    // since removed is left out).
    let mut columns = Columns::default();
    for r in &journal {
        let table: String = r.try_get("", "tbl")?;
        let pk: String = r.try_get("", "pk")?;
        // No image: journalled by an older version's triggers; the row stays as it is.
        let Some(before) = r.try_get::<Option<String>>("", "before_row")? else {
            continue;
        };
        let row: Value = serde_json::from_str(&before).unwrap_or(Value::Null);
        let op = if row.is_object() { "upsert" } else { "delete" };
        apply_change(
            txn,
            &mut columns,
            &Change {
                seq: 0,
                table,
                pk,
                op: op.into(),
                row,
            },
        )
        .await?;
    }
    sql::exec(
        txn,
        "DELETE FROM change_queue WHERE mutation_id IN (SELECT id FROM outbox WHERE status = 'pending')",
        vec![],
    )
    .await?;
    Ok(waiting)
}

/// The second half of the rebase: run the waiting mutations again, in sequence order, on top of
/// the server's rows, each in a savepoint, as the city server will (`Ctx::replaying`: the
/// same ids, the time they were made, the PIN the device checked then), journalling their rows
/// again. One that no longer holds (the server's rows say the order is full now) leaves no
/// trace on screen and stays in the outbox: the server decides it, and a refusal reaches the
/// user's inbox.
async fn redo_waiting(
    txn: &DatabaseTransaction,
    waiting: &[crate::entities::outbox::Model],
) -> Result<()> {
    use crate::service::{self, Command, Ctx};
    for w in waiting {
        let args: Value = serde_json::from_str(&w.args).unwrap_or(Value::Null);
        let Ok(cmd) = Command::from_parts(&w.name, args) else {
            continue;
        };
        let ctx = Ctx::redoing(&w.actor_id, &w.device_id, w.created_at, &w.id);
        let sp = txn.begin().await?;
        match service::execute_in(&sp, &ctx, &cmd).await {
            Ok(_) => {
                outbox::journal(&sp, &w.id).await?;
                sp.commit().await?;
            }
            Err(e) => {
                tracing::info!(mutation = %w.id, error = %e.message(crate::Lang::En), "a waiting mutation no longer applies on the pulled rows");
                sp.rollback().await?;
            }
        }
    }
    Ok(())
}

/// Start writing the server's rows in `txn`: foreign keys are checked at commit (a page may
/// hold a row before the row it refers to), and the append-only ledger triggers step aside so
/// that a pending entry can be replaced by the final one.
async fn begin_apply<C: ConnectionTrait>(txn: &C) -> Result<()> {
    txn.execute_unprepared("PRAGMA defer_foreign_keys = ON")
        .await?;
    set_setting(txn, APPLYING, "1").await
}

/// Finish writing the server's rows: the ledger triggers are back, and the rows the apply
/// queued are dropped from the journal (they are the server's, not a local mutation's).
async fn end_apply<C: ConnectionTrait>(txn: &C) -> Result<()> {
    sql::exec(
        txn,
        "DELETE FROM device_settings WHERE key = 'sync_applying'",
        vec![],
    )
    .await?;
    sql::exec(
        txn,
        "DELETE FROM change_queue WHERE mutation_id IS NULL",
        vec![],
    )
    .await?;
    Ok(())
}

/// Replace rows a confirmed local mutation touched, and that the pull did not bring, by the
/// server's version (or remove them when the server has none): what was optimistic and turned
/// out otherwise (a rejected acceptance, a credit the server computed differently) converges.
async fn repair<T: Transport>(
    db: &DatabaseConnection,
    t: &T,
    token: &str,
    pulled: &std::collections::HashSet<(String, String)>,
    report: &mut SyncReport,
) -> Result<()> {
    let rows = sql::all(
        db,
        "SELECT DISTINCT tbl, pk FROM change_queue WHERE mutation_id IN (SELECT id FROM outbox WHERE status IN ('applied', 'rejected'))",
        vec![],
    )
    .await?;
    let keys: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get::<String>("", "tbl").ok()?,
                r.try_get::<String>("", "pk").ok()?,
            ))
        })
        .filter(|k| !pulled.contains(k))
        .collect();
    for chunk in keys.chunks(500) {
        let states = t.rows(token, chunk).await?;
        let txn = crate::db::begin_write(db).await?;
        begin_apply(&txn).await?;
        let waiting = take_back_waiting(&txn).await?;
        let mut columns = Columns::default();
        for st in &states {
            let ch = Change {
                seq: 0,
                table: st.table.clone(),
                pk: st.pk.clone(),
                op: if st.row.is_some() {
                    "upsert".into()
                } else {
                    "delete".into()
                },
                row: st.row.clone().unwrap_or(Value::Null),
            };
            apply_change(&txn, &mut columns, &ch).await?;
            report.repaired += 1;
        }
        columns.remember_unknown(&txn).await?;
        end_apply(&txn).await?;
        redo_waiting(&txn, &waiting).await?;
        txn.commit().await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SyncReport {
    pub pushed: usize,
    pub rejected: usize,
    pub pulled: usize,
    /// Optimistic rows replaced by the server's version after the server decided otherwise.
    pub repaired: usize,
    /// The device had to pull everything again (its cursor fell behind the server's horizon).
    pub resynced: bool,
    pub rejections: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SyncStatus {
    pub enrolled: bool,
    pub server: Option<String>,
    /// True when the last attempt reached the server.
    pub online: bool,
    pub pending: i64,
    pub last_success_ms: Option<i64>,
    /// The last problem in plain words (zh-CN), if the last attempt failed.
    pub last_error: Option<String>,
    /// The same in English.
    pub last_error_en: Option<String>,
    /// While a round is pulling: how many changes have arrived of how many known so far.
    pub pull: Option<PullProgress>,
}

/// How far the pull of a round has got. `total` counts the changes the server had for the
/// partitions reached so far, so it can grow when the round moves on to the next partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PullProgress {
    pub received: i64,
    pub total: i64,
    /// The partition being pulled (`*` for city-wide rows, else a community id).
    pub partition: String,
}

pub async fn status(db: &DatabaseConnection) -> Result<SyncStatus> {
    let server = get_setting(db, K_SERVER).await?;
    let last_error = get_setting(db, K_LAST_ERROR)
        .await?
        .filter(|s| !s.is_empty());
    Ok(SyncStatus {
        enrolled: get_setting(db, K_TOKEN).await?.is_some(),
        server,
        online: last_error.is_none() && get_setting(db, K_LAST_OK).await?.is_some(),
        pending: sql::scalar_i64(
            db,
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
            vec![],
        )
        .await?,
        last_success_ms: get_setting(db, K_LAST_OK)
            .await?
            .and_then(|s| s.parse().ok()),
        last_error_en: if last_error.is_some() {
            get_setting(db, K_LAST_ERROR_EN)
                .await?
                .filter(|s| !s.is_empty())
        } else {
            None
        },
        last_error,
        pull: get_setting(db, K_PULL_PROGRESS)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

/// Store an enrolment in a new, empty device database.
pub async fn store_enrolment(db: &DatabaseConnection, server: &str, e: &Enrolled) -> Result<()> {
    if get_setting(db, outbox::K_DEVICE_ID).await?.is_some() {
        return Err(CoreError::invalid(
            "database",
            "这个数据库已经属于一台设备，请用新的数据库文件登记",
            "this database already belongs to a device; enrol into a new database file",
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    set_setting(&txn, outbox::K_DEVICE_ID, &e.device_id).await?;
    set_setting(&txn, outbox::K_CENTER, &e.center_id).await?;
    set_setting(&txn, outbox::K_NEXT_SEQ, "1").await?;
    set_setting(&txn, K_SERVER, server.trim_end_matches('/')).await?;
    set_setting(&txn, K_TOKEN, &e.token).await?;
    set_setting(&txn, K_ROLE, &e.role).await?;
    let mut parts = vec!["*".to_owned()];
    parts.extend(e.communities.iter().cloned());
    set_setting(
        &txn,
        K_PARTITIONS,
        &serde_json::to_string(&parts).unwrap_or_default(),
    )
    .await?;
    txn.commit().await?;
    install_journal(db).await
}

/// Up to a batch of the outbox's waiting mutations after sequence `after`, in order: at most
/// [`BATCH`] of them, and no more than `bytes` of JSON (but at least one). The stored `args`
/// is the compact JSON the mutation is sent with, so the texts' lengths and
/// [`MUTATION_JSON_EXTRA`] bound its size on the wire.
async fn waiting_after(db: &DatabaseConnection, after: i64, bytes: usize) -> Result<Vec<Mutation>> {
    let rows = sql::all(db, "SELECT id, seq, name, args, hlc, schema_version, actor_id, created_at FROM outbox WHERE status = 'pending' AND seq > ? ORDER BY seq LIMIT ?", vec![after.into(), (BATCH as i64).into()]).await?;
    let mut batch = Vec::with_capacity(rows.len());
    let mut size = 0;
    for r in &rows {
        let args: String = r.try_get("", "args")?;
        let m = Mutation {
            id: r.try_get("", "id")?,
            seq: r.try_get("", "seq")?,
            name: r.try_get("", "name")?,
            args: serde_json::from_str(&args).unwrap_or(Value::Null),
            hlc: r.try_get("", "hlc")?,
            schema_version: r.try_get("", "schema_version")?,
            actor_id: r.try_get("", "actor_id")?,
            at: Some(r.try_get("", "created_at")?),
        };
        size += args.len()
            + m.id.len()
            + m.name.len()
            + m.hlc.len()
            + m.actor_id.len()
            + MUTATION_JSON_EXTRA;
        if size > bytes && !batch.is_empty() {
            break;
        }
        batch.push(m);
    }
    Ok(batch)
}

/// One batch on its way to the server, and the server's answer.
async fn send_batch<T: Transport>(
    t: &T,
    token: &str,
    batch: Vec<Mutation>,
) -> (Vec<Mutation>, Result<PushResponse>) {
    let r = t.push(token, &batch).await;
    (batch, r)
}

/// Push the outbox, in batches of at most `own_bytes` (the device's own limit, see
/// [`K_PUSH_BYTES`]) or the transport's. True when it stopped because the waiting mutations
/// were numbered again to follow the server's record ([`outbox::renumber_waiting`]): push
/// again.
async fn push_all<T: Transport>(
    db: &DatabaseConnection,
    t: &T,
    token: &str,
    own_bytes: Option<usize>,
    report: &mut SyncReport,
) -> Result<bool> {
    use futures_util::StreamExt;
    let depth = t.pushes_in_flight().max(1);
    let most = t.push_bytes();
    let bytes = own_bytes.map_or(most, |b| b.clamp(MIN_PUSH_BYTES.min(most), most));
    // A batch got through whole in this round.
    let mut through = false;
    let mut in_flight = futures_util::stream::FuturesOrdered::new();
    // Answers that came while the next batch was read, in order (before those still on their
    // way).
    let mut landed = std::collections::VecDeque::new();
    // The last sequence sent in this stretch of batches (0: read the outbox from its start).
    let mut sent_up_to = 0;
    // After an answer that did not take its batch whole, one batch goes alone until the server
    // takes one whole again (so a batch the server truly cannot place is not resent forever).
    let mut alone = false;
    loop {
        while in_flight.len() + landed.len() < if alone { 1 } else { depth } {
            // Read while the batches before go on their way (a request moves only while its
            // future is polled); a fresh read also sees what users did meanwhile.
            let read = waiting_after(db, sent_up_to, bytes);
            tokio::pin!(read);
            let batch = loop {
                tokio::select! {
                    biased;
                    b = &mut read => break b?,
                    Some(r) = in_flight.next(), if !in_flight.is_empty() => landed.push_back(r),
                }
            };
            let Some(last) = batch.last().map(|m| m.seq) else {
                break;
            };
            sent_up_to = last;
            in_flight.push_back(send_batch(t, token, batch));
        }
        let next = match landed.pop_front() {
            Some(r) => Some(r),
            None => in_flight.next().await,
        };
        let Some((batch, resp)) = next else {
            if through && bytes < most {
                // The line may carry more again: tried in the next round.
                own_limit(
                    db,
                    K_PUSH_BYTES,
                    bytes.saturating_mul(2) as u64,
                    most as u64,
                )
                .await?;
            }
            return Ok(false);
        };
        // An error drops the batches still on their way; the server keeps what it applied
        // of them and answers their next delivery from its stored results. A batch that
        // timed out goes in smaller batches from now on (see [`K_PUSH_BYTES`]).
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                if timed_out(&e) && batch.len() > 1 {
                    let size = serde_json::to_vec(&batch).map_or(bytes, |v| v.len());
                    let less = (size.min(bytes) / 2).max(MIN_PUSH_BYTES.min(most));
                    set_setting(db, K_PUSH_BYTES, &less.to_string()).await?;
                }
                return Err(e);
            }
        };
        let first = batch.first().map_or(0, |m| m.seq);
        let last = batch.last().map_or(0, |m| m.seq);
        let whole = resp.next_seq == last + 1;
        through |= whole;
        if resp.results.is_empty() {
            if resp.next_seq > first {
                // The server already has them all (a previous round's answer was lost).
                sql::exec(
                    db,
                    "UPDATE outbox SET status = 'applied' WHERE status = 'pending' AND seq < ?",
                    vec![resp.next_seq.into()],
                )
                .await?;
            } else if alone && resp.next_seq < first {
                // The server expects an earlier sequence than the outbox holds, and this batch
                // went alone, so it overtook nothing: the city's database went back in time and
                // lost what this device sent before. Its waiting mutations follow on from what
                // the city has, or they would wait for ever (and every round with them).
                outbox::renumber_waiting(db, first, resp.next_seq).await?;
                return Ok(true);
            } else if alone {
                return Err(CoreError::new(Code::Io).with(
                    "detail",
                    format!(
                        "the server expects sequence {} and took nothing from {first}",
                        resp.next_seq
                    ),
                ));
            }
            // Else it may have overtaken the batch before it, which the server had not
            // finished: sent again below, alone.
        } else if settle(db, &batch, &resp, report).await? {
            return Ok(true);
        }
        if !whole {
            // Let the batches still on their way land (their answers count), then go on from
            // the outbox's first waiting mutation, one batch at a time.
            landed.extend(in_flight.by_ref().collect::<Vec<_>>().await);
            for (sent, r) in landed.drain(..) {
                if let Ok(r) = r {
                    if settle(db, &sent, &r, report).await? {
                        return Ok(true);
                    }
                }
            }
            sent_up_to = 0;
            alone = true;
        } else {
            alone = false;
        }
    }
}

/// Record the server's answers to `batch`, unless one of them is for another mutation than the
/// one sent under its sequence: the device's database was restored from a backup and numbers
/// again sequences the city has answered for others (the server applies nothing after such a
/// sequence). Then the answers before it are recorded, the waiting mutations from it on are
/// numbered again after the city's, and the answer is true (push again); marking the mutation
/// with another's answer would drop it once the pull did not bring its rows.
async fn settle(
    db: &DatabaseConnection,
    batch: &[Mutation],
    resp: &PushResponse,
    report: &mut SyncReport,
) -> Result<bool> {
    let reused = resp
        .results
        .iter()
        .filter(|r| {
            batch
                .binary_search_by_key(&r.seq, |m| m.seq)
                .is_ok_and(|i| batch[i].id != r.mutation_id)
        })
        .map(|r| r.seq)
        .min();
    let Some(from) = reused else {
        if !resp.results.is_empty() {
            record_answers(db, resp, report).await?;
        }
        return Ok(false);
    };
    let sound = PushResponse {
        results: resp
            .results
            .iter()
            .filter(|r| r.seq < from)
            .cloned()
            .collect(),
        next_seq: resp.next_seq,
    };
    if !sound.results.is_empty() {
        record_answers(db, &sound, report).await?;
    }
    outbox::renumber_waiting(db, from, Ord::max(resp.next_seq, from + 1)).await?;
    Ok(true)
}

/// Mark the answered mutations in the outbox (one transaction, one statement per status, the
/// sequences as a JSON list: one pass over the outbox, not one query per mutation) and count
/// them in the report.
async fn record_answers(
    db: &DatabaseConnection,
    resp: &PushResponse,
    report: &mut SyncReport,
) -> Result<()> {
    let mut by_status: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for r in &resp.results {
        by_status.entry(r.status.as_str()).or_default().push(r.seq);
    }
    let txn = crate::db::begin_write(db).await?;
    let mut marked = 0;
    for (status, seqs) in by_status {
        marked += sql::exec(
            &txn,
            "UPDATE outbox SET status = ? WHERE status = 'pending' \
             AND seq IN (SELECT value FROM json_each(?))",
            vec![
                status.into(),
                serde_json::to_string(&seqs).unwrap_or_default().into(),
            ],
        )
        .await?;
    }
    txn.commit().await?;
    if marked == 0 {
        // Answers for nothing that was sent: sending the same batch again would loop.
        return Err(CoreError::new(Code::Io).with(
            "detail",
            "the server's answers match no mutation the device sent",
        ));
    }
    for r in &resp.results {
        if r.status == "applied" {
            report.pushed += 1;
        } else {
            report.rejected += 1;
            report
                .rejections
                .push(serde_json::json!({"seq": r.seq, "error": r.result}));
        }
    }
    Ok(())
}

/// Forget every row the server sent and every cursor (and [`K_PULL_AGAIN`]), in one
/// transaction (children before parents: the schema's foreign keys restrict deletes), so that
/// the next pull starts from the beginning. The outbox and the journal of its mutations stay.
pub async fn forget_pulled(db: &DatabaseConnection) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    begin_apply(&txn).await?;
    // Mutations waiting in the outbox are run again on the pulled rows, page by page.
    take_back_waiting(&txn).await?;
    for (t, _) in TABLES.iter().rev() {
        // Rows referring to rows of the same table go first, level by level.
        let self_ref = match *t {
            "places" => Some("parent_id"),
            "transfers" => Some("reverses_id"),
            _ => None,
        };
        if let Some(col) = self_ref {
            loop {
                let n = sql::exec(
                    &txn,
                    &format!("DELETE FROM {t} WHERE id NOT IN (SELECT {col} FROM {t} WHERE {col} IS NOT NULL)"),
                    vec![],
                )
                .await?;
                if n == 0 {
                    break;
                }
            }
        }
        sql::exec(&txn, &format!("DELETE FROM {t}"), vec![]).await?;
    }
    sql::exec(
        &txn,
        "DELETE FROM device_settings WHERE key LIKE 'sync_cursor:%' OR key = ?",
        vec![K_PULL_AGAIN.into()],
    )
    .await?;
    end_apply(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Pull every partition, in pages of `own_page` changes (the device's own size, see
/// [`K_PULL_PAGE`]) or [`PULL_PAGE`]; when the server says a cursor is past what it keeps,
/// forget what was pulled and pull everything again (once per round).
async fn pull_all<T: Transport>(
    db: &DatabaseConnection,
    t: &T,
    token: &str,
    own_page: Option<i64>,
    report: &mut SyncReport,
    pulled: &mut std::collections::HashSet<(String, String)>,
    on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<()> {
    let limit = own_page.map_or(PULL_PAGE, |l| l.clamp(MIN_PULL_PAGE, PULL_PAGE));
    match pull_parts(db, t, token, limit, report, pulled, on_progress).await {
        Err(e) if e.code == Code::ResyncRequired && !report.resynced => {
            forget_pulled(db).await?;
            report.resynced = true;
            pull_parts(db, t, token, limit, report, pulled, on_progress).await
        }
        other => other,
    }
}

/// Remember the device's own limit `key` ([`K_PUSH_BYTES`], [`K_PULL_PAGE`]), or forget it
/// once it reaches the most (`most`) and the default applies again.
async fn own_limit(db: &DatabaseConnection, key: &str, limit: u64, most: u64) -> Result<()> {
    if limit >= most {
        sql::exec(
            db,
            "DELETE FROM device_settings WHERE key = ?",
            vec![key.into()],
        )
        .await?;
        Ok(())
    } else {
        set_setting(db, key, &limit.to_string()).await
    }
}

/// The server did not answer in time (the HTTP transport marks a timeout so).
fn timed_out(e: &CoreError) -> bool {
    e.code == Code::ServerUnreachable && e.detail.get("timeout").is_some_and(|v| v == "true")
}

/// A pulled page, or the error; after a timeout, the device's own page size is halved for the
/// next round (see [`K_PULL_PAGE`]).
async fn shrink_on_timeout(
    db: &DatabaseConnection,
    page: Result<PullPage>,
    limit: i64,
) -> Result<PullPage> {
    if let Err(e) = &page {
        if timed_out(e) && limit > MIN_PULL_PAGE {
            set_setting(db, K_PULL_PAGE, &(limit / 2).max(MIN_PULL_PAGE).to_string()).await?;
        }
    }
    page
}

async fn pull_parts<T: Transport>(
    db: &DatabaseConnection,
    t: &T,
    token: &str,
    limit: i64,
    report: &mut SyncReport,
    pulled: &mut std::collections::HashSet<(String, String)>,
    on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<()> {
    let parts = enrolled_partitions(db).await?.unwrap_or_default();
    // Changes received this round, and known to exist, in the partitions before this one.
    let mut before = 0;
    for p in parts {
        let mut start = None;
        let mut progress = PullProgress::default();
        let mut cursor: i64 = get_setting(db, &cursor_key(&p))
            .await?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut page = shrink_on_timeout(db, t.pull(token, &p, cursor, limit).await, limit).await?;
        loop {
            // Not "no changes": a page whose entries are all withheld from this device (staff's
            // safeguarding reports on a volunteer's laptop) has none and goes on. A page that
            // does not move the cursor ends the pull (nothing would change on asking again).
            let done = page.next_after >= page.head || page.next_after <= cursor;
            // The next page is fetched while this one is applied (the server and the network
            // work while the device writes).
            let (n, next) = if done {
                (apply_page(db, &p, &page).await?, None)
            } else {
                let (n, next) = tokio::join!(
                    apply_page(db, &p, &page),
                    t.pull(token, &p, page.next_after, limit)
                );
                (n?, Some(shrink_on_timeout(db, next, limit).await?))
            };
            pulled.extend(page.changes.iter().map(|c| (c.table.clone(), c.pk.clone())));
            report.pulled += n;
            // Only a pull of more than one page is worth showing.
            if !done || start.is_some() {
                let from = *start.get_or_insert(cursor);
                progress = PullProgress {
                    received: before + (page.next_after.min(page.head) - from).max(0),
                    total: before + (page.head - from).max(0),
                    partition: p.clone(),
                };
                set_setting(
                    db,
                    K_PULL_PROGRESS,
                    &serde_json::to_string(&progress).unwrap_or_default(),
                )
                .await?;
                on_progress(&progress);
            }
            match next {
                Some(next) => {
                    cursor = page.next_after;
                    page = next;
                }
                None => break,
            }
        }
        before = progress.total.max(before);
    }
    if limit < PULL_PAGE {
        // The line may carry more again: tried in the next round.
        own_limit(
            db,
            K_PULL_PAGE,
            limit.saturating_mul(2) as u64,
            PULL_PAGE as u64,
        )
        .await?;
    }
    Ok(())
}

/// The end of a round in one transaction (one commit, on the disk with `synchronous=FULL`):
/// forget the progress of its pull and record its outcome for [`status`].
async fn finish_round(db: &DatabaseConnection, result: &Result<()>) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    set_setting(&txn, K_PULL_PROGRESS, "").await?;
    match result {
        Ok(()) => {
            set_setting(&txn, K_LAST_OK, &crate::service::now_ms().to_string()).await?;
            set_setting(&txn, K_LAST_ERROR, "").await?;
            set_setting(&txn, K_LAST_ERROR_EN, "").await?;
        }
        Err(e) => {
            set_setting(&txn, K_LAST_ERROR, &e.message(crate::Lang::Zh)).await?;
            set_setting(&txn, K_LAST_ERROR_EN, &e.message(crate::Lang::En)).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// One round: push the outbox, pull every partition, then drop the mutations the pulled state
/// now includes. Records the outcome for [`status`].
pub async fn sync_once<T: Transport>(db: &DatabaseConnection, t: &T) -> Result<SyncReport> {
    sync_once_with_progress(db, t, &|_| {}).await
}

/// A device's database syncs one round at a time: its background loop, an enrolment's first
/// pull and `timebank sync` beside the app would otherwise run rounds side by side, and one's
/// restart of a pull from the beginning (a resync) could meet the other's page taken before
/// it, moving a cursor past entries never applied; or one could drop from the outbox a mutation
/// the other had just marked, before repairing its rows. Held by an OS lock on a file beside
/// the database, `<database>.sync-lock`, which the system releases when the round ends or its
/// process dies; a round that finds it held waits for it. None for a database in memory.
struct RoundLock {
    _file: Option<std::fs::File>,
}

async fn lock_round(db: &DatabaseConnection) -> Result<RoundLock> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(RoundLock { _file: None });
    }
    let main = sql::one(
        db,
        "SELECT file FROM pragma_database_list WHERE name = 'main'",
        vec![],
    )
    .await?;
    let path: String = main
        .and_then(|r| r.try_get("", "file").ok())
        .unwrap_or_default();
    if path.is_empty() {
        return Ok(RoundLock { _file: None });
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(format!("{path}.sync-lock"))?;
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| CoreError::new(Code::Io).with("detail", e.to_string()))??;
    Ok(RoundLock { _file: Some(file) })
}

/// [`sync_once`], telling `on_progress` after each page of a pull longer than one page (the
/// same figures [`status`] shows while the round runs).
pub async fn sync_once_with_progress<T: Transport>(
    db: &DatabaseConnection,
    t: &T,
    on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<SyncReport> {
    let _one_at_a_time = lock_round(db).await?;
    let start = round_start(db).await?;
    let token = start.token.ok_or_else(|| {
        CoreError::invalid(
            "device",
            "本机还没有登记到城市服务器",
            "this device is not enrolled with a city server",
        )
    })?;
    let mut report = SyncReport::default();
    if start.progress_left {
        set_setting(db, K_PULL_PROGRESS, "").await?;
    }
    let result = async {
        // Pushed again after the waiting mutations were numbered again (a few times at most:
        // the next round goes on).
        for _ in 0..3 {
            if !push_all(db, t, &token, start.push_bytes, &mut report).await? {
                break;
            }
        }
        // An update of the app made the device's tables hold what it left out of pulled rows.
        if start.pull_again {
            forget_pulled(db).await?;
            report.resynced = true;
        }
        let mut pulled = std::collections::HashSet::new();
        pull_all(
            db,
            t,
            &token,
            start.pull_page,
            &mut report,
            &mut pulled,
            on_progress,
        )
        .await?;
        repair(db, t, &token, &pulled, &mut report).await?;
        let txn = crate::db::begin_write(db).await?;
        sql::exec(
            &txn,
            "DELETE FROM change_queue WHERE mutation_id IN (SELECT id FROM outbox WHERE status IN ('applied', 'rejected'))",
            vec![],
        )
        .await?;
        sql::exec(&txn, "DELETE FROM outbox WHERE status IN ('applied', 'rejected')", vec![]).await?;
        txn.commit().await?;
        Ok::<(), CoreError>(())
    }
    .await;
    // The pull is over (or stopped; the next round resumes it and reports again).
    finish_round(db, &result).await?;
    if result.is_ok() && report.pulled > 0 {
        // The rows pulled may have grown tables tenfold (a new device's first pull: from
        // nothing to the whole of its communities): the planner's statistics follow, as the
        // city server's do (it gathers them every minute). Cheap when nothing grew; a failure
        // here does not undo a sound round.
        if let Err(e) = crate::db::refresh_statistics(db).await {
            tracing::warn!(error = %e, "the planner's statistics were not refreshed after a pull");
        }
    }
    result.map(|()| report)
}

/// The HTTP transport (reqwest), with the protocol version on every request.
#[cfg(feature = "http")]
pub mod http {
    use super::*;

    pub struct Http {
        pub base: String,
        client: reqwest::Client,
    }

    /// The server could not be reached, or did not answer in time (`timeout`: the push then
    /// sends smaller batches, see [`K_PUSH_BYTES`]).
    fn unreachable(e: reqwest::Error) -> CoreError {
        let mut error = CoreError::new(Code::ServerUnreachable);
        if e.is_timeout() {
            error = error.with("timeout", true);
        }
        error.with("internal", e)
    }

    impl Http {
        pub fn new(base: &str) -> Self {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default();
            Http {
                base: base.trim_end_matches('/').to_owned(),
                client,
            }
        }

        async fn answer<R: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<R> {
            let status = r.status();
            if status.is_success() {
                return r.json().await.map_err(unreachable);
            }
            let body: Value = r.json().await.unwrap_or(Value::Null);
            // The server's own refusal (same codes and messages as the core's) when it gave one.
            if let (Some(code), Some(detail)) = (
                body.get("code")
                    .and_then(|c| serde_json::from_value::<Code>(c.clone()).ok()),
                body.get("detail").and_then(|d| {
                    serde_json::from_value::<std::collections::BTreeMap<String, String>>(d.clone())
                        .ok()
                }),
            ) {
                let mut e = CoreError::new(code);
                e.detail = detail;
                e.data = body.get("data").cloned();
                return Err(e);
            }
            let msg = body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Err(CoreError::new(Code::ServerRefused)
                .with("status", status.as_u16())
                .with("detail", msg)
                .with_data(body))
        }

        pub async fn enrol(&self, code: &str, device_name: &str) -> Result<Enrolled> {
            let r = self
                .client
                .post(format!("{}/v1/enrol", self.base))
                .header("x-timebank-protocol", PROTOCOL.to_string())
                .json(&serde_json::json!({"code": code, "device_name": device_name}))
                .send()
                .await
                .map_err(unreachable)?;
            Self::answer(r).await
        }
    }

    impl Transport for Http {
        async fn rows(&self, token: &str, keys: &[(String, String)]) -> Result<Vec<RowState>> {
            let body: Vec<Value> = keys
                .iter()
                .map(|(t, p)| serde_json::json!({"table": t, "pk": p}))
                .collect();
            let r = self
                .client
                .post(format!("{}/v1/rows", self.base))
                .header("x-timebank-protocol", PROTOCOL.to_string())
                .bearer_auth(token)
                .json(&serde_json::json!({"rows": body}))
                .send()
                .await
                .map_err(unreachable)?;
            Self::answer(r).await
        }

        async fn push(&self, token: &str, mutations: &[Mutation]) -> Result<PushResponse> {
            let r = self
                .client
                .post(format!("{}/v1/push", self.base))
                .header("x-timebank-protocol", PROTOCOL.to_string())
                .bearer_auth(token)
                .json(&serde_json::json!({"mutations": mutations}))
                .send()
                .await
                .map_err(unreachable)?;
            Self::answer(r).await
        }

        fn pushes_in_flight(&self) -> usize {
            2
        }

        async fn pull(
            &self,
            token: &str,
            partition: &str,
            after: i64,
            limit: i64,
        ) -> Result<PullPage> {
            let r = self
                .client
                .get(format!("{}/v1/pull", self.base))
                .header("x-timebank-protocol", PROTOCOL.to_string())
                .bearer_auth(token)
                .query(&[
                    ("community", partition.to_owned()),
                    ("after", after.to_string()),
                    ("limit", limit.to_string()),
                ])
                .send()
                .await
                .map_err(unreachable)?;
            Self::answer(r).await
        }
    }

    /// The dashboard figures of every community of the city, from the city server: for staff
    /// and administrators, on an enrolled device that can reach the server.
    pub async fn city_dashboard(
        db: &DatabaseConnection,
        a: &crate::service::Actor,
    ) -> Result<crate::read::Dashboard> {
        if !(a.is_admin() || a.has(crate::domain::Role::Staff)) {
            return Err(CoreError::forbidden("see the city-wide dashboard"));
        }
        let (Some(server), Some(token)) = (
            get_setting(db, K_SERVER).await?,
            get_setting(db, K_TOKEN).await?,
        ) else {
            return Err(CoreError::invalid(
                "device",
                "本机还没有登记到城市服务器",
                "this device is not enrolled with a city server",
            ));
        };
        let t = Http::new(&server);
        let r = t
            .client
            .get(format!("{}/v1/city/dashboard", t.base))
            .header("x-timebank-protocol", PROTOCOL.to_string())
            .bearer_auth(token)
            .send()
            .await
            .map_err(unreachable)?;
        let body: Value = Http::answer(r).await?;
        serde_json::from_value(body.get("figures").cloned().unwrap_or(Value::Null)).map_err(|e| {
            CoreError::new(Code::ServerRefused)
                .with("status", 200)
                .with("detail", e)
        })
    }

    /// Enrol a new, empty device database with a code and pull everything, telling
    /// `on_progress` how far the pull has got.
    pub async fn enrol(
        db: &DatabaseConnection,
        server: &str,
        code: &str,
        device_name: &str,
        on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
    ) -> Result<SyncReport> {
        let t = Http::new(server);
        let e = t.enrol(code, device_name).await?;
        store_enrolment(db, server, &e).await?;
        sync_once_with_progress(db, &t, on_progress).await
    }

    /// What the background loop tells its listener.
    pub enum RoundEvent<'a> {
        Started,
        /// After each page of a long pull (see [`PullProgress`]).
        Pulling(&'a PullProgress),
        Ended(&'a Result<SyncReport>),
    }

    /// Sync until `stop` turns true: a round every `every`, with exponential backoff (up to
    /// `max_backoff`, with jitter) while the server cannot be reached. `wake` starts a round at
    /// once (after a local write, or when the user asks); `on_event` hears when a round starts,
    /// how far a long pull has got, and how the round ended.
    pub async fn run_loop(
        db: &DatabaseConnection,
        every: std::time::Duration,
        max_backoff: std::time::Duration,
        wake: &tokio::sync::Notify,
        mut stop: tokio::sync::watch::Receiver<bool>,
        on_event: impl Fn(RoundEvent<'_>) + Send + Sync,
    ) {
        let mut delay = every;
        loop {
            let server = get_setting(db, K_SERVER).await.ok().flatten();
            let ok = match server {
                Some(s) => {
                    on_event(RoundEvent::Started);
                    let r = sync_once_with_progress(db, &Http::new(&s), &|p| {
                        on_event(RoundEvent::Pulling(p))
                    })
                    .await;
                    on_event(RoundEvent::Ended(&r));
                    r.is_ok()
                }
                None => true,
            };
            delay = if ok {
                every
            } else {
                (delay * 2).min(max_backoff.max(every))
            };
            let jitter = std::time::Duration::from_millis(u64::from(
                crate::service::now_ms().unsigned_abs() as u32 % 1000,
            ));
            tokio::select! {
                _ = tokio::time::sleep(delay + jitter) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}
