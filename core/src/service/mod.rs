//! The service layer: the one way every write goes. [`execute`] runs a [`Command`] in one
//! transaction that (1) checks the actor's role and community scope, (2) applies the change,
//! (3) writes the audit entry and (4) appends the mutation to the sync outbox.
pub mod activities;
pub mod admin;
pub mod command;
pub mod feedback;
pub mod ledger;
pub mod members;
pub mod orders;
pub mod outbox;

pub use command::*;

use crate::domain::Role;
use crate::entities::{
    audit_log, center_communities, inbox_messages, member_roles, members as member_e, places,
};
use crate::error::{Code, CoreError, Result};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// Who is acting, from which device, and when; and the mutation being applied.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor_id: String,
    pub device_id: String,
    pub now_ms: i64,
    /// Set when the city server re-applies a device's mutation: device-verified secrets
    /// (the PIN) are trusted and the mutation is not appended to an outbox again.
    pub replay: bool,
    /// The UUIDv7 of the mutation: the outbox id on the device, the pushed id on the server.
    pub mutation_id: String,
    /// The mutation's hybrid-logical-clock time, when the city server replays it: decides
    /// concurrent edits of one profile field (last writer wins). None on the device.
    pub hlc: Option<String>,
    /// The device's own clock when the mutation was made, unclamped, when the city server
    /// replays it: durations measured on one device clock (check-in to check-out) stay right
    /// even when that clock is days off and `now_ms` was clamped.
    pub device_at: Option<i64>,
    /// Set when a device runs a mutation waiting in its outbox again on rows just pulled (the
    /// rebase of `sync`): it was audited when it was made, so no second audit entry.
    pub redo: bool,
    /// Reference data kept for the mutations of a pushed group (see [`Memo`]); None on devices.
    pub memo: Option<std::sync::Arc<Memo>>,
    derived: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

/// Namespace of the ids derived from a mutation id.
const DERIVED_NS: uuid::Uuid = uuid::Uuid::from_u128(0x7f1c_2a4e_9b0d_4c3a_8e51_6d2f_0a9b_c3e4);

impl Ctx {
    pub fn new(actor_id: impl Into<String>, device_id: impl Into<String>, now_ms: i64) -> Self {
        Ctx {
            actor_id: actor_id.into(),
            device_id: device_id.into(),
            now_ms,
            replay: false,
            mutation_id: new_id(),
            hlc: None,
            device_at: None,
            redo: false,
            memo: None,
            derived: Default::default(),
        }
    }

    /// The same context reading reference data through `memo`.
    pub fn with_memo(mut self, memo: std::sync::Arc<Memo>) -> Self {
        self.memo = Some(memo);
        self
    }

    /// The same context carrying the replayed mutation's HLC time.
    pub fn with_hlc(mut self, hlc: &str) -> Self {
        self.hlc = Some(hlc.to_owned());
        self
    }

    /// The same context carrying the device's unclamped clock time of the mutation.
    pub fn with_device_time(mut self, at: i64) -> Self {
        self.device_at = Some(at);
        self
    }

    /// An id derived from the mutation id under `tag`, outside the `derive_id` sequence: for
    /// rows only the server's replay creates (conflict notices), so that the rows both sides
    /// create keep the same ids.
    pub fn derive_tagged(&self, tag: &str, n: usize) -> String {
        uuid::Uuid::new_v5(
            &DERIVED_NS,
            format!("{}:{tag}:{n}", self.mutation_id).as_bytes(),
        )
        .to_string()
    }

    /// The context in which the city server re-applies the pushed mutation `mutation_id`.
    pub fn replaying(actor_id: &str, device_id: &str, now_ms: i64, mutation_id: &str) -> Self {
        Ctx {
            replay: true,
            mutation_id: mutation_id.to_owned(),
            ..Ctx::new(actor_id, device_id, now_ms)
        }
    }

