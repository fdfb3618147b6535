//! A process that used SQLite before installing: the allocator is refused, and SQLite goes on
//! with its own. One test in its own binary (SQLite's settings belong to the process).
mod common;

#[test]
fn installing_after_sqlite_started_is_refused_and_sqlite_keeps_its_own_allocator() {
    assert_eq!(common::query_i64("SELECT 1"), 1);
    let refused = timebank_sqlite_alloc::install().expect_err("SQLite has started");
    assert_eq!(refused.code, libsqlite3_sys::SQLITE_MISUSE);
    assert!(
        refused.to_string().contains("kept its own allocator"),
        "{refused}"
    );
    assert_eq!(timebank_sqlite_alloc::install(), Err(refused));
    assert!(!timebank_sqlite_alloc::sqlite_uses_mimalloc());
    assert_eq!(common::query_i64(common::WORKLOAD), common::WORKLOAD_ANSWER);
    // Its statistics are still on.
    assert!(common::counted_with_a_block() >= 1000);
}
