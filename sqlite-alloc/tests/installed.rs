//! A process that installs the allocator before it uses SQLite. One test in its own binary:
//! SQLite's settings belong to the process, and a second test could use SQLite first.
mod common;

#[test]
fn once_installed_sqlite_allocates_from_mimalloc_keeps_no_statistics_and_works() {
    assert_eq!(timebank_sqlite_alloc::install(), Ok(()));
    // Every later call answers the same, also from other threads at once.
    let others: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(timebank_sqlite_alloc::install))
        .collect();
    for t in others {
        assert_eq!(t.join().expect("the thread ends"), Ok(()));
    }
    assert!(timebank_sqlite_alloc::sqlite_uses_mimalloc());
    assert_eq!(common::query_i64(common::WORKLOAD), common::WORKLOAD_ANSWER);
    // Its statistics are off: SQLite counts nothing of what it holds.
    assert_eq!(common::counted_with_a_block(), 0);
}