    /// The context in which a device runs its waiting mutation `mutation_id` again on pulled
    /// rows: as the city server will replay it, without a second audit entry.
    pub fn redoing(actor_id: &str, device_id: &str, made_at: i64, mutation_id: &str) -> Self {
        Ctx {
            redo: true,
            ..Ctx::replaying(actor_id, device_id, made_at, mutation_id).with_device_time(made_at)
        }
    }

    /// A copy for a new mutation (fresh mutation id, derived ids counted from zero).
    fn for_new_mutation(&self) -> Self {
        Ctx {
            mutation_id: new_id(),
            derived: Default::default(),
            ..self.clone()
        }
    }

    /// The next id of a row this mutation creates (an inbox message, a transfer, a flag, the
    /// audit entry). Derived from the mutation id and a counter, so that the device and the
    /// city server applying the same mutation to the same state create the same rows.
    pub fn derive_id(&self) -> String {
        let n = self
            .derived
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        uuid::Uuid::new_v5(&DERIVED_NS, format!("{}:{n}", self.mutation_id).as_bytes()).to_string()
    }
}

/// Reference data the mutations of a pushed group read again and again (the programme's rules,
/// places), kept by the city server for the group while its commands cannot change them: it
/// [`Memo::clear`]s it after any command outside [`Command::leaves_actors_unchanged`] (which
/// also leaves programmes and places alone).
#[derive(Debug, Default)]
pub struct Memo {
    rules: std::sync::Mutex<Option<(String, crate::domain::Rules)>>,
    places: std::sync::Mutex<std::collections::HashMap<String, places::Model>>,
    /// The issuing account's id of each programme (an account's id never changes).
    issuing: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Memo {
    pub fn clear(&self) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.places
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.issuing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The programme's id and rules, through the batch's memo when there is one.
pub async fn rules_in<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
) -> Result<(String, crate::domain::Rules)> {
    if let Some(m) = &ctx.memo {
        if let Some(r) = m.rules.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(r);
        }
    }
    let r = admin::rules(c).await?;
    if let Some(m) = &ctx.memo {
        *m.rules.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
    }
    Ok(r)
}

/// A place, through the batch's memo when there is one.
pub async fn get_place_in<C: ConnectionTrait>(c: &C, ctx: &Ctx, id: &str) -> Result<places::Model> {
    if let Some(m) = &ctx.memo {
        if let Some(p) = m.places.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(p.clone());
        }
    }
    let p = get_place(c, id).await?;
    if let Some(m) = &ctx.memo {
        m.places
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), p.clone());
    }
    Ok(p)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new UUIDv7 id (time ordered).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What a command produced: the main id it touched and any detail worth showing.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Outcome {
    pub id: String,
    pub detail: Value,
}

impl Outcome {
    pub fn id(id: impl Into<String>) -> Self {
        Outcome {
            id: id.into(),
            detail: Value::Null,
        }
    }
}

/// The acting member with their roles and the communities they may act in as staff.
#[derive(Debug, Clone)]
pub struct Actor {
    pub member: member_e::Model,
    /// The roles the member may use here: all they hold, less what the acting device's
    /// enrolment withholds (see [`Actor::confined`]).
    pub roles: BTreeSet<Role>,
    /// Communities served by the actor's center (staff only).
    pub staff_scope: BTreeSet<String>,
    /// The communities of the enrolment of the device the member acts on, when the actor is
    /// confined to one (None: a device never enrolled, or the city server's own work).
    pub reach: Option<BTreeSet<String>>,
    /// Roles the member holds but may not use on this device (staff and administrator on a
    /// volunteer's device).
    pub withheld: BTreeSet<Role>,
}

/// What a device was enrolled for: its communities, and whether it is a center's
/// workstation (staff and administrators may act as such only on one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub communities: BTreeSet<String>,
    pub center: bool,
}

impl Grant {
    /// The roles a member may use only on a center's workstation.
    pub const CENTER_ONLY: [Role; 2] = [Role::Staff, Role::Admin];

