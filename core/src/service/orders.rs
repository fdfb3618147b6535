//! Orders (requests for help): posting, accepting, releasing, assigning, check-in and out,
//! confirmation, disputes, cancellation, expiry, urgent escalation and auto-confirmation.
//! Every status change goes through [`OrderStatus::apply`].
use super::members::{may_act_for, verify_pin};
use super::{get_member, get_place, notify, Actor, Audit, Ctx, Outcome, PostOrder, Served};
use crate::domain::rules::age_on;
use crate::domain::{ConfirmMethod, OrderEvent, OrderStatus, Payer, Role, Vetting};
use crate::entities::{
    ledger_flags, members, order_visits, order_volunteers, orders, services, visit_attendance,
    volunteer_profiles,
};
use crate::error::{Code, CoreError, Result};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;

pub async fn get_order<C: ConnectionTrait>(c: &C, id: &str) -> Result<orders::Model> {
    orders::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("order", id))
}

fn status_of(o: &orders::Model) -> OrderStatus {
    OrderStatus::parse(&o.status).unwrap_or(OrderStatus::Open)
}

/// The next status or an `illegal_transition` error naming both.
fn next(o: &orders::Model, e: OrderEvent) -> Result<OrderStatus> {
    let s = status_of(o);
    s.apply(e)
        .ok_or_else(|| CoreError::illegal(s.as_str(), e.name()))
}

async fn set_status<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    o: &orders::Model,
    s: OrderStatus,
) -> Result<()> {
    orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(s.as_str()))
        .col_expr(orders::Column::UpdatedAt, Expr::value(ctx.now_ms))
        .filter(orders::Column::Id.eq(o.id.as_str()))
        .exec(c)
        .await?;
    Ok(())
}

pub fn visit_id(order_id: &str, n: i32) -> String {
    format!("{order_id}-v{n}")
}

pub async fn post<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    p: &PostOrder,
) -> Result<(Outcome, Audit)> {
    let b = get_member(c, &p.beneficiary_id).await?;
    if !may_act_for(c, a, &b).await? {
        return Err(CoreError::forbidden("request help for this resident"));
    }
    let description = super::nonempty("description", &p.description, 2000)?;
    let place_hint = super::nonempty("place_hint", &p.place_hint, 100)?;
    if !(5..=24 * 60).contains(&p.expected_minutes) {
        return Err(CoreError::invalid(
            "expected_minutes",
            "预计时长须在5分钟到24小时之间",
            "must be between 5 minutes and 24 hours",
        ));
    }
    if !(1..=20).contains(&p.volunteers_needed) {
        return Err(CoreError::invalid(
            "volunteers_needed",
            "需要的志愿者人数须在1到20之间",
            "must be 1 to 20",
        ));
    }
    if p.visits.len() > 60 {
        return Err(CoreError::invalid(
            "visits",
            "一个订单最多60次服务",
            "at most 60 visits per order",
        ));
    }
    if let (Some(s), Some(e)) = (p.window_start, p.window_end) {
        if e <= s {
            return Err(CoreError::invalid(
                "window_end",
                "结束时间必须晚于开始时间",
                "must be after the start",
            ));
        }
    }
    if p.window_end.is_some_and(|e| e <= ctx.now_ms) {
        return Err(CoreError::invalid(
            "window_end",
            "时间已经过去了",
            "is already in the past",
        ));
    }
    let svc = services::Entity::find_by_id(p.service_code.clone())
        .one(c)
        .await?
        .filter(|s| s.active)
        .ok_or_else(|| CoreError::not_found("service", &p.service_code))?;
    let address = p
        .address
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| b.address.clone())
        .ok_or_else(|| {
            CoreError::invalid(
                "address",
                "请填写服务地址（居民档案中没有地址）",
                "give the address (the resident has none on file)",
            )
        })?;
    let visits_total = p.visits.len().max(1) as i32;
    let (_, rules) = super::rules_in(c, ctx).await?;
    if rules.payer == Payer::Beneficiary {
        let age = age_on(b.date_of_birth, rules.local_date(ctx.now_ms));
        rules.may_spend(age, b.hardship).map_err(|(min, age)| {
            CoreError::new(Code::UnderMinSpendAge)
                .with("min_age", min)
                .with("age", age)
        })?;
        let acct = super::ledger::member_account(c, &b.id).await?;
        let needed = rules.round(i64::from(p.expected_minutes))
            * i64::from(visits_total)
            * i64::from(p.volunteers_needed);
        if !rules.may_pay(acct.balance, needed) {
            return Err(CoreError::new(Code::OverdraftLimit)
                .with_minutes("balance", acct.balance)
                .with_minutes("needed", needed)
                .with_minutes("limit", rules.overdraft_limit));
        }
    }
    let o = orders::Model {
        id: p.order_id.clone(),
        service_code: svc.code.clone(),
        field_code: svc.field_code.clone(),
        beneficiary_id: b.id.clone(),
        posted_by: a.id().to_owned(),
        description,
        urgent: p.urgent,
        community_id: b.home_community_id.clone(),
        place_hint,
        address,
        window_start: p.window_start,
        window_end: p.window_end,
        expected_minutes: p.expected_minutes,
        volunteers_needed: p.volunteers_needed,
        accepted_count: 0,
        visits_total,
        visits_done: 0,
        status: OrderStatus::Open.as_str().into(),
        escalated: false,
        cancel_reason: None,
        created_at: ctx.now_ms,
        updated_at: ctx.now_ms,
        first_accepted_at: None,
    };
    orders::Entity::insert(o.into_active_model())
        .exec_without_returning(c)
        .await
        .map_err(|e| super::on_duplicate(e, "order", &p.order_id))?;
    let starts: Vec<Option<i64>> = if p.visits.is_empty() {
        vec![p.window_start]
    } else {
        p.visits.iter().copied().map(Some).collect()
    };
    order_visits::Entity::insert_many(starts.iter().enumerate().map(|(i, s)| {
        let n = i as i32 + 1;
        order_visits::Model {
            id: visit_id(&p.order_id, n),
            order_id: p.order_id.clone(),
            visit_no: n,
            scheduled_at: *s,
            status: "scheduled".into(),
            completed_at: None,
        }
        .into_active_model()
    }))
    .exec_without_returning(c)
    .await?;
    // Tell the verified volunteers of the community whose fields include this service.
    let kind = if p.urgent {
        "urgent_order"
    } else {
        "new_order"
    };
    for v in matching_volunteers(c, &b.home_community_id, &svc.field_code).await? {
        if v != b.id {
            notify(
                c,
                ctx,
                &v,
                kind,
                json!({"order_id": p.order_id, "service": svc.name_zh, "place_hint": p.place_hint}),
            )
            .await?;
        }
    }
    if b.id != a.id() {
        notify(
            c,
            ctx,
            &b.id,
            "order_posted_for_you",
            json!({"order_id": p.order_id, "by": a.member.name}),
        )
        .await?;
    }
    let behalf = (b.id != a.id()).then(|| b.id.clone());
    Ok((
        Outcome::id(&p.order_id),
        Audit::of("order", &p.order_id)
            .behalf(behalf)
            .detail(json!({"service": svc.code, "urgent": p.urgent, "visits": visits_total})),
    ))
}

