//! Device-local matters the core does not know: preferences of this workstation, enrolment,
//! files (reports, backups) and the CSV import with the app's signed-in member.
use std::path::PathBuf;

use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use tauri::Manager;
use timebank_core::read::ReportBy;
use timebank_core::service::outbox;
use timebank_core::sync::{self, SyncReport};
use timebank_core::{Code, CoreError, Ctx};

use crate::state::{AppState, UiResult};

pub const K_LANG: &str = "ui_lang";
pub const K_FONT: &str = "ui_font_scale";
pub const K_LOCK: &str = "ui_lock_minutes";

/// Preferences of this workstation (not synced): language, text size, automatic lock.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, PartialEq)]
pub struct Preferences {
    /// "zh-CN" or "en".
    pub lang: String,
    /// Text size in percent of the large default (100 to 200).
    pub font_scale: i32,
    /// Minutes without use before the session locks (1 to 60).
    pub lock_minutes: i32,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            lang: "zh-CN".into(),
            font_scale: 100,
            lock_minutes: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct AppInfo {
    pub version: String,
    pub device_id: Option<String>,
    /// "center" (a center's workstation), "volunteer", or "local" (not enrolled).
    pub device_role: String,
    pub data_dir: String,
    pub preferences: Preferences,
    pub sync: crate::state::SyncStatusView,
}

pub async fn load<C: ConnectionTrait>(c: &C) -> timebank_core::Result<Preferences> {
    let d = Preferences::default();
    Ok(Preferences {
        lang: outbox::get_setting(c, K_LANG).await?.unwrap_or(d.lang),
        font_scale: outbox::get_setting(c, K_FONT)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(d.font_scale),
        lock_minutes: outbox::get_setting(c, K_LOCK)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(d.lock_minutes),
    })
}

pub async fn device_role<C: ConnectionTrait>(c: &C) -> timebank_core::Result<String> {
    Ok(outbox::get_setting(c, sync::K_ROLE)
        .await?
        .unwrap_or_else(|| "local".into()))
}

pub async fn app_info(s: &AppState) -> UiResult<AppInfo> {
    Ok(AppInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        device_id: outbox::get_setting(&s.db, outbox::K_DEVICE_ID).await?,
        device_role: device_role(&s.db).await?,
        data_dir: s.data_dir.display().to_string(),
        preferences: load(&s.db).await?,
        sync: s.status().await?,
    })
}

pub async fn save(s: &AppState, p: Preferences) -> UiResult<Preferences> {
    if p.lang != "zh-CN" && p.lang != "en" {
        return Err(
            CoreError::invalid("language", "只能选择中文或英文", "choose zh-CN or en").into(),
        );
    }
    if !(100..=200).contains(&p.font_scale) {
        return Err(CoreError::invalid(
            "font size",
            "字号应在100%到200%之间",
            "the text size must be between 100% and 200%",
        )
        .into());
    }
    if !(1..=60).contains(&p.lock_minutes) {
        return Err(CoreError::invalid(
            "lock minutes",
            "自动锁定时间应在1到60分钟之间",
            "the automatic lock must be between 1 and 60 minutes",
        )
        .into());
    }
    let txn = timebank_core::db::begin_write(&s.db).await?;
    outbox::set_setting(&txn, K_LANG, &p.lang).await?;
    outbox::set_setting(&txn, K_FONT, &p.font_scale.to_string()).await?;
    outbox::set_setting(&txn, K_LOCK, &p.lock_minutes.to_string()).await?;
    txn.commit().await.map_err(CoreError::from)?;
    s.set_lock_after(std::time::Duration::from_secs(60 * p.lock_minutes as u64));
    Ok(p)
}

/// Enrol this (new, empty) device with the city server and pull its communities' data.
pub async fn enrol(
    s: &AppState,
    server: &str,
    code: &str,
    device_name: &str,
) -> UiResult<SyncReport> {
    let server = server.trim();
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(CoreError::invalid(
            "server",
            "服务器地址应以 http:// 或 https:// 开头",
            "the server address must start with http:// or https://",
        )
        .into());
    }
    // The first pull can be long: the indicator says it is syncing and how far it has got.
    let handle = s.handle.clone();
    s.enrolling
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let r = sync::http::enrol(&s.db, server, code.trim(), device_name.trim(), &move |_| {
        let h = handle.clone();
        tauri::async_runtime::spawn(async move { h.state::<AppState>().emit_status().await });
    })
    .await;
    s.enrolling
        .store(false, std::sync::atomic::Ordering::Relaxed);
    if r.is_err() {
        s.emit_status().await;
    }
    let r = r?;
    tracing::info!(server, pulled = r.pulled, "enrolled");
    crate::grant_staff_commands(&s.handle).await;
    s.changed("sync").await;
    Ok(r)
}