    /// A grant from an enrolment's role (`center` or `volunteer`) and communities.
    pub fn new<'a>(role: &str, communities: impl IntoIterator<Item = &'a String>) -> Grant {
        Grant {
            communities: communities.into_iter().cloned().collect(),
            center: role == "center",
        }
    }

    /// Whether a member may use `role` on the device.
    pub fn allows(&self, role: Role) -> bool {
        self.center || !Self::CENTER_ONLY.contains(&role)
    }
}

impl Actor {
    pub fn id(&self) -> &str {
        &self.member.id
    }
    pub fn has(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }
    /// The actor as the device of `grant` may let them act: on a volunteer's device without
    /// their staff and administrator roles, and as staff (administrators included) only for
    /// the device's communities. The city server confines every pushed mutation's actor so,
    /// whatever the device claims; an enrolled device confines its own users the same way.
    pub fn confined(mut self, grant: &Grant) -> Actor {
        let (kept, withheld) = self.roles.iter().partition(|r| grant.allows(**r));
        (self.roles, self.withheld) = (kept, withheld);
        if !self.has(Role::Staff) {
            self.staff_scope.clear();
        }
        self.staff_scope.retain(|c| grant.communities.contains(c));
        self.reach = Some(grant.communities.clone());
        self
    }
    /// Staff of a center serving `community`, or an administrator, within the device's reach.
    pub fn is_staff_for(&self, community: &str) -> bool {
        self.reach.as_ref().is_none_or(|r| r.contains(community))
            && (self.is_admin() || (self.has(Role::Staff) && self.staff_scope.contains(community)))
    }
    pub fn require_staff_for(&self, community: &str, action: &str) -> Result<()> {
        if self.is_staff_for(community) {
            Ok(())
        } else if self.has(Role::Staff) {
            Err(CoreError::new(Code::OutOfScope).with("community", community))
        } else {
            Err(CoreError::forbidden(action))
        }
    }
    pub fn require_admin(&self, action: &str) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(CoreError::forbidden(action))
        }
    }
}

/// The member `id` as an actor, confined to this device's enrolment when it has one (see
/// [`Actor::confined`]; the city server's database has none, and the server confines each
/// pushed mutation's actor to the pushing device's).
pub async fn load_actor<C: ConnectionTrait>(c: &C, id: &str) -> Result<Actor> {
    let member = member_e::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("member", id))?;
    if !member.active {
        return Err(CoreError::forbidden("act as a deactivated member"));
    }
    let roles: BTreeSet<Role> = member_roles::Entity::find()
        .filter(member_roles::Column::MemberId.eq(id))
        .all(c)
        .await?
        .into_iter()
        .filter_map(|r| Role::parse(&r.role))
        .collect();
    let mut staff_scope = BTreeSet::new();
    if let (true, Some(center)) = (roles.contains(&Role::Staff), &member.center_id) {
        staff_scope = center_communities::Entity::find()
            .filter(center_communities::Column::CenterId.eq(center.as_str()))
            .all(c)
            .await?
            .into_iter()
            .map(|r| r.community_id)
            .collect();
    }
    let actor = Actor {
        member,
        roles,
        staff_scope,
        reach: None,
        withheld: BTreeSet::new(),
    };
    Ok(match crate::sync::enrolled_grant(c).await? {
        Some(grant) => actor.confined(&grant),
        None => actor,
    })
}

/// What the audit trail records of one command.
#[derive(Debug, Clone)]
pub struct Audit {
    pub entity: &'static str,
    pub entity_id: String,
    pub on_behalf_of: Option<String>,
    pub detail: Value,
}

impl Audit {
    pub fn of(entity: &'static str, id: impl Into<String>) -> Self {
        Audit {
            entity,
            entity_id: id.into(),
            on_behalf_of: None,
            detail: Value::Null,
        }
    }
    pub fn behalf(mut self, who: Option<String>) -> Self {
        self.on_behalf_of = who;
        self
    }
    pub fn detail(mut self, d: Value) -> Self {
        self.detail = d;
        self
    }
}