async fn matching_volunteers<C: ConnectionTrait>(
    c: &C,
    community: &str,
    field: &str,
) -> Result<Vec<String>> {
    let rows = crate::sql::all(
        c,
        "SELECT m.id, p.service_fields FROM members m JOIN volunteer_profiles p ON p.member_id = m.id \
         WHERE m.home_community_id = ? AND m.active = ? AND p.vetting = ?",
        vec![community.into(), true.into(), Vetting::Verified.as_str().into()],
    )
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: String = r.try_get("", "id")?;
        let fields: String = r.try_get("", "service_fields")?;
        let fields: Vec<String> = serde_json::from_str(&fields).unwrap_or_default();
        if fields.is_empty() || fields.iter().any(|f| f == field) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A verified volunteer who may take orders of `o`'s community (same community, or the same
/// subdistrict once an urgent order has been widened).
async fn check_volunteer_for<C: ConnectionTrait>(
    c: &C,
    v: &members::Model,
    o: &orders::Model,
) -> Result<()> {
    let roles = super::members::roles_of(c, &v.id).await?;
    let profile = volunteer_profiles::Entity::find_by_id(v.id.clone())
        .one(c)
        .await?;
    let profile = match (roles.contains(&Role::Volunteer), profile) {
        (true, Some(p)) => p,
        _ => return Err(CoreError::new(Code::NotAVolunteer)),
    };
    if profile.vetting != Vetting::Verified.as_str() {
        return Err(CoreError::new(Code::VolunteerNotVerified));
    }
    if v.home_community_id == o.community_id {
        return Ok(());
    }
    if o.escalated {
        let a = get_place(c, &v.home_community_id).await?;
        let b = get_place(c, &o.community_id).await?;
        if a.parent_id.is_some() && a.parent_id == b.parent_id {
            return Ok(());
        }
    }
    Err(CoreError::new(Code::OutOfScope).with("community", &o.community_id))
}

/// Accept (volunteer) or assign (staff, `assignee` given).
pub async fn accept<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
    assignee: Option<&String>,
) -> Result<(Outcome, Audit)> {
    let o = get_order(c, order_id).await?;
    let volunteer = match assignee {
        Some(v) => {
            a.require_staff_for(&o.community_id, "assign volunteers")?;
            get_member(c, v).await?
        }
        None => a.member.clone(),
    };
    check_volunteer_for(c, &volunteer, &o).await?;
    if volunteer.id == o.beneficiary_id {
        return Err(CoreError::invalid(
            "volunteer",
            "不能为自己的订单服务",
            "cannot serve one's own order",
        ));
    }
    let existing = order_volunteers::Entity::find()
        .filter(order_volunteers::Column::OrderId.eq(order_id))
        .filter(order_volunteers::Column::VolunteerId.eq(volunteer.id.as_str()))
        .one(c)
        .await?;
    if existing.as_ref().is_some_and(|e| e.status == "accepted") {
        return Err(CoreError::new(Code::AlreadyAccepted));
    }
    let to = match next(&o, OrderEvent::Accept) {
        Ok(to) => to,
        // Taken and already being served (two devices accepted it offline): say by whom.
        Err(e)
            if o.accepted_count > 0 && !["cancelled", "expired"].contains(&o.status.as_str()) =>
        {
            let names = accepted_names(c, order_id).await?;
            return Err(CoreError::new(Code::OrderFull)
                .with("taken_by", names)
                .with(
                    "status",
                    e.detail.get("status").cloned().unwrap_or_default(),
                ));
        }
        Err(e) => return Err(e),
    };
    // Claim a place atomically: the first acceptance that commits wins.
    let claimed = orders::Entity::update_many()
        .col_expr(
            orders::Column::AcceptedCount,
            Expr::col(orders::Column::AcceptedCount).add(1),
        )
        .col_expr(orders::Column::Status, Expr::value(to.as_str()))
        .col_expr(orders::Column::UpdatedAt, Expr::value(ctx.now_ms))
        .col_expr(
            orders::Column::FirstAcceptedAt,
            Expr::value(o.first_accepted_at.unwrap_or(ctx.now_ms)),
        )
        .filter(orders::Column::Id.eq(order_id))
        .filter(orders::Column::Status.eq(o.status.as_str()))
        .filter(
            Expr::col(orders::Column::AcceptedCount)
                .lt(Expr::col(orders::Column::VolunteersNeeded)),
        )
        .exec(c)
        .await?;
    if claimed.rows_affected != 1 {
        let names = accepted_names(c, order_id).await?;
        return Err(CoreError::new(Code::OrderFull).with("taken_by", names));
    }
    match existing {
        Some(e) => {
            let mut am = e.into_active_model();
            am.status = Set("accepted".into());
            am.accepted_at = Set(ctx.now_ms);
            am.released_at = Set(None);
            am.assigned_by = Set(assignee.map(|_| a.id().to_owned()));
            am.update(c).await?;
        }
        None => {
            order_volunteers::Entity::insert(
                order_volunteers::Model {
                    id: format!("{order_id}:{}", volunteer.id),
                    order_id: order_id.into(),
                    volunteer_id: volunteer.id.clone(),
                    status: "accepted".into(),
                    assigned_by: assignee.map(|_| a.id().to_owned()),
                    accepted_at: ctx.now_ms,
                    released_at: None,
                }
                .into_active_model(),
            )
            .exec_without_returning(c)
            .await?;
        }
    }
    let params = json!({"order_id": order_id, "volunteer": volunteer.name});
    notify(c, ctx, &o.beneficiary_id, "order_accepted", params.clone()).await?;
    if o.posted_by != o.beneficiary_id {
        notify(c, ctx, &o.posted_by, "order_accepted", params.clone()).await?;
    }
    if assignee.is_some() {
        notify(c, ctx, &volunteer.id, "order_assigned", params).await?;
    }
    Ok((
        Outcome::id(order_id),
        Audit::of("order", order_id)
            .behalf(assignee.cloned())
            .detail(json!({"volunteer": volunteer.id, "status": to})),
    ))
}

