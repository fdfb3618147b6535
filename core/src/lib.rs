//! The core of the time bank: domain rules, the ledger, storage on SQLite and PostgreSQL,
//! the service layer every write goes through, and the read side (boards, balances,
//! dashboard, reports). No Tauri and no HTTP server here.
pub mod backup;
pub mod db;
pub mod demo;
pub mod domain;
pub mod entities;
pub mod error;
pub mod import;
pub mod read;
pub mod service;
pub mod session;
pub mod sql;
pub mod sync;
pub mod views;

pub use error::{Code, CoreError, Lang, Result};
pub use service::{execute, Command, Ctx, Outcome};
