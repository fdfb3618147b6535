//! Backup and restore of a device's SQLite database. A backup is taken with `VACUUM INTO`,
//! which writes a consistent copy while the database is in use; a restore checks the file
//! first (integrity, that it is a time bank database) and replaces the target atomically.
use crate::error::{Code, CoreError, Result};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use std::path::Path;

pub async fn backup(db: &DatabaseConnection, to: &Path) -> Result<u64> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Err(CoreError::invalid(
            "database",
            "只能备份本机的SQLite数据库（服务器请用pg_dump）",
            "only a device's SQLite database can be backed up here (use pg_dump on the server)",
        ));
    }
    if to.exists() {
        return Err(CoreError::invalid(
            "to",
            "备份文件已存在，请换一个文件名",
            "the backup file already exists; choose another name",
        ));
    }
    let path = to.to_string_lossy().replace('\'', "''");
    db.execute_unprepared(&format!("VACUUM INTO '{path}'"))
        .await?;
    Ok(std::fs::metadata(to)?.len())
}

/// Check that `file` is a sound time bank database: integrity check, a device id, a ledger
/// that verifies. Returns the ledger report.
pub async fn check_backup(file: &Path) -> Result<crate::read::VerifyReport> {
    if !file.exists() {
        return Err(
            CoreError::new(Code::Io).with("detail", format!("{} does not exist", file.display()))
        );
    }
    let url = format!("sqlite://{}?mode=ro", file.display());
    let db = crate::db::open(&url).await?;
    let r = crate::sql::all(&db, "PRAGMA integrity_check", vec![]).await?;
    let ok: String = r
        .first()
        .and_then(|x| x.try_get_by_index::<String>(0).ok())
        .unwrap_or_default();
    if ok != "ok" {
        return Err(CoreError::invalid(
            "backup",
            "备份文件已损坏",
            "the backup file is damaged",
        ));
    }
    crate::service::outbox::device_id(&db).await.map_err(|_| {
        CoreError::invalid(
            "backup",
            "这不是时间银行的数据库",
            "this is not a time bank database",
        )
    })?;
    let report = crate::read::verify(&db, &|_, _| {}).await?;
    db.close().await.ok();
    if !report.ok() {
        return Err(CoreError::invalid(
            "backup",
            "备份中的账本核对不平，没有恢复",
            "the ledger in the backup does not verify; nothing was restored",
        ));
    }
    Ok(report)
}

/// Replace the database at `target` with the backup `from` (the app must not be running).
/// The current database is kept beside it as `<target>.before-restore`.
pub async fn restore(from: &Path, target: &Path) -> Result<crate::read::VerifyReport> {
    let report = check_backup(from).await?;
    let tmp = target.with_extension("restoring");
    std::fs::copy(from, &tmp)?;
    if target.exists() {
        let keep = target.with_extension("before-restore");
        std::fs::rename(target, &keep)?;
    }
    for ext in ["db-wal", "db-shm"] {
        let p = target.with_extension(ext);
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    std::fs::rename(&tmp, target)?;
    Ok(report)
}