/// The open contested completion of `volunteer` on an order, if any.
async fn open_contest<C: ConnectionTrait>(
    c: &C,
    order_id: &str,
    volunteer: &str,
) -> Result<Option<ledger_flags::Model>> {
    Ok(ledger_flags::Entity::find()
        .filter(ledger_flags::Column::OrderId.eq(order_id))
        .filter(ledger_flags::Column::MemberId.eq(volunteer))
        .filter(ledger_flags::Column::Kind.eq("contested_completion"))
        .filter(ledger_flags::Column::Status.eq("open"))
        .one(c)
        .await?)
}

async fn accepted_names<C: ConnectionTrait>(c: &C, order_id: &str) -> Result<String> {
    let rows = crate::sql::all(
        c,
        "SELECT m.name FROM order_volunteers v JOIN members m ON m.id = v.volunteer_id WHERE v.order_id = ? AND v.status = 'accepted' ORDER BY v.accepted_at",
        vec![order_id.into()],
    )
    .await?;
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "name").ok())
        .collect();
    Ok(if names.is_empty() {
        "其他志愿者".into()
    } else {
        names.join("、")
    })
}

async fn my_acceptance<C: ConnectionTrait>(
    c: &C,
    order_id: &str,
    volunteer: &str,
) -> Result<order_volunteers::Model> {
    order_volunteers::Entity::find()
        .filter(order_volunteers::Column::OrderId.eq(order_id))
        .filter(order_volunteers::Column::VolunteerId.eq(volunteer))
        .filter(order_volunteers::Column::Status.eq("accepted"))
        .one(c)
        .await?
        .ok_or_else(|| CoreError::new(Code::NotAccepted))
}

pub async fn release<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
) -> Result<(Outcome, Audit)> {
    let o = get_order(c, order_id).await?;
    let mine = my_acceptance(c, order_id, a.id()).await?;
    let remaining = Ord::max(o.accepted_count - 1, 0) as u32;
    let to = next(&o, OrderEvent::Release { remaining })?;
    let mut am = mine.into_active_model();
    am.status = Set("released".into());
    am.released_at = Set(Some(ctx.now_ms));
    am.update(c).await?;
    orders::Entity::update_many()
        .col_expr(orders::Column::AcceptedCount, Expr::value(remaining as i32))
        .col_expr(orders::Column::Status, Expr::value(to.as_str()))
        .col_expr(orders::Column::UpdatedAt, Expr::value(ctx.now_ms))
        .filter(orders::Column::Id.eq(order_id))
        .exec(c)
        .await?;
    notify(
        c,
        ctx,
        &o.beneficiary_id,
        "order_released",
        json!({"order_id": order_id, "volunteer": a.member.name}),
    )
    .await?;
    Ok((
        Outcome::id(order_id),
        Audit::of("order", order_id).detail(json!({"status": to})),
    ))
}

/// The visit being served now: the first one not completed or cancelled.
async fn current_visit<C: ConnectionTrait>(c: &C, order_id: &str) -> Result<order_visits::Model> {
    order_visits::Entity::find()
        .filter(order_visits::Column::OrderId.eq(order_id))
        .filter(order_visits::Column::Status.is_not_in(["completed", "cancelled"]))
        .order_by_asc(order_visits::Column::VisitNo)
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("open visit of order", order_id))
}

async fn set_visit<C: ConnectionTrait>(
    c: &C,
    v: &order_visits::Model,
    status: &str,
    completed_at: Option<i64>,
) -> Result<()> {
    let mut am = v.clone().into_active_model();
    am.status = Set(status.into());
    am.completed_at = Set(completed_at);
    am.update(c).await?;
    Ok(())
}