/// Run one command in its own transaction. On any error nothing is written.
pub async fn execute(db: &DatabaseConnection, ctx: &Ctx, cmd: Command) -> Result<Outcome> {
    let txn = crate::db::begin_write(db).await?;
    let out = execute_in(&txn, ctx, &cmd).await?;
    txn.commit().await?;
    Ok(out)
}

/// Run one command inside a transaction the caller holds (imports, the server's push).
pub async fn execute_in<C: ConnectionTrait>(c: &C, ctx: &Ctx, cmd: &Command) -> Result<Outcome> {
    execute_as(c, ctx, None, cmd).await
}

/// [`execute_in`] with the actor already loaded by [`load_actor`] in this transaction (the city
/// server loads it once for the mutations of a pushed batch that cannot change it); None loads it.
pub async fn execute_as<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    actor: Option<&Actor>,
    cmd: &Command,
) -> Result<Outcome> {
    let fresh;
    let ctx = if ctx.replay {
        ctx
    } else {
        fresh = ctx.for_new_mutation();
        &fresh
    };
    let prepared;
    let cmd = match (ctx.replay, prepare(c, ctx, cmd).await?) {
        (false, Some(p)) => {
            prepared = p;
            &prepared
        }
        _ => cmd,
    };
    let loaded;
    let actor = match actor {
        Some(a) if a.member.id == ctx.actor_id => a,
        _ => {
            loaded = load_actor(c, &ctx.actor_id).await?;
            &loaded
        }
    };
    let (out, audit) = match dispatch(c, ctx, actor, cmd).await {
        Ok(x) => x,
        Err(e) => return Err(name_places(c, e).await),
    };
    if !ctx.redo {
        write_audit(c, ctx, &cmd.name(), &audit).await?;
    }
    if !ctx.replay {
        outbox::append(c, ctx, cmd).await?;
        // The journal of an enrolled device: which rows this mutation touched.
        outbox::journal(c, &ctx.mutation_id).await?;
    }
    Ok(out)
}

/// On the device: the command completed with what the device saw when it was executed, for
/// the city server to decide conflicts with (None: nothing to add).
async fn prepare<C: ConnectionTrait>(c: &C, ctx: &Ctx, cmd: &Command) -> Result<Option<Command>> {
    match cmd {
        Command::UpdateMember(_) => members::with_seen(c, cmd).await,
        Command::CheckOut { .. } => orders::with_served(c, &ctx.actor_id, cmd).await,
        Command::ConfirmVisit { .. } => orders::with_confirmed(c, cmd).await,
        Command::CheckIn { .. } | Command::DisputeVisit { .. } | Command::ResolveDispute { .. } => {
            orders::with_visit(c, cmd).await
        }
        _ => Ok(None),
    }
}

