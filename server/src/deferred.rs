//! Fewer round trips for a pushed batch: a connection over the batch's transaction that holds
//! back plain `INSERT … VALUES` statements and sends them together, merged into multi-row
//! inserts, just before the next statement that could see them (any read, any other write)
//! and at the end of the batch. A registration (three inserts) then costs no round trip of
//! its own; on SQLite each statement is a hand-off to the driver's worker thread, on
//! PostgreSQL a network round trip, and those hand-offs were most of a push's time.
//!
//! Merging groups the held rows by table (and column list), the tables in the order they
//! first appear, so a table's rows may be sent before rows of another table held earlier.
//! That can only break a foreign key (a child table first seen before its parent) or report
//! a constraint at the wrong moment, and both show up as a failed send: [`Deferred::failed`]
//! then tells the push to roll the batch back and apply it again statement by statement,
//! each mutation in its own savepoint, as before. Nothing is ever half-written.
//!
//! A mutation refused before any of its writes reached the database is undone by dropping
//! its held rows ([`Deferred::discard_mutation`]); one refused after some did needs the
//! careful pass too (there are no savepoints here).
use sea_orm::sqlx::{postgres::PgQueryResult, sqlite::SqliteQueryResult};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
    Value,
};
use std::collections::HashMap;
use std::sync::Mutex;

/// Bound parameters per merged statement (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_PARAMS: usize = 30_000;

/// A held insert: the text before ` VALUES `, the row tuples after it, and their values.
#[derive(Debug)]
struct Held {
    prefix: String,
    tuples: String,
    values: Vec<Value>,
}

/// The insert, split at its `VALUES`, when it is a plain insert of literal rows: no
/// `RETURNING`, no `ON CONFLICT`, no `SELECT`, no quoted text (whose `$n` or `?` could be
/// mistaken for a parameter). Any other statement is given back as it came.
fn holdable(stmt: Statement) -> Result<Held, Statement> {
    let sql = stmt.sql.as_str();
    let Some(at) = sql
        .find(" VALUES (")
        .filter(|_| sql.starts_with("INSERT INTO "))
    else {
        return Err(stmt);
    };
    let (prefix, tuples) = (&sql[..at], &sql[at + " VALUES ".len()..]);
    let upper = sql.to_ascii_uppercase();
    if !tuples.ends_with(')')
        || sql.contains('\'')
        || sql.contains(';')
        || ["RETURNING", "ON CONFLICT", "SELECT", "DEFAULT VALUES"]
            .iter()
            .any(|w| upper.contains(w))
    {
        return Err(stmt);
    }
    Ok(Held {
        prefix: prefix.to_owned(),
        tuples: tuples.to_owned(),
        values: stmt.values.map(|v| v.0).unwrap_or_default(),
    })
}

/// PostgreSQL's numbered parameters `$n` of `tuples`, shifted by `by`.
fn renumber(tuples: &str, by: usize) -> String {
    let mut out = String::with_capacity(tuples.len() + 16);
    let mut chars = tuples.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            n.push(*d);
            chars.next();
        }
        match n.parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&n),
        }
    }
    out
}

#[derive(Debug, Default)]
struct State {
    held: Vec<Held>,
    /// Where the current mutation's held rows begin.
    mark: usize,
    /// Something the current mutation wrote has reached the database.
    touched: bool,
    /// A statement failed: the batch must be applied again, carefully.
    failed: bool,
}

/// The batch's transaction with inserts held back (see the module's documentation).
pub struct Deferred<'a> {
    txn: &'a DatabaseTransaction,
    state: Mutex<State>,
}