pub async fn check_in<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
    visit_id: Option<&str>,
) -> Result<(Outcome, Audit)> {
    let o = get_order(c, order_id).await?;
    my_acceptance(c, order_id, a.id()).await?;
    let to = next(&o, OrderEvent::CheckIn)?;
    same_visit(c, ctx, order_id, visit_id).await?;
    let v = current_visit(c, order_id).await?;
    let att_id = format!("{}:{}", v.id, a.id());
    if visit_attendance::Entity::find_by_id(att_id.clone())
        .one(c)
        .await?
        .is_some()
    {
        return Err(CoreError::new(Code::AlreadyCheckedIn));
    }
    visit_attendance::Entity::insert(
        visit_attendance::Model {
            id: att_id,
            visit_id: v.id.clone(),
            order_id: order_id.into(),
            volunteer_id: a.id().into(),
            status: "in_service".into(),
            checked_in_at: ctx.now_ms,
            checked_out_at: None,
            minutes: None,
            confirmed_by: None,
            confirm_method: None,
            confirmed_at: None,
            note: None,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await?;
    set_visit(c, &v, "in_service", None).await?;
    set_status(c, ctx, &o, to).await?;
    let params = json!({"order_id": order_id, "volunteer": a.member.name, "visit": v.visit_no});
    notify(
        c,
        ctx,
        &o.beneficiary_id,
        "volunteer_arrived",
        params.clone(),
    )
    .await?;
    if o.posted_by != o.beneficiary_id {
        notify(c, ctx, &o.posted_by, "volunteer_arrived", params).await?;
    }
    Ok((
        Outcome::id(order_id),
        Audit::of("order", order_id).detail(json!({"visit": v.visit_no})),
    ))
}

/// On the device: a check-out carrying the visit and the check-in time it ends (see
/// `Command::CheckOut::served`). None when the volunteer is not checked in here.
pub async fn with_served<C: ConnectionTrait>(
    c: &C,
    actor_id: &str,
    cmd: &super::Command,
) -> Result<Option<super::Command>> {
    let super::Command::CheckOut {
        order_id,
        note,
        served: None,
    } = cmd
    else {
        return Ok(None);
    };
    let Ok(v) = current_visit(c, order_id).await else {
        return Ok(None);
    };
    let att = visit_attendance::Entity::find_by_id(format!("{}:{actor_id}", v.id))
        .one(c)
        .await?
        .filter(|x| x.status == "in_service");
    Ok(att.map(|x| super::Command::CheckOut {
        order_id: order_id.clone(),
        note: note.clone(),
        served: Some(Served {
            visit_id: v.id,
            checked_in_at: x.checked_in_at,
        }),
    }))
}

pub async fn check_out<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
    note: Option<&str>,
    served: Option<&Served>,
) -> Result<(Outcome, Audit)> {
    let o = get_order(c, order_id).await?;
    // On the city server, help served offline that the server's record cannot end as a
    // check-out is kept for staff: the volunteer's acceptance lost to another device's, or it
    // held but the order moved on without them meanwhile (another volunteer of the order
    // finished the visit and it was confirmed, or the order was cancelled, so their check-in
    // was refused). Help that happened is never refused.
    if let (true, Some(s)) = (ctx.replay, served) {
        let lost = my_acceptance(c, order_id, a.id()).await.is_err();
        let checked_in = visit_attendance::Entity::find_by_id(format!("{}:{}", s.visit_id, a.id()))
            .one(c)
            .await?
            .is_some();
        if lost || !checked_in {
            return contested_completion(c, ctx, a, &o, s, note, lost).await;
        }
    }
    let v = current_visit(c, order_id).await?;
    let att = visit_attendance::Entity::find_by_id(format!("{}:{}", v.id, a.id()))
        .one(c)
        .await?
        .filter(|x| x.status == "in_service")
        .ok_or_else(|| CoreError::new(Code::NotCheckedIn))?;
    let still_in = visit_attendance::Entity::find()
        .filter(visit_attendance::Column::VisitId.eq(v.id.as_str()))
        .filter(visit_attendance::Column::Status.eq("in_service"))
        .all(c)
        .await?
        .len();
    let to = next(
        &o,
        OrderEvent::CheckOut {
            all_out: still_in <= 1,
        },
    )?;
    let minutes = served_minutes(
        ctx,
        served.filter(|s| s.visit_id == v.id),
        att.checked_in_at,
    );
    let mut am = att.into_active_model();
    am.status = Set("awaiting_confirmation".into());
    am.checked_out_at = Set(Some(ctx.now_ms));
    am.minutes = Set(Some(minutes));
    am.note = Set(note.map(str::to_owned));
    am.update(c).await?;
    if to == OrderStatus::AwaitingConfirmation {
        set_visit(c, &v, "awaiting_confirmation", None).await?;
        for who in [&o.beneficiary_id, &o.posted_by] {
            notify(
                c,
                ctx,
                who,
                "visit_complete",
                json!({"order_id": order_id, "volunteer": a.member.name, "minutes": minutes}),
            )
            .await?;
            if o.posted_by == o.beneficiary_id {
                break;
            }
        }
    }
    set_status(c, ctx, &o, to).await?;
    Ok((
        Outcome {
            id: order_id.into(),
            detail: json!({"minutes": minutes}),
        },
        Audit::of("order", order_id).detail(json!({"minutes": minutes, "visit": v.visit_no})),
    ))
}

/// Whole minutes served, from check-in to now. On the city server, when the device sent both
/// ends on its own clock (the check-in time it saw, the check-out's time), their difference:
/// a device clock days ahead is clamped to the server's, which would otherwise shrink the
/// service to nothing.
fn served_minutes(ctx: &Ctx, served: Option<&Served>, checked_in_at: i64) -> i64 {
    let (start, end) = match (ctx.replay, served, ctx.device_at) {
        (true, Some(s), Some(at)) => (s.checked_in_at, at),
        _ => (checked_in_at, ctx.now_ms),
    };
    Ord::max((end - start) / 60_000, 0)
}

/// The city server replays the check-out of a volunteer whose acceptance lost to another
/// device's while both were offline (`lost`), or whose check-in the order no longer took (it
/// moved on without them meanwhile): the help happened, so it is not refused but held as a
/// `contested_completion` flag for the community's staff. Approving it credits the minutes
/// once (the flag's id derives from the mutation id, its credit is keyed by the flag); the
/// order itself is not touched.
async fn contested_completion<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    o: &orders::Model,
    s: &Served,
    note: Option<&str>,
    lost: bool,
) -> Result<(Outcome, Audit)> {
    let visit = order_visits::Entity::find_by_id(s.visit_id.clone())
        .one(c)
        .await?
        .filter(|v| v.order_id == o.id)
        .ok_or_else(|| CoreError::not_found("visit of order", &s.visit_id))?;
    if visit_attendance::Entity::find_by_id(format!("{}:{}", visit.id, a.id()))
        .one(c)
        .await?
        .is_some()
    {
        return Err(CoreError::new(Code::NotCheckedIn));
    }
    let (_, rules) = super::rules_in(c, ctx).await?;
    let checked_in_at = Ord::min(s.checked_in_at, ctx.now_ms);
    let minutes = rules.round(served_minutes(ctx, Some(s), checked_in_at));
    let taken_by = accepted_names(c, &o.id).await?;
    if minutes > 0 {
        super::ledger::flag(
            c,
            ctx,
            "contested_completion",
            a.id(),
            &super::ledger::CreditFor {
                volunteer_id: a.id(),
                beneficiary_id: Some(&o.beneficiary_id),
                order_id: Some(&o.id),
                visit_id: Some(&visit.id),
                activity_id: None,
                credit_key: format!("contest:{}", ctx.mutation_id),
                memo: String::new(),
            },
            minutes,
            json!({"checked_in_at": checked_in_at, "checked_out_at": ctx.now_ms, "note": note, "taken_by": taken_by}),
        )
        .await?;
    }
    // The volunteer is told why: another took the order, or it moved on without them.
    let kind = if lost {
        "completion_contested"
    } else {
        "completion_review"
    };
    notify(
        c,
        ctx,
        a.id(),
        kind,
        json!({"order_id": o.id, "minutes": minutes, "taken_by": taken_by}),
    )
    .await?;
    Ok((
        Outcome {
            id: o.id.clone(),
            detail: json!({"contested": true, "minutes": minutes}),
        },
        Audit::of("order", &o.id)
            .detail(json!({"contested": true, "minutes": minutes, "visit": visit.visit_no})),
    ))
}

