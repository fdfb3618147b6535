//! What the app keeps while it runs: the device database, the signed-in member (locked after
//! inactivity), and the handle that wakes the sync loop. Every command goes through here.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tauri::AppHandle;
use tauri_specta::Event;
use timebank_core::read::InboxItem;
use timebank_core::service::{self, outbox, Actor};
use timebank_core::session::Me;
use timebank_core::sync::SyncStatus;
use timebank_core::{Code, Command, CoreError, Ctx, Lang, Outcome};

/// An error as the UI shows it: the stable code, and the message in both languages.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct UiError {
    pub code: String,
    pub message_zh: String,
    pub message_en: String,
    pub detail: BTreeMap<String, String>,
    /// Extra data, e.g. every rejected row of an import.
    pub data: Option<serde_json::Value>,
}

impl From<CoreError> for UiError {
    fn from(e: CoreError) -> Self {
        if matches!(e.code, Code::Database | Code::Io) {
            tracing::error!(code = e.code.as_str(), detail = ?e.detail, "command failed");
        }
        UiError {
            code: e.code.as_str(),
            message_zh: e.message(Lang::Zh),
            message_en: e.message(Lang::En),
            detail: e.detail,
            data: e.data,
        }
    }
}

pub type UiResult<T> = Result<T, UiError>;

/// Something changed in the local database: a local write, or rows pulled by sync.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct DataChanged {
    /// "local" or "sync".
    pub source: String,
}

/// The sync status changed (a round ended, or a local write is waiting to be sent).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct SyncStatusChanged {
    pub status: SyncStatusView,
}

/// New inbox messages for the member signed in here (the UI shows them and notifies).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct InboxArrived {
    pub member_id: String,
    pub items: Vec<InboxItemView>,
}

/// The session was locked after inactivity.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct SessionLocked {
    pub member_id: String,
}

/// `SyncStatus` as sent to the UI (a copy that can be deserialized for events).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, PartialEq)]
pub struct SyncStatusView {
    pub enrolled: bool,
    pub server: Option<String>,
    pub online: bool,
    pub pending: i64,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_en: Option<String>,
    /// True while a sync round is running.
    pub syncing: bool,
    /// While a long pull runs: changes received of those known.
    pub pull: Option<timebank_core::sync::PullProgress>,
}