impl<'a> Deferred<'a> {
    pub fn new(txn: &'a DatabaseTransaction) -> Self {
        Deferred {
            txn,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A mutation begins: what it writes from here on is its own.
    pub fn begin_mutation(&self) {
        let mut s = self.state();
        s.mark = s.held.len();
        s.touched = false;
    }

    /// Undo the current mutation by dropping its held rows. False when that is not enough
    /// (some of its writes reached the database, or a statement failed): the batch must be
    /// applied again carefully.
    pub fn discard_mutation(&self) -> bool {
        let mut s = self.state();
        if s.touched || s.failed {
            return false;
        }
        let mark = s.mark;
        s.held.truncate(mark);
        true
    }

    /// A statement failed since the batch began (its result may have been misread by the
    /// mutation that saw it): apply the batch again carefully.
    pub fn failed(&self) -> bool {
        self.state().failed
    }

    /// Send the held rows, a multi-row insert per table (tables in order of first
    /// appearance), at most [`MAX_PARAMS`] parameters to a statement.
    pub async fn flush(&self) -> Result<(), DbErr> {
        let held = {
            let mut s = self.state();
            if s.held.len() > s.mark {
                s.touched = true;
            }
            s.mark = 0;
            std::mem::take(&mut s.held)
        };
        if held.is_empty() {
            return Ok(());
        }
        let mut order: Vec<String> = Vec::new();
        let mut tables: HashMap<String, Vec<Held>> = HashMap::new();
        for h in held {
            if !tables.contains_key(&h.prefix) {
                order.push(h.prefix.clone());
            }
            tables.entry(h.prefix.clone()).or_default().push(h);
        }
        let backend = self.txn.get_database_backend();
        for prefix in order {
            let mut sql = String::new();
            let mut values: Vec<Value> = Vec::new();
            for h in tables.remove(&prefix).unwrap_or_default() {
                if !sql.is_empty() && values.len() + h.values.len() > MAX_PARAMS {
                    self.send(
                        backend,
                        std::mem::take(&mut sql),
                        std::mem::take(&mut values),
                    )
                    .await?;
                }
                if sql.is_empty() {
                    sql.push_str(&prefix);
                    sql.push_str(" VALUES ");
                } else {
                    sql.push_str(", ");
                }
                if backend == DbBackend::Postgres {
                    sql.push_str(&renumber(&h.tuples, values.len()));
                } else {
                    sql.push_str(&h.tuples);
                }
                values.extend(h.values);
            }
            if !sql.is_empty() {
                self.send(backend, sql, values).await?;
            }
        }
        Ok(())
    }

    async fn send(&self, backend: DbBackend, sql: String, values: Vec<Value>) -> Result<(), DbErr> {
        let r = self
            .txn
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await;
        if r.is_err() {
            self.state().failed = true;
        }
        r.map(|_| ())
    }

    /// What a statement sent straight through returned; a failure marks the batch.
    fn watch<T>(&self, r: Result<T, DbErr>) -> Result<T, DbErr> {
        if r.is_err() {
            self.state().failed = true;
        }
        r
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Deferred<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let stmt = match holdable(stmt) {
            Ok(h) => {
                self.state().held.push(h);
                // The driver's own "nothing reported yet" result: no rows affected, no id. The
                // core's inserts do not read it (they use `exec_without_returning`); SeaORM's
                // `Insert::exec` would read 0 as "not inserted", an error that sends the batch
                // to the careful pass, never a wrong answer.
                return Ok(match self.get_database_backend() {
                    DbBackend::Postgres => PgQueryResult::default().into(),
                    _ => SqliteQueryResult::default().into(),
                });
            }
            Err(stmt) => stmt,
        };
        self.flush().await?;
        self.state().touched = true;
        let r = self.txn.execute_raw(stmt).await;
        self.watch(r)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.flush().await?;
        self.state().touched = true;
        let r = self.txn.execute_unprepared(sql).await;
        self.watch(r)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.flush().await?;
        let r = self.txn.query_one_raw(stmt).await;
        self.watch(r)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.flush().await?;
        let r = self.txn.query_all_raw(stmt).await;
        self.watch(r)
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::TransactionTrait;

    fn stmt(backend: DbBackend, sql: &str, n: usize) -> Statement {
        Statement::from_sql_and_values(backend, sql, (0..n as i64).map(Value::from))
    }

    #[test]
    fn only_plain_inserts_of_literal_rows_are_held() {
        let b = DbBackend::Sqlite;
        let h = holdable(stmt(
            b,
            r#"INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?)"#,
            4,
        ))
        .expect("a plain insert is held");
        assert_eq!(h.prefix, r#"INSERT INTO "t" ("a", "b")"#);
        assert_eq!(h.tuples, "(?, ?), (?, ?)");
        assert_eq!(h.values.len(), 4);
        for sql in [
            r#"INSERT INTO "t" ("a") VALUES (?) RETURNING "a""#,
            r#"INSERT INTO "t" ("a") VALUES (?) ON CONFLICT ("a") DO NOTHING"#,
            r#"INSERT INTO "t" ("a") SELECT "a" FROM "u""#,
            r#"INSERT INTO "t" ("a") VALUES ((SELECT MAX(a) FROM u))"#,
            r#"INSERT INTO "t" ("a") VALUES ('x')"#,
            r#"UPDATE "t" SET "a" = ?"#,
            "INSERT INTO t (a) VALUES (?); DELETE FROM t",
        ] {
            assert!(holdable(stmt(b, sql, 1)).is_err(), "{sql} must not be held");
        }
    }

    async fn scratch() -> sea_orm::DatabaseConnection {
        let db = timebank_core::db::open("sqlite::memory:")
            .await
            .expect("an in-memory database");
        db.execute_unprepared(
            "CREATE TABLE p (id INTEGER PRIMARY KEY); \
             CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES p(id)); \
             CREATE TABLE u (v TEXT UNIQUE)",
        )
        .await
        .expect("tables");
        db
    }

    fn insert(sql: &str, v: impl Into<Value>) -> Statement {
        Statement::from_sql_and_values(DbBackend::Sqlite, sql, [v.into()])
    }

    async fn count(c: &impl ConnectionTrait, t: &str) -> i64 {
        timebank_core::sql::scalar_i64(c, &format!("SELECT COUNT(*) FROM {t}"), vec![])
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn held_rows_are_sent_before_any_read_and_parents_before_children() {
        let db = scratch().await;
        let txn = db.begin().await.expect("txn");
        let d = Deferred::new(&txn);
        d.execute_raw(insert("INSERT INTO p (id) VALUES (?)", 1))
            .await
            .expect("p1");
        d.execute_raw(insert("INSERT INTO c (id, p) VALUES (?, 1)", 1))
            .await
            .expect("c1");
        d.execute_raw(insert("INSERT INTO p (id) VALUES (?)", 2))
            .await
            .expect("p2");
        assert_eq!(
            count(&txn, "p").await,
            0,
            "held back, not yet in the database"
        );
        assert_eq!(
            count(&d, "p").await,
            2,
            "a read through it sees what was held"
        );
        assert_eq!(count(&txn, "c").await, 1);
        assert!(!d.failed());
    }

    #[tokio::test]
    async fn a_failed_send_marks_the_batch_for_the_careful_pass() {
        let db = scratch().await;
        let txn = db.begin().await.expect("txn");
        let d = Deferred::new(&txn);
        // A child before its parent: sent after it, table by table, the key fails.
        d.execute_raw(insert("INSERT INTO c (id, p) VALUES (?, 7)", 1))
            .await
            .expect("held");
        d.execute_raw(insert("INSERT INTO p (id) VALUES (?)", 7))
            .await
            .expect("held");
        assert!(d.flush().await.is_err());
        assert!(d.failed());
        assert!(!d.discard_mutation(), "a failed batch cannot be patched up");
        drop(d);
        txn.rollback().await.expect("rollback");

        let txn = db.begin().await.expect("txn");
        let d = Deferred::new(&txn);
        d.execute_raw(insert("INSERT INTO u (v) VALUES (?)", "x"))
            .await
            .expect("held");
        d.execute_raw(insert("INSERT INTO u (v) VALUES (?)", "x"))
            .await
            .expect("held");
        let read = timebank_core::sql::scalar_i64(&d, "SELECT COUNT(*) FROM u", vec![]).await;
        assert!(read.is_err(), "the read that sends the duplicate fails");
        assert!(d.failed());
    }

    #[tokio::test]
    async fn a_refused_mutation_is_undone_by_dropping_its_rows_until_they_were_sent() {
        let db = scratch().await;
        let txn = db.begin().await.expect("txn");
        let d = Deferred::new(&txn);
        d.begin_mutation();
        d.execute_raw(insert("INSERT INTO p (id) VALUES (?)", 1))
            .await
            .expect("kept");
        d.begin_mutation();
        d.execute_raw(insert("INSERT INTO p (id) VALUES (?)", 2))
            .await
            .expect("held");
        assert!(
            d.discard_mutation(),
            "nothing of it was sent: dropping it undoes it"
        );
        assert_eq!(count(&d, "p").await, 1, "the mutation before it stays");
        d.begin_mutation();
        d.execute_raw(insert("INSERT INTO p (id) VALUES (?)", 3))
            .await
            .expect("held");
        assert_eq!(count(&d, "p").await, 2, "its row was sent by this read");
        assert!(
            !d.discard_mutation(),
            "sent rows need the careful pass to be undone"
        );
    }

    #[test]
    fn postgres_parameters_are_renumbered_after_the_rows_before() {
        assert_eq!(
            renumber("($1, CAST($2 AS text)), ($3, $4)", 10),
            "($11, CAST($12 AS text)), ($13, $14)"
        );
        assert_eq!(renumber("($1)", 0), "($1)");
    }
}