/// On the device: the confirmation with the volunteers whose service it confirms (those
/// waiting for confirmation on the order's current visit, as the device has it).
pub async fn with_confirmed<C: ConnectionTrait>(
    c: &C,
    cmd: &super::Command,
) -> Result<Option<super::Command>> {
    let super::Command::ConfirmVisit {
        order_id,
        method,
        pin,
        confirms: None,
        visit_id: None,
    } = cmd
    else {
        return Ok(None);
    };
    let Ok(v) = current_visit(c, order_id).await else {
        return Ok(None);
    };
    Ok(Some(super::Command::ConfirmVisit {
        order_id: order_id.clone(),
        method: *method,
        pin: pin.clone(),
        confirms: Some(waiting_volunteers(c, &v.id).await?),
        visit_id: Some(v.id),
    }))
}

/// On the device: a check-in, a dispute or a dispute's resolution with the visit it is about
/// (the order's current visit, as the device has it; see [`same_visit`]).
pub async fn with_visit<C: ConnectionTrait>(
    c: &C,
    cmd: &super::Command,
) -> Result<Option<super::Command>> {
    use super::Command as K;
    let order_id = match cmd {
        K::CheckIn {
            order_id,
            visit_id: None,
        }
        | K::DisputeVisit {
            order_id,
            visit_id: None,
            ..
        }
        | K::ResolveDispute {
            order_id,
            visit_id: None,
            ..
        } => order_id,
        _ => return Ok(None),
    };
    let Ok(v) = current_visit(c, order_id).await else {
        return Ok(None);
    };
    let mut cmd = cmd.clone();
    if let K::CheckIn { visit_id, .. }
    | K::DisputeVisit { visit_id, .. }
    | K::ResolveDispute { visit_id, .. } = &mut cmd
    {
        *visit_id = Some(v.id);
    }
    Ok(Some(cmd))
}

/// On the city server: a check-in, a confirmation, a dispute or a resolution made on a device for visit
/// `visit_id` of the order (filled on the device, see [`with_confirmed`] and [`with_visit`]) is
/// refused when that visit is no longer the order's current one here: it was confirmed,
/// disputed or resolved elsewhere meanwhile (a recurring order has moved on to its next
/// visit). Applied to the current visit, it would confirm, dispute or resolve a visit nobody
/// saw (a resolution without credit could take a later visit's whole service). A device of an
/// earlier version names no visit, and its commands go to the current visit as before.
pub async fn same_visit<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    order_id: &str,
    visit_id: Option<&str>,
) -> Result<()> {
    let Some(visit_id) = visit_id.filter(|_| ctx.replay) else {
        return Ok(());
    };
    let here = current_visit(c, order_id).await.ok().map(|v| v.id);
    if here.as_deref() == Some(visit_id) {
        return Ok(());
    }
    Err(CoreError::invalid(
        "visit",
        "这次上门已在别处确认或处理，此操作没有生效，请查看订单的最新状态",
        "this visit was confirmed or dealt with elsewhere meanwhile; this was not applied: check the order's current state",
    )
    .with("visit_id", visit_id))
}