async fn dispatch<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    cmd: &Command,
) -> Result<(Outcome, Audit)> {
    use Command as K;
    match cmd {
        K::RegisterMember(r) => members::register(c, ctx, a, r).await,
        K::UpdateMember(u) => members::update(c, ctx, a, u).await,
        K::LinkFamily {
            member_id,
            relative_id,
            relation,
        } => members::link_family(c, ctx, a, member_id, relative_id, *relation).await,
        K::SetVetting { member_id, vetting } => {
            members::set_vetting(c, ctx, a, member_id, *vetting).await
        }
        K::SetPin {
            member_id,
            pin_hash,
        } => members::set_pin(c, a, member_id, pin_hash).await,
        K::SetHardship {
            member_id,
            hardship,
        } => members::set_hardship(c, a, member_id, *hardship).await,
        K::PostOrder(p) => orders::post(c, ctx, a, p).await,
        K::AcceptOrder { order_id } => orders::accept(c, ctx, a, order_id, None).await,
        K::AssignVolunteer {
            order_id,
            volunteer_id,
        } => orders::accept(c, ctx, a, order_id, Some(volunteer_id)).await,
        K::ReleaseOrder { order_id } => orders::release(c, ctx, a, order_id).await,
        K::CheckIn { order_id, visit_id } => {
            orders::check_in(c, ctx, a, order_id, visit_id.as_deref()).await
        }
        K::CheckOut {
            order_id,
            note,
            served,
        } => orders::check_out(c, ctx, a, order_id, note.as_deref(), served.as_ref()).await,
        K::ConfirmVisit {
            order_id,
            method,
            pin,
            confirms,
            visit_id,
        } => {
            orders::confirm(
                c,
                ctx,
                a,
                order_id,
                *method,
                pin.as_deref(),
                confirms.as_deref(),
                visit_id.as_deref(),
            )
            .await
        }
        K::DisputeVisit {
            order_id,
            reason,
            visit_id,
        } => {
            orders::same_visit(c, ctx, order_id, visit_id.as_deref()).await?;
            orders::dispute(c, ctx, a, order_id, reason).await
        }
        K::ResolveDispute {
            order_id,
            credit,
            minutes,
            note,
            visit_id,
        } => {
            orders::same_visit(c, ctx, order_id, visit_id.as_deref()).await?;
            orders::resolve(c, ctx, a, order_id, *credit, *minutes, note).await
        }
        K::CancelOrder { order_id, reason } => orders::cancel(c, ctx, a, order_id, reason).await,
        K::Tick => orders::tick(c, ctx, a).await,
        K::Gift {
            transfer_id,
            to_member_id,
            minutes,
            note,
        } => ledger::gift(c, ctx, a, transfer_id, to_member_id, *minutes, note).await,
        K::ReverseTransfer {
            transfer_id,
            reverses_id,
            reason,
        } => ledger::reverse(c, ctx, a, transfer_id, reverses_id, reason).await,
        K::ApproveHeld {
            flag_id,
            transfer_id,
            note,
        } => ledger::approve_held(c, ctx, a, flag_id, transfer_id, note).await,
        K::DismissHeld { flag_id, note } => ledger::dismiss_held(c, ctx, a, flag_id, note).await,
        K::CreateActivity(x) => activities::create(c, ctx, a, x).await,
        K::SignUpActivity {
            activity_id,
            member_id,
        } => activities::sign_up(c, ctx, a, activity_id, member_id).await,
        K::RecordAttendance {
            activity_id,
            member_ids,
        } => activities::attend(c, ctx, a, activity_id, member_ids).await,
        K::RateService {
            feedback_id,
            order_id,
            rating,
            comment,
        } => feedback::rate(c, ctx, a, feedback_id, order_id, *rating, comment).await,
        K::VolunteerNote {
            feedback_id,
            order_id,
            comment,
        } => feedback::volunteer_note(c, ctx, a, feedback_id, order_id, comment).await,
        K::RespondFeedback {
            feedback_id,
            response,
        } => feedback::respond(c, ctx, a, feedback_id, response).await,
        K::FileSafeguarding(f) => feedback::file_safeguarding(c, ctx, a, f).await,
        K::UpdateSafeguarding {
            report_id,
            status,
            resolution,
        } => {
            feedback::update_safeguarding(c, ctx, a, report_id, status, resolution.as_deref()).await
        }
        K::MarkInboxRead { message_id } => mark_read(c, ctx, a, message_id).await,
        K::SetRules(r) => admin::set_rules(c, ctx, a, r).await,
        K::UpsertService {
            code,
            field_code,
            name_zh,
            name_en,
            active,
        } => admin::upsert_service(c, a, code, field_code, name_zh, name_en, *active).await,
    }
}

