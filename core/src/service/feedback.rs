//! Feedback after a service, staff responses, and safeguarding reports (staff only).
use super::members::may_act_for;
use super::{get_member, notify, Actor, Audit, Ctx, FileSafeguarding, Outcome};
use crate::domain::OrderStatus;
use crate::entities::{feedback, orders, safeguarding_reports, visit_attendance};
use crate::error::{Code, CoreError, Result};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use serde_json::json;

pub async fn rate<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    id: &str,
    order_id: &str,
    rating: i32,
    comment: &str,
) -> Result<(Outcome, Audit)> {
    if !(1..=5).contains(&rating) {
        return Err(CoreError::invalid(
            "rating",
            "评分须为1到5颗星",
            "must be 1 to 5 stars",
        ));
    }
    let o = super::orders::get_order(c, order_id).await?;
    let b = get_member(c, &o.beneficiary_id).await?;
    if !may_act_for(c, a, &b).await? {
        return Err(CoreError::forbidden("rate this service"));
    }
    if o.status != OrderStatus::Completed.as_str() && o.visits_done == 0 {
        return Err(CoreError::illegal(&o.status, "rate"));
    }
    let dup = feedback::Entity::find()
        .filter(feedback::Column::OrderId.eq(order_id))
        .filter(feedback::Column::AuthorRole.eq("beneficiary"))
        .one(c)
        .await?;
    if dup.is_some() {
        return Err(CoreError::new(Code::AlreadyRated));
    }
    let behalf = (b.id != a.id()).then(|| b.id.clone());
    feedback::Entity::insert(
        feedback::Model {
            id: id.into(),
            order_id: order_id.into(),
            author_id: a.id().into(),
            on_behalf_of: behalf.clone(),
            author_role: "beneficiary".into(),
            rating: Some(rating),
            comment: comment.trim().chars().take(2000).collect(),
            staff_response: None,
            responded_by: None,
            responded_at: None,
            created_at: ctx.now_ms,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await
    .map_err(|e| super::on_duplicate(e, "feedback", id))?;
    Ok((
        Outcome::id(id),
        Audit::of("feedback", id)
            .behalf(behalf)
            .detail(json!({"order": order_id, "rating": rating})),
    ))
}

pub async fn volunteer_note<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    id: &str,
    order_id: &str,
    comment: &str,
) -> Result<(Outcome, Audit)> {
    let comment = super::nonempty("comment", comment, 2000)?;
    let served = visit_attendance::Entity::find()
        .filter(visit_attendance::Column::OrderId.eq(order_id))
        .filter(visit_attendance::Column::VolunteerId.eq(a.id()))
        .one(c)
        .await?;
    if served.is_none() {
        return Err(CoreError::forbidden(
            "leave a note on an order you did not serve",
        ));
    }
    feedback::Entity::insert(
        feedback::Model {
            id: id.into(),
            order_id: order_id.into(),
            author_id: a.id().into(),
            on_behalf_of: None,
            author_role: "volunteer".into(),
            rating: None,
            comment,
            staff_response: None,
            responded_by: None,
            responded_at: None,
            created_at: ctx.now_ms,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await
    .map_err(|e| super::on_duplicate(e, "feedback", id))?;
    Ok((
        Outcome::id(id),
        Audit::of("feedback", id).detail(json!({"order": order_id})),
    ))
}

pub async fn respond<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    id: &str,
    response: &str,
) -> Result<(Outcome, Audit)> {
    let response = super::nonempty("response", response, 2000)?;
    let f = feedback::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("feedback", id))?;
    let o = orders::Entity::find_by_id(f.order_id.clone())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("order", &f.order_id))?;
    a.require_staff_for(&o.community_id, "respond to feedback")?;
    let author = f.author_id.clone();
    let mut am = f.into_active_model();
    am.staff_response = Set(Some(response));
    am.responded_by = Set(Some(a.id().into()));
    am.responded_at = Set(Some(ctx.now_ms));
    am.update(c).await?;
    notify(
        c,
        ctx,
        &author,
        "feedback_answered",
        json!({"feedback_id": id, "order_id": o.id}),
    )
    .await?;
    Ok((Outcome::id(id), Audit::of("feedback", id)))
}

pub const SAFEGUARDING_CATEGORIES: &[&str] =
    &["neglect", "abuse", "fraud", "health", "conduct", "other"];

pub async fn file_safeguarding<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    f: &FileSafeguarding,
) -> Result<(Outcome, Audit)> {
    if !SAFEGUARDING_CATEGORIES.contains(&f.category.as_str()) {
        return Err(CoreError::invalid(
            "category",
            "请选择一个类别",
            "choose one of neglect, abuse, fraud, health, conduct, other",
        ));
    }
    let details = super::nonempty("details", &f.details, 5000)?;
    let community = if let Some(s) = &f.subject_member_id {
        get_member(c, s).await?.home_community_id
    } else if let Some(o) = &f.order_id {
        super::orders::get_order(c, o).await?.community_id
    } else {
        a.member.home_community_id.clone()
    };
    safeguarding_reports::Entity::insert(
        safeguarding_reports::Model {
            id: f.report_id.clone(),
            reporter_id: a.id().into(),
            subject_member_id: f.subject_member_id.clone(),
            order_id: f.order_id.clone(),
            community_id: community.clone(),
            category: f.category.clone(),
            details,
            status: "open".into(),
            handled_by: None,
            resolution: None,
            created_at: ctx.now_ms,
            updated_at: ctx.now_ms,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await
    .map_err(|e| super::on_duplicate(e, "report", &f.report_id))?;
    for s in super::staff_of(c, &community).await? {
        notify(
            c,
            ctx,
            &s,
            "safeguarding_filed",
            json!({"report_id": f.report_id, "category": f.category}),
        )
        .await?;
    }
    // The audit trail of a report names no details: they are for staff only.
    Ok((
        Outcome::id(&f.report_id),
        Audit::of("safeguarding_report", &f.report_id),
    ))
}

pub async fn update_safeguarding<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    id: &str,
    status: &str,
    resolution: Option<&str>,
) -> Result<(Outcome, Audit)> {
    if !["open", "in_progress", "closed"].contains(&status) {
        return Err(CoreError::invalid(
            "status",
            "状态须为处理中或已结案",
            "must be open, in_progress or closed",
        ));
    }
    let r = safeguarding_reports::Entity::find_by_id(id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("report", id))?;
    a.require_staff_for(&r.community_id, "handle safeguarding reports")?;
    let mut am = r.into_active_model();
    am.status = Set(status.into());
    am.handled_by = Set(Some(a.id().into()));
    am.resolution = Set(resolution.map(str::to_owned));
    am.updated_at = Set(ctx.now_ms);
    am.update(c).await?;
    Ok((
        Outcome::id(id),
        Audit::of("safeguarding_report", id).detail(json!({"status": status})),
    ))
}