/// The volunteers whose service on visit `visit_id` waits for confirmation (or is disputed).
async fn waiting_volunteers<C: ConnectionTrait>(c: &C, visit_id: &str) -> Result<Vec<String>> {
    let mut v: Vec<String> = visit_attendance::Entity::find()
        .filter(visit_attendance::Column::VisitId.eq(visit_id))
        .filter(visit_attendance::Column::Status.is_in(["awaiting_confirmation", "disputed"]))
        .all(c)
        .await?
        .into_iter()
        .map(|x| x.volunteer_id)
        .collect();
    v.sort();
    Ok(v)
}

/// On the city server: a confirmation made on a device whose volunteers' acceptance lost to
/// another device's. When none of the volunteers it confirmed waits on the visit here, it goes
/// with their help held for staff (noted on each open contested completion, for staff to see
/// when they decide), never on the other volunteer's visit; with no such help either, it is
/// refused (`told`: the device said whose service it confirmed; an earlier version's did not).
/// None: the confirmation is for the visit here, as usual.
async fn confirm_held<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    o: &orders::Model,
    method: ConfirmMethod,
    confirmed: &[String],
    told: bool,
) -> Result<Option<(Outcome, Audit)>> {
    let here = match current_visit(c, &o.id).await {
        Ok(v) => waiting_volunteers(c, &v.id).await?,
        Err(_) => vec![],
    };
    if confirmed.iter().any(|v| here.contains(v)) {
        return Ok(None);
    }
    let mut held = Vec::new();
    for v in confirmed {
        let Some(f) = open_contest(c, &o.id, v).await? else {
            continue;
        };
        let mut detail: serde_json::Value =
            serde_json::from_str(&f.detail).unwrap_or_else(|_| json!({}));
        match method {
            ConfirmMethod::Pin | ConfirmMethod::App => {
                detail["info"]["resident_confirmed_at"] = json!(ctx.now_ms);
            }
            _ => {
                detail["info"]["staff_confirmed_at"] = json!(ctx.now_ms);
                detail["info"]["staff_confirmed_by"] = json!(a.id());
            }
        }
        held.push(f.id.clone());
        let mut am = f.into_active_model();
        am.detail = Set(detail.to_string());
        am.update(c).await?;
    }
    if held.is_empty() {
        if !told {
            return Ok(None); // an earlier version's PIN confirmation, no help held: as usual
        }
        return Err(CoreError::invalid(
            "confirms",
            "确认的服务不是这里等待确认的那一次，请工作人员核对",
            "the service confirmed on the device is not the one waiting for confirmation here; staff should check it",
        ));
    }
    Ok(Some((
        Outcome {
            id: o.id.clone(),
            detail: json!({"contested": true, "flags": held}),
        },
        Audit::of("order", &o.id)
            .detail(json!({"method": method, "contested": true, "flags": held})),
    )))
}

/// Who may confirm: the beneficiary or a proxy in the app, anyone holding the beneficiary's
/// PIN (the volunteer's device handed over), staff, or the clock (auto).
/// Confirm the service of the order's current visit. On the city server, a confirmation made
/// on a device for a visit that is no longer the current one here is refused ([`same_visit`]),
/// unless it goes with help held for staff ([`confirm_held`]).
#[allow(clippy::too_many_arguments)]
pub async fn confirm<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
    method: ConfirmMethod,
    pin: Option<&str>,
    confirms: Option<&[String]>,
    visit_id: Option<&str>,
) -> Result<(Outcome, Audit)> {
    let o = get_order(c, order_id).await?;
    let b = get_member(c, &o.beneficiary_id).await?;
    // A device of an earlier version does not say whose service it confirmed: a PIN entered
    // on the device of a volunteer whose help is held goes with that help.
    let confirms_held = match confirms {
        Some(v) => v.to_vec(),
        None if ctx.replay && method == ConfirmMethod::Pin => vec![a.id().to_owned()],
        None => vec![],
    };
    match method {
        ConfirmMethod::Pin => {
            let hash = b
                .pin_hash
                .clone()
                .ok_or_else(|| CoreError::new(Code::PinNotSet))?;
            match pin {
                Some(p) if verify_pin(p, &hash) => {}
                None if ctx.replay => {}
                _ => return Err(CoreError::new(Code::PinIncorrect)),
            }
        }
        ConfirmMethod::App => {
            if a.id() != b.id
                && super::members::relation_between(c, &b.id, a.id())
                    .await?
                    .is_none()
            {
                return Err(CoreError::forbidden("confirm a visit for this resident"));
            }
        }
        ConfirmMethod::Staff | ConfirmMethod::Auto | ConfirmMethod::Resolution => {
            a.require_staff_for(&o.community_id, "confirm visits as staff")?;
        }
    }
    if ctx.replay && !confirms_held.is_empty() {
        if let Some(done) =
            confirm_held(c, ctx, a, &o, method, &confirms_held, confirms.is_some()).await?
        {
            return Ok(done);
        }
    }
    same_visit(c, ctx, order_id, visit_id).await?;
    let credited = finish_visit(
        c,
        ctx,
        a,
        &o,
        method,
        true,
        None,
        OrderEvent::Confirm {
            last_visit: o.visits_done + 1 >= o.visits_total,
        },
    )
    .await?;
    let behalf = (method == ConfirmMethod::Pin || method == ConfirmMethod::App)
        .then(|| b.id.clone())
        .filter(|id| id != a.id());
    Ok((
        Outcome {
            id: order_id.into(),
            detail: json!({"credited": credited}),
        },
        Audit::of("order", order_id)
            .behalf(behalf)
            .detail(json!({"method": method, "credited": credited})),
    ))
}

