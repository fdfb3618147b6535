#![allow(unsafe_code)]
use libsqlite3_sys as ffi;
use std::ffi::{CStr, CString};

/// Run `sql` (statements ending with a query of one integer) on a new in-memory database of
/// SQLite's C API, and return that integer.
pub fn query_i64(sql: &str) -> i64 {
    let mut db = std::ptr::null_mut();
    let name = CString::new(":memory:").expect("no NUL");
    // SAFETY: a valid C string and an out-pointer; the handle is closed below.
    let rc = unsafe { ffi::sqlite3_open(name.as_ptr(), &mut db) };
    assert_eq!(rc, ffi::SQLITE_OK);
    let mut out = None;
    let mut rest = sql.trim();
    while !rest.is_empty() {
        let (stmt_sql, tail) = rest.split_once(';').unwrap_or((rest, ""));
        rest = tail.trim();
        let text = CString::new(stmt_sql).expect("no NUL in the SQL");
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `db` is open; the statement is finalized below.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db, text.as_ptr(), -1, &mut stmt, std::ptr::null_mut())
        };
        let message = || {
            // SAFETY: `db` is open; its message is a C string that lives until the next call.
            let text = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) };
            text.to_string_lossy().into_owned()
        };
        assert_eq!(rc, ffi::SQLITE_OK, "{stmt_sql}: {}", message());
        loop {
            // SAFETY: a prepared statement of the open database.
            match unsafe { ffi::sqlite3_step(stmt) } {
                // SAFETY: the statement has a row, whose first column is read as an integer.
                ffi::SQLITE_ROW => out = Some(unsafe { ffi::sqlite3_column_int64(stmt, 0) }),
                ffi::SQLITE_DONE => break,
                rc => panic!("{stmt_sql}: {rc} {}", message()),
            }
        }
        // SAFETY: finalized once.
        unsafe { ffi::sqlite3_finalize(stmt) };
    }
    // SAFETY: every statement is finalized.
    assert_eq!(unsafe { ffi::sqlite3_close(db) }, ffi::SQLITE_OK);
    out.expect("the last statement returns a row")
}

/// Many allocations of many sizes: 20,000 rows of texts up to 2 KB, indexed, some deleted,
/// then counted.
pub const WORKLOAD: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
    INSERT INTO t (v) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
      SELECT hex(randomblob(1 + i % 1000)) FROM n;
    CREATE INDEX t_v ON t (v);
    DELETE FROM t WHERE id % 3 = 0;
    SELECT COUNT(*) + SUM(length(v) > 0) FROM t WHERE v IS NOT NULL";

/// What [`WORKLOAD`] answers: twice the 13,334 rows left.
pub const WORKLOAD_ANSWER: i64 = 2 * 13_334;

/// What SQLite's statistics count of its memory while it holds a block of 1,000 bytes more.
pub fn counted_with_a_block() -> i64 {
    // SAFETY: a block from SQLite's allocator, freed by it; the counter is a plain read.
    unsafe {
        let p = ffi::sqlite3_malloc(1000);
        assert!(!p.is_null());
        let used = ffi::sqlite3_memory_used();
        ffi::sqlite3_free(p);
        used
    }
}
