//! The commands the web-view may call: each one line over the core. Who may do what is decided
//! by the core (roles and communities of the signed-in member) and, for staff-only commands, by
//! the Tauri capability a center workstation grants (see `command_names.rs`).
use serde::{Deserialize, Serialize};
use tauri::State;
use timebank_core::domain::{ConfirmMethod, Relation, Vetting};
use timebank_core::read::{
    self, AuditRow, BalanceView, BoardItem, BoardQuery, Dashboard, MemberRow, OrderRow, OrderView,
    ReportBy, VerifyReport,
};
use timebank_core::service::command::{
    CreateActivity, FileSafeguarding, PostOrder, RegisterMember,
};
use timebank_core::service::{members::hash_pin, new_id};
use timebank_core::session::{Me, Place, SignInChoice};
use timebank_core::sync::SyncReport;
use timebank_core::views::{
    self, ActivityItem, FeedbackItem, ResidentChoice, ServiceItem, SignupItem,
};
use timebank_core::{Command, Outcome};

use crate::prefs::{self, AppInfo, Preferences};
use crate::state::{AppState, InboxItemView, SyncStatusView, UiResult};

type S<'a> = State<'a, AppState>;

// ----- the device, the session, preferences and sync -----

#[tauri::command]
#[specta::specta]
pub async fn app_info(s: S<'_>) -> UiResult<AppInfo> {
    prefs::app_info(&s).await
}