/// Close the current visit: mark attendances, credit each volunteer (if `credit`), move the
/// order. Returns the minutes credited per volunteer.
#[allow(clippy::too_many_arguments)]
async fn finish_visit<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    o: &orders::Model,
    method: ConfirmMethod,
    credit: bool,
    minutes_override: Option<i64>,
    event: OrderEvent,
) -> Result<Vec<serde_json::Value>> {
    let to = next(o, event)?;
    let v = current_visit(c, &o.id).await?;
    let atts = visit_attendance::Entity::find()
        .filter(visit_attendance::Column::VisitId.eq(v.id.as_str()))
        .filter(visit_attendance::Column::Status.is_in(["awaiting_confirmation", "disputed"]))
        .all(c)
        .await?;
    let mut out = Vec::new();
    for att in atts {
        let served = minutes_override.unwrap_or(att.minutes.unwrap_or(0));
        let mut am = att.clone().into_active_model();
        am.status = Set(if credit { "confirmed" } else { "rejected" }.into());
        am.confirmed_by = Set(Some(a.id().to_owned()));
        am.confirm_method = Set(Some(method.as_str().into()));
        am.confirmed_at = Set(Some(ctx.now_ms));
        am.update(c).await?;
        if credit {
            let (credited, held) = super::ledger::credit_service(
                c,
                ctx,
                served,
                super::ledger::CreditFor {
                    volunteer_id: &att.volunteer_id,
                    beneficiary_id: Some(&o.beneficiary_id),
                    order_id: Some(&o.id),
                    visit_id: Some(&v.id),
                    activity_id: None,
                    credit_key: format!("svc:{}:{}", v.id, att.volunteer_id),
                    memo: format!("服务时间 / service, order {} visit {}", o.id, v.visit_no),
                },
            )
            .await?;
            out.push(json!({"volunteer": att.volunteer_id, "credited": credited, "held": held}));
        }
    }
    set_visit(c, &v, "completed", Some(ctx.now_ms)).await?;
    orders::Entity::update_many()
        .col_expr(
            orders::Column::VisitsDone,
            Expr::col(orders::Column::VisitsDone).add(1),
        )
        .col_expr(orders::Column::Status, Expr::value(to.as_str()))
        .col_expr(orders::Column::UpdatedAt, Expr::value(ctx.now_ms))
        .filter(orders::Column::Id.eq(o.id.as_str()))
        .exec(c)
        .await?;
    if to == OrderStatus::Completed {
        notify(
            c,
            ctx,
            &o.beneficiary_id,
            "order_completed",
            json!({"order_id": o.id}),
        )
        .await?;
    }
    Ok(out)
}

pub async fn dispute<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
    reason: &str,
) -> Result<(Outcome, Audit)> {
    let reason = super::nonempty("reason", reason, 1000)?;
    let o = get_order(c, order_id).await?;
    let b = get_member(c, &o.beneficiary_id).await?;
    if !may_act_for(c, a, &b).await? {
        return Err(CoreError::forbidden("dispute this visit"));
    }
    let to = next(&o, OrderEvent::Dispute)?;
    let v = current_visit(c, order_id).await?;
    visit_attendance::Entity::update_many()
        .col_expr(visit_attendance::Column::Status, Expr::value("disputed"))
        .filter(visit_attendance::Column::VisitId.eq(v.id.as_str()))
        .filter(visit_attendance::Column::Status.eq("awaiting_confirmation"))
        .exec(c)
        .await?;
    set_visit(c, &v, "disputed", None).await?;
    set_status(c, ctx, &o, to).await?;
    for s in super::staff_of(c, &o.community_id).await? {
        notify(
            c,
            ctx,
            &s,
            "dispute_filed",
            json!({"order_id": order_id, "reason": reason}),
        )
        .await?;
    }
    let behalf = (b.id != a.id()).then(|| b.id.clone());
    Ok((
        Outcome::id(order_id),
        Audit::of("order", order_id)
            .behalf(behalf)
            .detail(json!({"reason": reason})),
    ))
}

pub async fn resolve<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
    credit: bool,
    minutes: Option<i64>,
    note: &str,
) -> Result<(Outcome, Audit)> {
    let note = super::nonempty("note", note, 1000)?;
    let o = get_order(c, order_id).await?;
    a.require_staff_for(&o.community_id, "resolve disputes")?;
    if minutes.is_some_and(|m| !(0..=24 * 60).contains(&m)) {
        return Err(CoreError::invalid(
            "minutes",
            "时长须在0到24小时之间",
            "must be 0 to 24 hours",
        ));
    }
    if let Some(m) = minutes {
        super::ledger::whole_units(c, ctx, "minutes", m).await?;
    }
    let credited = finish_visit(
        c,
        ctx,
        a,
        &o,
        ConfirmMethod::Resolution,
        credit,
        minutes,
        OrderEvent::Resolve {
            last_visit: o.visits_done + 1 >= o.visits_total,
        },
    )
    .await?;
    Ok((
        Outcome {
            id: order_id.into(),
            detail: json!({"credited": credited}),
        },
        Audit::of("order", order_id)
            .detail(json!({"credit": credit, "minutes": minutes, "note": note})),
    ))
}