impl SyncStatusView {
    pub fn of(s: SyncStatus, syncing: bool) -> Self {
        SyncStatusView {
            enrolled: s.enrolled,
            server: s.server,
            online: s.online,
            pending: s.pending,
            last_success_ms: s.last_success_ms,
            last_error: s.last_error,
            last_error_en: s.last_error_en,
            syncing,
            pull: s.pull,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
pub struct InboxItemView {
    pub id: String,
    pub kind: String,
    pub params: serde_json::Value,
    pub read: bool,
    pub created_at: i64,
}

impl From<InboxItem> for InboxItemView {
    fn from(i: InboxItem) -> Self {
        InboxItemView {
            id: i.id,
            kind: i.kind,
            params: i.params,
            read: i.read,
            created_at: i.created_at,
        }
    }
}

struct Session {
    me: Option<Me>,
    last_active: Instant,
    /// Inbox messages up to this instant have been announced.
    announced_until: i64,
    wrong_pins: u32,
    blocked_until: Option<Instant>,
}

pub struct AppState {
    pub db: DatabaseConnection,
    pub data_dir: PathBuf,
    pub db_path: PathBuf,
    pub handle: AppHandle,
    pub wake: Arc<tokio::sync::Notify>,
    /// A round of the background loop is running.
    pub syncing: Arc<std::sync::atomic::AtomicBool>,
    /// The device is enrolling (its first pull): apart from `syncing`, which a round of the
    /// loop ending meanwhile (it finds the device not enrolled yet) would clear.
    pub enrolling: std::sync::atomic::AtomicBool,
    /// Whether the staff capability has been added to the window.
    pub staff_granted: std::sync::atomic::AtomicBool,
    session: Mutex<Session>,
    lock_after: Mutex<Duration>,
    /// How far this device's clock is off (demos and tests; devices drift, the core copes).
    clock_offset_ms: i64,
}

/// Wrong PINs in a row before sign-in pauses, and for how long.
const MAX_WRONG_PINS: u32 = 5;
const PIN_PAUSE: Duration = Duration::from_secs(5 * 60);

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        data_dir: PathBuf,
        db_path: PathBuf,
        handle: AppHandle,
        lock_after: Duration,
        clock_offset_ms: i64,
    ) -> Self {
        AppState {
            db,
            data_dir,
            db_path,
            handle,
            wake: Arc::new(tokio::sync::Notify::new()),
            syncing: Arc::default(),
            enrolling: Default::default(),
            staff_granted: Default::default(),
            session: Mutex::new(Session {
                me: None,
                last_active: Instant::now(),
                announced_until: 0,
                wrong_pins: 0,
                blocked_until: None,
            }),
            lock_after: Mutex::new(lock_after),
            clock_offset_ms,
        }
    }

    /// The device's time: the system clock, moved by the configured offset.
    pub fn now(&self) -> i64 {
        service::now_ms() + self.clock_offset_ms
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_lock_after(&self, d: Duration) {
        *self.lock_after.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    fn lock_after(&self) -> Duration {
        *self.lock_after.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signed-in member, if the session has not been idle too long. Counts as activity.
    pub fn member_id(&self) -> UiResult<String> {
        let mut s = self.session();
        let Some(me) = s.me.clone() else {
            return Err(CoreError::new(Code::SignInRequired).into());
        };
        if s.last_active.elapsed() > self.lock_after() {
            s.me = None;
            drop(s);
            let _ = SessionLocked {
                member_id: me.id.clone(),
            }
            .emit(&self.handle);
            return Err(CoreError::new(Code::SignInRequired).into());
        }
        s.last_active = Instant::now();
        Ok(me.id)
    }

    /// Lock the session if it has been idle too long (called by a timer).
    pub fn lock_if_idle(&self) {
        let locked = {
            let mut s = self.session();
            match &s.me {
                Some(me) if s.last_active.elapsed() > self.lock_after() => {
                    let id = me.id.clone();
                    s.me = None;
                    Some(id)
                }
                _ => None,
            }
        };
        if let Some(member_id) = locked {
            tracing::info!("session locked after inactivity");
            let _ = SessionLocked { member_id }.emit(&self.handle);
        }
    }

    pub fn current(&self) -> Option<Me> {
        self.member_id().ok()?;
        self.session().me.clone()
    }

    pub async fn actor(&self) -> UiResult<Actor> {
        let id = self.member_id()?;
        Ok(service::load_actor(&self.db, &id).await?)
    }

    pub async fn sign_in(&self, member_id: &str, pin: &str) -> UiResult<Me> {
        {
            let mut s = self.session();
            if let Some(until) = s.blocked_until {
                if Instant::now() < until {
                    let minutes = (until - Instant::now()).as_secs() / 60 + 1;
                    return Err(CoreError::new(Code::TooManyPinAttempts)
                        .with("minutes", minutes)
                        .into());
                }
                s.blocked_until = None;
                s.wrong_pins = 0;
            }
        }
        match timebank_core::session::sign_in(&self.db, member_id, pin).await {
            Ok(me) => {
                let mut s = self.session();
                s.me = Some(me.clone());
                s.last_active = Instant::now();
                s.announced_until = service::now_ms() + self.clock_offset_ms.min(0);
                s.wrong_pins = 0;
                tracing::info!(member = %me.id, "signed in");
                Ok(me)
            }
            Err(e) => {
                if e.code == Code::PinIncorrect {
                    let mut s = self.session();
                    s.wrong_pins += 1;
                    if s.wrong_pins >= MAX_WRONG_PINS {
                        s.blocked_until = Some(Instant::now() + PIN_PAUSE);
                        tracing::warn!(member = member_id, "sign-in paused after wrong PINs");
                    }
                }
                Err(e.into())
            }
        }
    }

    pub fn sign_out(&self) {
        self.session().me = None;
    }

    /// Run one command as the signed-in member, then tell the UI and wake the sync loop.
    pub async fn run(&self, cmd: Command) -> UiResult<Outcome> {
        let who = self.member_id()?;
        let device = outbox::device_id(&self.db).await?;
        let out = timebank_core::execute(&self.db, &Ctx::new(who, device, self.now()), cmd).await?;
        self.changed("local").await;
        Ok(out)
    }

    /// Tell the UI that data changed, announce new inbox messages, wake the sync loop.
    pub async fn changed(&self, source: &str) {
        let _ = DataChanged {
            source: source.to_owned(),
        }
        .emit(&self.handle);
        self.announce_inbox().await;
        self.emit_status().await;
        if source == "local" {
            self.wake.notify_one();
        }
    }

    pub async fn status(&self) -> UiResult<SyncStatusView> {
        Ok(SyncStatusView::of(
            timebank_core::sync::status(&self.db).await?,
            self.syncing.load(std::sync::atomic::Ordering::Relaxed)
                || self.enrolling.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    pub async fn emit_status(&self) {
        match self.status().await {
            Ok(status) => {
                let _ = SyncStatusChanged { status }.emit(&self.handle);
            }
            Err(e) => tracing::warn!(code = %e.code, "sync status unavailable"),
        }
    }

    /// New inbox messages of the signed-in member since the last announcement: only the
    /// member they are addressed to is told, and only while signed in here.
    async fn announce_inbox(&self) {
        let (member_id, since) = {
            let s = self.session();
            match &s.me {
                Some(me) => (me.id.clone(), s.announced_until),
                None => return,
            }
        };
        let Ok(actor) = service::load_actor(&self.db, &member_id).await else {
            return;
        };
        let items = match timebank_core::read::inbox(&self.db, &actor, 50).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "inbox unavailable");
                return;
            }
        };
        let new: Vec<InboxItemView> = items
            .into_iter()
            .filter(|i| !i.read && i.created_at > since)
            .map(InboxItemView::from)
            .collect();
        if new.is_empty() {
            return;
        }
        let newest = new.iter().map(|i| i.created_at).max().unwrap_or(since);
        {
            let mut s = self.session();
            if s.me.as_ref().map(|m| m.id.as_str()) != Some(member_id.as_str()) {
                return;
            }
            s.announced_until = s.announced_until.max(newest);
        }
        let _ = InboxArrived {
            member_id,
            items: new,
        }
        .emit(&self.handle);
    }
}
