//! SQLite's memory from mimalloc, and without SQLite's memory statistics.
//!
//! SQLite allocates from the C library's `malloc` by default, and keeps statistics of what it
//! holds behind a global mutex taken on every allocation. On the city server a pushed group's
//! SQLite thread spent about a tenth of its time there (`malloc_consolidate`, `_int_malloc`,
//! the mutex: bench/RESULTS.md, "SQLite on mimalloc"). [`install`] hands SQLite mimalloc's
//! functions instead (`SQLITE_CONFIG_MALLOC`) and turns the statistics off
//! (`SQLITE_CONFIG_MEMSTATUS`, which only `sqlite3_memory_used` and the soft heap limit read;
//! nothing here uses them).
//!
//! SQLite takes such settings only before it is initialized, which the first connection
//! opened does: `timebank_core::db` calls [`install`] before every open, and the first call
//! does the work. Called after SQLite has started, it changes nothing and says so; SQLite
//! then goes on with its own allocator, which works as before.
//!
//! This is the workspace's only unsafe code (the other crates forbid it).
#![allow(unsafe_code)]

use libmimalloc_sys as mi;
use libsqlite3_sys as ffi;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

/// SQLite refused the settings: it had started already (`SQLITE_MISUSE`), or another code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// SQLite's result code.
    pub code: c_int,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SQLite kept its own allocator (sqlite3_config returned {}): it was in use before the first database was opened",
            self.code
        )
    }
}

impl std::error::Error for Refused {}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    // SAFETY: mi_malloc takes any size; SQLite asks for a positive one.
    unsafe { mi::mi_malloc(n.max(0) as usize) }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    // SAFETY: SQLite frees only what x_malloc or x_realloc gave it (mi_free takes null too).
    unsafe { mi::mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // SAFETY: `p` came from x_malloc or x_realloc; mimalloc's realloc keeps C's contract.
    unsafe { mi::mi_realloc(p, n.max(0) as usize) }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    // SAFETY: `p` came from x_malloc or x_realloc (or is null, for which the size is 0).
    let n = unsafe { mi::mi_usable_size(p) };
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // What SQLite's own allocator answers: the next multiple of 8. mimalloc gives at least as
    // much (x_size tells SQLite the block's whole size).
    n.saturating_add(7) & !7
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

static RESULT: OnceLock<Result<(), Refused>> = OnceLock::new();

/// Give SQLite mimalloc's allocator and turn its memory statistics off, once for the process.
/// Every later call answers what the first did. Must run before any other use of SQLite in
/// the process; the callers that open databases call it first, and wait for each other here.
pub fn install() -> Result<(), Refused> {
    *RESULT.get_or_init(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: sqlite3_config copies the methods (they may go out of scope after it) and
        // refuses with SQLITE_MISUSE, changing nothing, once SQLite is initialized. The
        // functions keep SQLite's contract for them (sqlite.org/c3ref/mem_methods.html). No
        // other thread of ours uses SQLite meanwhile: the opens wait on this OnceLock.
        let code = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(Refused { code });
        }
        // SAFETY: as above; SQLITE_CONFIG_MEMSTATUS takes one int.
        let code = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
        if code != ffi::SQLITE_OK {
            return Err(Refused { code });
        }
        Ok(())
    })
}

/// Whether the memory SQLite allocates now comes from mimalloc: a block from
/// `sqlite3_malloc` lies in mimalloc's heap. For tests and diagnostics.
pub fn sqlite_uses_mimalloc() -> bool {
    // SAFETY: sqlite3_malloc initializes SQLite if needed and returns a block of 64 bytes or
    // null; the block is only looked at by address and freed by SQLite's own free.
    unsafe {
        let p = ffi::sqlite3_malloc(64);
        if p.is_null() {
            return false;
        }
        let ours = mi::mi_is_in_heap_region(p);
        ffi::sqlite3_free(p);
        ours
    }
}