pub async fn cancel<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    order_id: &str,
    reason: &str,
) -> Result<(Outcome, Audit)> {
    let reason = super::nonempty("reason", reason, 500)?;
    let o = get_order(c, order_id).await?;
    let b = get_member(c, &o.beneficiary_id).await?;
    if !may_act_for(c, a, &b).await? {
        return Err(CoreError::forbidden("cancel this order"));
    }
    let to = next(&o, OrderEvent::Cancel)?;
    orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(to.as_str()))
        .col_expr(orders::Column::CancelReason, Expr::value(reason.clone()))
        .col_expr(orders::Column::UpdatedAt, Expr::value(ctx.now_ms))
        .filter(orders::Column::Id.eq(order_id))
        .exec(c)
        .await?;
    order_visits::Entity::update_many()
        .col_expr(order_visits::Column::Status, Expr::value("cancelled"))
        .filter(order_visits::Column::OrderId.eq(order_id))
        .filter(order_visits::Column::Status.eq("scheduled"))
        .exec(c)
        .await?;
    for v in order_volunteers::Entity::find()
        .filter(order_volunteers::Column::OrderId.eq(order_id))
        .filter(order_volunteers::Column::Status.eq("accepted"))
        .all(c)
        .await?
    {
        notify(
            c,
            ctx,
            &v.volunteer_id,
            "order_cancelled",
            json!({"order_id": order_id, "reason": reason}),
        )
        .await?;
    }
    let behalf = (b.id != a.id()).then(|| b.id.clone());
    Ok((
        Outcome::id(order_id),
        Audit::of("order", order_id)
            .behalf(behalf)
            .detail(json!({"reason": reason})),
    ))
}

/// The clock-driven rules, run by staff devices (and the city server) periodically:
/// auto-confirm visits waiting longer than the programme allows, expire open orders whose
/// window has passed, widen and escalate urgent orders nobody took in time.
pub async fn tick<C: ConnectionTrait>(c: &C, ctx: &Ctx, a: &Actor) -> Result<(Outcome, Audit)> {
    if !(a.is_admin() || a.has(Role::Staff)) {
        return Err(CoreError::forbidden("run the scheduled rules"));
    }
    let (_, rules) = super::rules_in(c, ctx).await?;
    let in_scope = |community: &str| a.is_staff_for(community);
    // Auto-confirm.
    let waiting = orders::Entity::find()
        .filter(orders::Column::Status.eq(OrderStatus::AwaitingConfirmation.as_str()))
        .all(c)
        .await?;
    let mut confirmed = 0;
    let cutoff = ctx.now_ms - i64::from(rules.auto_confirm_minutes) * 60_000;
    for o in waiting.into_iter().filter(|o| in_scope(&o.community_id)) {
        let v = current_visit(c, &o.id).await?;
        let last_out = visit_attendance::Entity::find()
            .filter(visit_attendance::Column::VisitId.eq(v.id.as_str()))
            .all(c)
            .await?
            .iter()
            .filter_map(|x| x.checked_out_at)
            .max()
            .unwrap_or(o.updated_at);
        if last_out <= cutoff {
            finish_visit(
                c,
                ctx,
                a,
                &o,
                ConfirmMethod::Auto,
                true,
                None,
                OrderEvent::Confirm {
                    last_visit: o.visits_done + 1 >= o.visits_total,
                },
            )
            .await?;
            confirmed += 1;
        }
    }
    // Expire.
    let stale = orders::Entity::find()
        .filter(orders::Column::Status.eq(OrderStatus::Open.as_str()))
        .filter(orders::Column::WindowEnd.lt(ctx.now_ms))
        .all(c)
        .await?;
    let mut expired = 0;
    for o in stale.into_iter().filter(|o| in_scope(&o.community_id)) {
        let to = next(&o, OrderEvent::Expire)?;
        set_status(c, ctx, &o, to).await?;
        notify(
            c,
            ctx,
            &o.posted_by,
            "order_expired",
            json!({"order_id": o.id}),
        )
        .await?;
        expired += 1;
    }
    // Escalate urgent orders.
    let late = ctx.now_ms - i64::from(rules.urgent_escalation_minutes) * 60_000;
    let urgent = orders::Entity::find()
        .filter(orders::Column::Status.eq(OrderStatus::Open.as_str()))
        .filter(orders::Column::Urgent.eq(true))
        .filter(orders::Column::Escalated.eq(false))
        .filter(orders::Column::CreatedAt.lte(late))
        .all(c)
        .await?;
    let mut escalated = 0;
    for o in urgent.into_iter().filter(|o| in_scope(&o.community_id)) {
        orders::Entity::update_many()
            .col_expr(orders::Column::Escalated, Expr::value(true))
            .col_expr(orders::Column::UpdatedAt, Expr::value(ctx.now_ms))
            .filter(orders::Column::Id.eq(o.id.as_str()))
            .exec(c)
            .await?;
        for s in super::staff_of(c, &o.community_id).await? {
            notify(c, ctx, &s, "urgent_escalated", json!({"order_id": o.id})).await?;
        }
        // Widen to the verified volunteers of the neighbouring communities.
        let place = super::get_place_in(c, ctx, &o.community_id).await?;
        let rows = crate::sql::all(
            c,
            "SELECT m.id FROM members m JOIN places p ON p.id = m.home_community_id JOIN volunteer_profiles v ON v.member_id = m.id \
             WHERE p.parent_id = ? AND m.home_community_id <> ? AND v.vetting = ? AND m.active = ?",
            vec![place.parent_id.clone().unwrap_or_default().into(), o.community_id.clone().into(), Vetting::Verified.as_str().into(), true.into()],
        )
        .await?;
        for r in rows {
            let id: String = r.try_get("", "id")?;
            notify(
                c,
                ctx,
                &id,
                "urgent_order",
                json!({"order_id": o.id, "place_hint": o.place_hint, "widened": true}),
            )
            .await?;
        }
        escalated += 1;
    }
    let d = json!({"auto_confirmed": confirmed, "expired": expired, "escalated": escalated});
    Ok((
        Outcome {
            id: "tick".into(),
            detail: d.clone(),
        },
        Audit::of("scheduler", "tick").detail(d),
    ))
}
