//! Community activities organised by a center: capacity, sign-up, attendance and credit.
use super::{get_member, Actor, Audit, CreateActivity, Ctx, Outcome};
use crate::domain::Role;
use crate::entities::{activities, activity_signups};
use crate::error::{Code, CoreError, Result};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, Set,
};
use serde_json::json;

async fn get<C: ConnectionTrait>(c: &C, id: &str) -> Result<activities::Model> {
    activities::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("activity", id))
}

pub async fn create<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    x: &CreateActivity,
) -> Result<(Outcome, Audit)> {
    super::get_place_in(c, ctx, &x.community_id).await?;
    a.require_staff_for(&x.community_id, "organise activities")?;
    let title = super::nonempty("title", &x.title, 100)?;
    if !(1..=1000).contains(&x.capacity) {
        return Err(CoreError::invalid(
            "capacity",
            "名额须在1到1000之间",
            "must be 1 to 1000",
        ));
    }
    if !(0..=8 * 60).contains(&x.credit_minutes) {
        return Err(CoreError::invalid(
            "credit_minutes",
            "记入时间须在0到8小时之间",
            "must be 0 to 8 hours",
        ));
    }
    // Credits are rounded to the programme's unit: an amount between units would be credited
    // as another than the one staff set, silently.
    super::ledger::whole_units(c, ctx, "credit_minutes", x.credit_minutes).await?;
    activities::Entity::insert(
        activities::Model {
            id: x.activity_id.clone(),
            community_id: x.community_id.clone(),
            title,
            description: x.description.trim().to_owned(),
            field_code: x.field_code.clone(),
            starts_at: x.starts_at,
            credit_minutes: x.credit_minutes,
            capacity: x.capacity,
            status: "open".into(),
            created_by: a.id().into(),
            created_at: ctx.now_ms,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await
    .map_err(|e| super::on_duplicate(e, "activity", &x.activity_id))?;
    Ok((
        Outcome::id(&x.activity_id),
        Audit::of("activity", &x.activity_id).detail(json!({"capacity": x.capacity})),
    ))
}

pub async fn sign_up<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    activity_id: &str,
    member_id: &str,
) -> Result<(Outcome, Audit)> {
    let act = get(c, activity_id).await?;
    let m = get_member(c, member_id).await?;
    if m.id != a.id() {
        a.require_staff_for(&act.community_id, "sign up other members")?;
    }
    if act.status != "open" {
        return Err(CoreError::illegal(&act.status, "sign_up"));
    }
    if activity_signups::Entity::find_by_id((activity_id.to_owned(), member_id.to_owned()))
        .one(c)
        .await?
        .is_some()
    {
        return Err(CoreError::new(Code::AlreadySignedUp));
    }
    let taken = activity_signups::Entity::find()
        .filter(activity_signups::Column::ActivityId.eq(activity_id))
        .count(c)
        .await?;
    if taken >= act.capacity as u64 {
        return Err(CoreError::new(Code::ActivityFull).with("capacity", act.capacity));
    }
    activity_signups::Entity::insert(
        activity_signups::Model {
            activity_id: activity_id.into(),
            member_id: member_id.into(),
            signed_up_at: ctx.now_ms,
            attended: false,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await?;
    let behalf = (m.id != a.id()).then(|| m.id.clone());
    Ok((
        Outcome::id(activity_id),
        Audit::of("activity", activity_id)
            .behalf(behalf)
            .detail(json!({"member": member_id})),
    ))
}

/// Take attendance: each attending member who signed up is credited the activity's minutes
/// (once: the credit key is per activity and member). The activity is then closed.
pub async fn attend<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    activity_id: &str,
    member_ids: &[String],
) -> Result<(Outcome, Audit)> {
    let act = get(c, activity_id).await?;
    a.require_staff_for(&act.community_id, "take attendance")?;
    if act.status != "open" {
        return Err(CoreError::illegal(&act.status, "attendance"));
    }
    let mut credited = Vec::new();
    // A member named twice attends once: a credit held whole (at the balance or the day's
    // cap) posts no transfer for the credit key to stop a second one, and each flag would be
    // paid when approved.
    let mut seen = std::collections::HashSet::new();
    for mid in member_ids.iter().filter(|m| seen.insert(m.as_str())) {
        let s = activity_signups::Entity::find_by_id((activity_id.to_owned(), mid.clone()))
            .one(c)
            .await?
            .ok_or_else(|| CoreError::new(Code::NotSignedUp).with("member", mid))?;
        let m = get_member(c, mid).await?;
        let mut am = s.into_active_model();
        am.attended = Set(true);
        am.update(c).await?;
        let is_volunteer = super::members::roles_of(c, mid)
            .await?
            .contains(&Role::Volunteer);
        if is_volunteer && act.credit_minutes > 0 {
            let (cr, held) = super::ledger::credit_service(
                c,
                ctx,
                act.credit_minutes,
                super::ledger::CreditFor {
                    volunteer_id: mid,
                    beneficiary_id: None,
                    order_id: None,
                    visit_id: None,
                    activity_id: Some(activity_id),
                    credit_key: format!("act:{activity_id}:{mid}"),
                    memo: format!("社区活动 / activity: {}", act.title),
                },
            )
            .await?;
            credited.push(json!({"member": m.id, "credited": cr, "held": held}));
        }
    }
    let mut am = act.into_active_model();
    am.status = Set("closed".into());
    am.update(c).await?;
    Ok((
        Outcome {
            id: activity_id.into(),
            detail: json!({"credited": credited}),
        },
        Audit::of("activity", activity_id).detail(json!({"attended": member_ids})),
    ))
}