pub async fn write_audit<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    action: &str,
    a: &Audit,
) -> Result<()> {
    let entry = audit_log::Model {
        id: ctx.derive_id(),
        at: ctx.now_ms,
        actor_id: ctx.actor_id.clone(),
        on_behalf_of: a.on_behalf_of.clone(),
        device_id: ctx.device_id.clone(),
        action: action.to_owned(),
        entity: a.entity.to_owned(),
        entity_id: a.entity_id.clone(),
        detail: a.detail.to_string(),
    };
    audit_log::Entity::insert(entry.into_active_model())
        .exec_without_returning(c)
        .await?;
    Ok(())
}

/// Put a message in a member's inbox (the record of every notification).
pub async fn notify<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    member_id: &str,
    kind: &str,
    params: Value,
) -> Result<()> {
    inbox_messages::Entity::insert(
        inbox_messages::Model {
            id: ctx.derive_id(),
            member_id: member_id.to_owned(),
            kind: kind.to_owned(),
            params: params.to_string(),
            read_at: None,
            created_at: ctx.now_ms,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await?;
    Ok(())
}

/// Staff of the centers serving `community` (who get escalations and safeguarding reports).
pub async fn staff_of<C: ConnectionTrait>(c: &C, community: &str) -> Result<Vec<String>> {
    let centers: Vec<String> = center_communities::Entity::find()
        .filter(center_communities::Column::CommunityId.eq(community))
        .all(c)
        .await?
        .into_iter()
        .map(|r| r.center_id)
        .collect();
    let staff = member_e::Entity::find()
        .filter(member_e::Column::CenterId.is_in(centers))
        .filter(member_e::Column::Active.eq(true))
        .all(c)
        .await?;
    let mut out = Vec::new();
    for m in staff {
        let is_staff =
            member_roles::Entity::find_by_id((m.id.clone(), Role::Staff.as_str().to_owned()))
                .one(c)
                .await?
                .is_some();
        if is_staff {
            out.push(m.id);
        }
    }
    Ok(out)
}

async fn mark_read<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    id: &str,
) -> Result<(Outcome, Audit)> {
    let m = inbox_messages::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("inbox message", id))?;
    if m.member_id != a.id() {
        return Err(CoreError::forbidden("read another member's inbox"));
    }
    let mut am = m.into_active_model();
    am.read_at = sea_orm::Set(Some(ctx.now_ms));
    am.update(c).await?;
    Ok((Outcome::id(id), Audit::of("inbox_message", id)))
}

pub async fn get_place<C: ConnectionTrait>(c: &C, id: &str) -> Result<places::Model> {
    places::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("place", id))
}

pub async fn get_member<C: ConnectionTrait>(c: &C, id: &str) -> Result<member_e::Model> {
    member_e::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("member", id))
}

/// Map a unique-constraint violation to a clear `duplicate` error.
/// A unique index refused the write (SQLite: "UNIQUE constraint failed", PostgreSQL:
/// "duplicate key value violates unique constraint").
pub fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    let t = e.to_string().to_lowercase();
    t.contains("unique") || t.contains("duplicate key")
}

pub fn on_duplicate(e: sea_orm::DbErr, entity: &str, id: &str) -> CoreError {
    if is_unique_violation(&e) {
        CoreError::new(Code::Duplicate)
            .with("entity", entity)
            .with("id", id)
    } else {
        e.into()
    }
}

pub fn jsonv<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub(crate) fn nonempty(field: &str, v: &str, max: usize) -> Result<String> {
    let t = v.trim();
    if t.is_empty() {
        return Err(CoreError::invalid(field, "不能为空", "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            &format!("不能超过{max}个字"),
            &format!("must be at most {max} characters"),
        ));
    }
    Ok(t.to_owned())
}

/// Name a community by its names, not its id, in an `out_of_scope` refusal.
async fn name_places<C: ConnectionTrait>(c: &C, e: CoreError) -> CoreError {
    if e.code != Code::OutOfScope {
        return e;
    }
    let Some(id) = e.detail.get("community").cloned() else {
        return e;
    };
    match places::Entity::find_by_id(id).one(c).await {
        Ok(Some(p)) => e.with2("community", p.name_zh, p.name_en),
        _ => e,
    }
}