fn exports_dir(s: &AppState) -> PathBuf {
    s.handle
        .path()
        .document_dir()
        .map(|d| d.join("时间银行报表"))
        .unwrap_or_else(|_| s.data_dir.join("exports"))
}

pub async fn save_report(s: &AppState, by: ReportBy) -> UiResult<String> {
    let text = timebank_core::read::report_csv(&s.db, &s.actor().await?, by).await?;
    let dir = exports_dir(s);
    std::fs::create_dir_all(&dir).map_err(CoreError::from)?;
    let name = format!(
        "report-{}-{}.csv",
        match by {
            ReportBy::Field => "field",
            ReportBy::Community => "community",
            ReportBy::Month => "month",
        },
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    );
    let path = dir.join(name);
    // A byte-order mark, so that spreadsheet programs on Windows read the Chinese correctly.
    std::fs::write(&path, format!("\u{feff}{text}")).map_err(CoreError::from)?;
    Ok(path.display().to_string())
}

pub async fn import_members(
    s: &AppState,
    csv: &str,
) -> UiResult<timebank_core::import::ImportReport> {
    let who = s.member_id()?;
    let device = outbox::device_id(&s.db).await?;
    let ctx = Ctx::new(who, device, s.now());
    let r = timebank_core::import::import_members(&s.db, &ctx, csv.as_bytes(), &|_, _| {}).await?;
    s.changed("local").await;
    Ok(r)
}

#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct BackupFile {
    pub file_name: String,
    pub path: String,
    pub bytes: i64,
    pub modified_ms: i64,
}

fn backups_dir(s: &AppState) -> PathBuf {
    s.data_dir.join("backups")
}

async fn require_staff(s: &AppState, action: &str) -> UiResult<()> {
    let a = s.actor().await?;
    if a.is_admin() || !a.staff_scope.is_empty() {
        Ok(())
    } else {
        Err(CoreError::forbidden(action).into())
    }
}

fn describe(path: PathBuf) -> Option<BackupFile> {
    let meta = std::fs::metadata(&path).ok()?;
    Some(BackupFile {
        file_name: path.file_name()?.to_string_lossy().into_owned(),
        path: path.display().to_string(),
        bytes: meta.len() as i64,
        modified_ms: meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
    })
}

pub async fn backup_now(s: &AppState) -> UiResult<BackupFile> {
    require_staff(s, "back up the database").await?;
    let dir = backups_dir(s);
    std::fs::create_dir_all(&dir).map_err(CoreError::from)?;
    let path = dir.join(format!(
        "timebank-{}.db",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    ));
    timebank_core::backup::backup(&s.db, &path).await?;
    tracing::info!(path = %path.display(), "backup written");
    describe(path).ok_or_else(|| {
        CoreError::new(Code::Io)
            .with("detail", "backup missing")
            .into()
    })
}

pub async fn list_backups(s: &AppState) -> UiResult<Vec<BackupFile>> {
    require_staff(s, "back up the database").await?;
    let mut out: Vec<BackupFile> = std::fs::read_dir(backups_dir(s))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| describe(e.path()))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|b| std::cmp::Reverse(b.modified_ms));
    Ok(out)
}

/// The file that tells the next start to restore a backup before opening the database.
pub fn restore_marker(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("restore-pending")
}

pub async fn restore_backup(
    s: &AppState,
    file_name: &str,
) -> UiResult<timebank_core::read::VerifyReport> {
    require_staff(s, "restore a backup").await?;
    if file_name.contains('/') || file_name.contains('\\') || file_name.starts_with('.') {
        return Err(CoreError::invalid(
            "file",
            "请从列表中选择备份文件",
            "choose a backup from the list",
        )
        .into());
    }
    let path = backups_dir(s).join(file_name);
    let report = timebank_core::backup::check_backup(&path).await?;
    std::fs::write(restore_marker(&s.data_dir), path.display().to_string())
        .map_err(CoreError::from)?;
    tracing::warn!(path = %path.display(), "restoring a backup: restarting");
    let handle = s.handle.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        handle.restart();
    });
    Ok(report)
}