#[tauri::command]
#[specta::specta]
pub async fn sign_in_choices(s: S<'_>, query: String) -> UiResult<Vec<SignInChoice>> {
    Ok(timebank_core::session::choices(&s.db, &query).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn sign_in(s: S<'_>, member_id: String, pin: String) -> UiResult<Me> {
    s.sign_in(&member_id, &pin).await
}

#[tauri::command]
#[specta::specta]
pub fn sign_out(s: S<'_>) {
    s.sign_out()
}

#[tauri::command]
#[specta::specta]
pub fn current_user(s: S<'_>) -> Option<Me> {
    s.current()
}

/// The user is active (a key or the mouse): postpones the automatic lock.
#[tauri::command]
#[specta::specta]
pub fn touch(s: S<'_>) -> bool {
    s.member_id().is_ok()
}

#[tauri::command]
#[specta::specta]
pub async fn set_preferences(s: S<'_>, prefs: Preferences) -> UiResult<Preferences> {
    prefs::save(&s, prefs).await
}

#[tauri::command]
#[specta::specta]
pub async fn enrol(
    s: S<'_>,
    server: String,
    code: String,
    device_name: String,
) -> UiResult<SyncReport> {
    prefs::enrol(&s, &server, &code, &device_name).await
}

#[tauri::command]
#[specta::specta]
pub async fn sync_now(s: S<'_>) -> UiResult<SyncStatusView> {
    s.wake.notify_one();
    s.status().await
}

#[tauri::command]
#[specta::specta]
pub async fn sync_status(s: S<'_>) -> UiResult<SyncStatusView> {
    s.status().await
}

// ----- reads -----

#[tauri::command]
#[specta::specta]
pub async fn dashboard(s: S<'_>, community_id: Option<String>) -> UiResult<Dashboard> {
    Ok(views::dashboard_for(&s.db, &s.actor().await?, community_id.as_deref(), s.now()).await?)
}

/// Staff: the figures of every community of the city, from the city server.
#[tauri::command]
#[specta::specta]
pub async fn city_dashboard(s: S<'_>) -> UiResult<Dashboard> {
    Ok(timebank_core::sync::http::city_dashboard(&s.db, &s.actor().await?).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn communities(s: S<'_>) -> UiResult<Vec<Place>> {
    Ok(timebank_core::session::communities(&s.db).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn services(s: S<'_>) -> UiResult<Vec<ServiceItem>> {
    Ok(views::services(&s.db).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn board(s: S<'_>, query: BoardQuery) -> UiResult<Vec<BoardItem>> {
    Ok(read::board(&s.db, &s.actor().await?, &query).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn order_detail(s: S<'_>, order_id: String) -> UiResult<OrderView> {
    Ok(read::order_detail(&s.db, &s.actor().await?, &order_id).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn my_orders(s: S<'_>) -> UiResult<Vec<OrderRow>> {
    Ok(read::list_orders(&s.db, &s.actor().await?, None, None, 200).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn community_orders(
    s: S<'_>,
    community_id: String,
    status: Option<String>,
) -> UiResult<Vec<OrderRow>> {
    Ok(read::list_orders(
        &s.db,
        &s.actor().await?,
        Some(&community_id),
        status.as_deref(),
        500,
    )
    .await?)
}

#[tauri::command]
#[specta::specta]
pub async fn find_residents(s: S<'_>, query: String) -> UiResult<Vec<ResidentChoice>> {
    Ok(views::residents_for(&s.db, &s.actor().await?, &query).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn account(s: S<'_>, member_id: String) -> UiResult<BalanceView> {
    Ok(read::passbook(&s.db, &s.actor().await?, &member_id).await?)
}

/// The signed-in member's family (both directions), to give hours to.
#[tauri::command]
#[specta::specta]
pub async fn family_of(s: S<'_>) -> UiResult<Vec<ResidentChoice>> {
    Ok(views::family_of(&s.db, &s.actor().await?).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn inbox(s: S<'_>) -> UiResult<Vec<InboxItemView>> {
    Ok(read::inbox(&s.db, &s.actor().await?, 200)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[tauri::command]
#[specta::specta]
pub async fn activities(s: S<'_>, community_id: Option<String>) -> UiResult<Vec<ActivityItem>> {
    Ok(views::activities(&s.db, &s.actor().await?, community_id.as_deref()).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn activity_signups(s: S<'_>, activity_id: String) -> UiResult<Vec<SignupItem>> {
    Ok(views::signups(&s.db, &s.actor().await?, &activity_id).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn community_members(s: S<'_>, community_id: String) -> UiResult<Vec<MemberRow>> {
    Ok(read::members_of(&s.db, &s.actor().await?, &community_id, s.now()).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn feedback_desk(s: S<'_>) -> UiResult<Vec<FeedbackItem>> {
    Ok(views::feedback_desk(&s.db, &s.actor().await?).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn safeguarding_queue(
    s: S<'_>,
) -> UiResult<Vec<timebank_core::entities::safeguarding_reports::Model>> {
    Ok(read::safeguarding(&s.db, &s.actor().await?).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn held_hours(s: S<'_>) -> UiResult<Vec<read::HeldRow>> {
    Ok(read::held(&s.db, &s.actor().await?).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn report_csv(s: S<'_>, by: ReportBy) -> UiResult<String> {
    Ok(read::report_csv(&s.db, &s.actor().await?, by).await?)
}

/// Write the report to a CSV file in the user's documents folder; returns its path.
#[tauri::command]
#[specta::specta]
pub async fn save_report(s: S<'_>, by: ReportBy) -> UiResult<String> {
    prefs::save_report(&s, by).await
}

#[tauri::command]
#[specta::specta]
pub async fn audit_trail(s: S<'_>, entity_id: Option<String>) -> UiResult<Vec<AuditRow>> {
    Ok(read::audit(&s.db, &s.actor().await?, entity_id.as_deref(), 200).await?)
}

// ----- writes: each builds one core command -----

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
pub struct NewOrder {
    pub beneficiary_id: String,
    pub service_code: String,
    pub description: String,
    pub urgent: bool,
    pub place_hint: String,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub expected_minutes: i32,
    pub volunteers_needed: i32,
    /// Start of each visit for a recurring request; empty for one visit.
    pub visits: Vec<i64>,
}

#[tauri::command]
#[specta::specta]
pub async fn post_order(s: S<'_>, order: NewOrder) -> UiResult<Outcome> {
    s.run(Command::PostOrder(PostOrder {
        order_id: new_id(),
        beneficiary_id: order.beneficiary_id,
        service_code: order.service_code,
        description: order.description,
        urgent: order.urgent,
        place_hint: order.place_hint,
        address: None,
        window_start: order.window_start,
        window_end: order.window_end,
        expected_minutes: order.expected_minutes,
        volunteers_needed: order.volunteers_needed,
        visits: order.visits,
    }))
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn accept_order(s: S<'_>, order_id: String) -> UiResult<Outcome> {
    s.run(Command::AcceptOrder { order_id }).await
}

#[tauri::command]
#[specta::specta]
pub async fn release_order(s: S<'_>, order_id: String) -> UiResult<Outcome> {
    s.run(Command::ReleaseOrder { order_id }).await
}

#[tauri::command]
#[specta::specta]
pub async fn assign_volunteer(
    s: S<'_>,
    order_id: String,
    volunteer_id: String,
) -> UiResult<Outcome> {
    s.run(Command::AssignVolunteer {
        order_id,
        volunteer_id,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn check_in(s: S<'_>, order_id: String) -> UiResult<Outcome> {
    s.run(Command::CheckIn {
        order_id,
        visit_id: None,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn check_out(s: S<'_>, order_id: String, note: Option<String>) -> UiResult<Outcome> {
    s.run(Command::CheckOut {
        order_id,
        note,
        served: None,
    })
    .await
}

/// `pin`: the resident's PIN typed on the volunteer's device; None when family or staff
/// confirm in the app as themselves.
#[tauri::command]
#[specta::specta]
pub async fn confirm_visit(
    s: S<'_>,
    order_id: String,
    method: ConfirmMethod,
    pin: Option<String>,
) -> UiResult<Outcome> {
    s.run(Command::ConfirmVisit {
        order_id,
        method,
        pin,
        confirms: None,
        visit_id: None,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn dispute_visit(s: S<'_>, order_id: String, reason: String) -> UiResult<Outcome> {
    s.run(Command::DisputeVisit {
        order_id,
        reason,
        visit_id: None,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn resolve_dispute(
    s: S<'_>,
    order_id: String,
    credit: bool,
    minutes: Option<i64>,
    note: String,
) -> UiResult<Outcome> {
    s.run(Command::ResolveDispute {
        order_id,
        credit,
        minutes,
        note,
        visit_id: None,
    })
    .await
}

/// Auto-confirm visits nobody confirmed, expire stale orders, widen urgent ones nobody took
/// (the clock-driven rules of product.md) in the staff member's communities.
#[tauri::command]
#[specta::specta]
pub async fn run_scheduled_rules(s: S<'_>) -> UiResult<Outcome> {
    s.run(Command::Tick).await
}

#[tauri::command]
#[specta::specta]
pub async fn cancel_order(s: S<'_>, order_id: String, reason: String) -> UiResult<Outcome> {
    s.run(Command::CancelOrder { order_id, reason }).await
}

#[tauri::command]
#[specta::specta]
pub async fn gift(s: S<'_>, to_member_id: String, minutes: i64, note: String) -> UiResult<Outcome> {
    s.run(Command::Gift {
        transfer_id: new_id(),
        to_member_id,
        minutes,
        note,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn reverse_transfer(s: S<'_>, transfer_id: String, reason: String) -> UiResult<Outcome> {
    s.run(Command::ReverseTransfer {
        transfer_id: new_id(),
        reverses_id: transfer_id,
        reason,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn approve_held(s: S<'_>, flag_id: String, note: String) -> UiResult<Outcome> {
    s.run(Command::ApproveHeld {
        flag_id,
        transfer_id: new_id(),
        note,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn dismiss_held(s: S<'_>, flag_id: String, note: String) -> UiResult<Outcome> {
    s.run(Command::DismissHeld { flag_id, note }).await
}

#[tauri::command]
#[specta::specta]
pub async fn register_member(s: S<'_>, member: RegisterMember) -> UiResult<Outcome> {
    s.run(Command::RegisterMember(RegisterMember {
        member_id: new_id(),
        ..member
    }))
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn link_family(
    s: S<'_>,
    member_id: String,
    relative_id: String,
    relation: Relation,
) -> UiResult<Outcome> {
    s.run(Command::LinkFamily {
        member_id,
        relative_id,
        relation,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn set_vetting(s: S<'_>, member_id: String, vetting: Vetting) -> UiResult<Outcome> {
    s.run(Command::SetVetting { member_id, vetting }).await
}

#[tauri::command]
#[specta::specta]
pub async fn set_member_pin(s: S<'_>, member_id: String, pin: String) -> UiResult<Outcome> {
    s.run(Command::SetPin {
        member_id,
        pin_hash: hash_pin(&pin)?,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn set_hardship(s: S<'_>, member_id: String, hardship: bool) -> UiResult<Outcome> {
    s.run(Command::SetHardship {
        member_id,
        hardship,
    })
    .await
}

/// Import members from CSV text: all or nothing; a refusal lists every bad row in `data`.
#[tauri::command]
#[specta::specta]
pub async fn import_members(
    s: S<'_>,
    csv: String,
) -> UiResult<timebank_core::import::ImportReport> {
    prefs::import_members(&s, &csv).await
}

#[tauri::command]
#[specta::specta]
pub async fn create_activity(s: S<'_>, activity: CreateActivity) -> UiResult<Outcome> {
    s.run(Command::CreateActivity(CreateActivity {
        activity_id: new_id(),
        ..activity
    }))
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn sign_up_activity(
    s: S<'_>,
    activity_id: String,
    member_id: String,
) -> UiResult<Outcome> {
    s.run(Command::SignUpActivity {
        activity_id,
        member_id,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn record_attendance(
    s: S<'_>,
    activity_id: String,
    member_ids: Vec<String>,
) -> UiResult<Outcome> {
    s.run(Command::RecordAttendance {
        activity_id,
        member_ids,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn rate_service(
    s: S<'_>,
    order_id: String,
    rating: i32,
    comment: String,
) -> UiResult<Outcome> {
    s.run(Command::RateService {
        feedback_id: new_id(),
        order_id,
        rating,
        comment,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn respond_feedback(
    s: S<'_>,
    feedback_id: String,
    response: String,
) -> UiResult<Outcome> {
    s.run(Command::RespondFeedback {
        feedback_id,
        response,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn file_safeguarding(s: S<'_>, report: FileSafeguarding) -> UiResult<Outcome> {
    s.run(Command::FileSafeguarding(FileSafeguarding {
        report_id: new_id(),
        ..report
    }))
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn update_safeguarding(
    s: S<'_>,
    report_id: String,
    status: String,
    resolution: Option<String>,
) -> UiResult<Outcome> {
    s.run(Command::UpdateSafeguarding {
        report_id,
        status,
        resolution,
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn mark_read(s: S<'_>, message_id: String) -> UiResult<Outcome> {
    s.run(Command::MarkInboxRead { message_id }).await
}

// ----- backup and restore (staff) -----

#[tauri::command]
#[specta::specta]
pub async fn backup_now(s: S<'_>) -> UiResult<prefs::BackupFile> {
    prefs::backup_now(&s).await
}

#[tauri::command]
#[specta::specta]
pub async fn list_backups(s: S<'_>) -> UiResult<Vec<prefs::BackupFile>> {
    prefs::list_backups(&s).await
}

/// Check a backup, then restart the app to put it in place of the current database.
#[tauri::command]
#[specta::specta]
pub async fn restore_backup(s: S<'_>, file_name: String) -> UiResult<VerifyReport> {
    prefs::restore_backup(&s, &file_name).await
}

/// Every command, for the invoke handler and for the TypeScript bindings.
pub fn builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(tauri_specta::collect_commands![
            app_info,
            sign_in_choices,
            sign_in,
            sign_out,
            current_user,
            touch,
            set_preferences,
            enrol,
            sync_now,
            sync_status,
            dashboard,
            city_dashboard,
            communities,
            services,
            board,
            order_detail,
            my_orders,
            community_orders,
            find_residents,
            account,
            family_of,
            inbox,
            activities,
            activity_signups,
            community_members,
            feedback_desk,
            safeguarding_queue,
            held_hours,
            report_csv,
            save_report,
            audit_trail,
            post_order,
            accept_order,
            release_order,
            assign_volunteer,
            check_in,
            check_out,
            confirm_visit,
            dispute_visit,
            resolve_dispute,
            run_scheduled_rules,
            cancel_order,
            gift,
            reverse_transfer,
            approve_held,
            dismiss_held,
            register_member,
            link_family,
            set_vetting,
            set_member_pin,
            set_hardship,
            import_members,
            create_activity,
            sign_up_activity,
            record_attendance,
            rate_service,
            respond_feedback,
            file_safeguarding,
            update_safeguarding,
            mark_read,
            backup_now,
            list_backups,
            restore_backup,
        ])
        .events(tauri_specta::collect_events![
            crate::state::DataChanged,
            crate::state::SyncStatusChanged,
            crate::state::InboxArrived,
            crate::state::SessionLocked,
        ])
        .typ::<UiErrorType>()
        // i64 in these types are minutes and instants in milliseconds: far below 2^53, so a
        // JavaScript number holds them exactly.
        .dangerously_cast_bigints_to_number()
}

/// Makes sure the error type is exported even if no command's signature names it directly.
type UiErrorType = crate::state::UiError;
