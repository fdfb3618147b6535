//! Reads the desktop app's screens need besides those in `read`: the service catalogue, the
//! residents someone may ask help for, activities, the feedback desk, and the dashboard of the
//! communities a member may see. Each checks who is asking, like every read of the core.
use sea_orm::ConnectionTrait;
use serde::Serialize;

use crate::domain::Role;
use crate::error::{CoreError, Result};
use crate::service::Actor;
use crate::sql;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ServiceItem {
    pub code: String,
    pub field_code: String,
    pub field_zh: String,
    pub field_en: String,
    pub name_zh: String,
    pub name_en: String,
}

/// The active services, in the catalogue's order.
pub async fn services<C: ConnectionTrait>(c: &C) -> Result<Vec<ServiceItem>> {
    sql::all(
        c,
        "SELECT s.code, s.field_code, f.name_zh AS fz, f.name_en AS fe, s.name_zh, s.name_en \
         FROM services s JOIN service_fields f ON f.code = s.field_code WHERE s.active = ? ORDER BY f.sort, s.sort, s.code",
        vec![true.into()],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ServiceItem {
            code: r.try_get("", "code")?,
            field_code: r.try_get("", "field_code")?,
            field_zh: r.try_get("", "fz")?,
            field_en: r.try_get("", "fe")?,
            name_zh: r.try_get("", "name_zh")?,
            name_en: r.try_get("", "name_en")?,
        })
    })
    .collect()
}

/// A resident someone may ask help for. The phone is shown whole only to staff; family see
/// the last four digits, enough to tell two relatives apart.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ResidentChoice {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub community: String,
    /// "self", "family" or "staff": why the asker may act for this resident.
    pub because: String,
}

fn masked(phone: &str) -> String {
    let n = phone.chars().count();
    let tail: String = phone.chars().skip(n.saturating_sub(4)).collect();
    format!("*******{tail}")
}

/// The asker, their family (members they are linked to as a relative), and for staff the
/// residents of the communities they serve whose name or phone contains `query`. At most 30.
pub async fn residents_for<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    query: &str,
) -> Result<Vec<ResidentChoice>> {
    let q = query.trim();
    let like = format!("%{q}%");
    let matches = |name: &str, phone: &str| q.is_empty() || name.contains(q) || phone.contains(q);
    let mut out = Vec::new();
    let place = |r: &sea_orm::QueryResult| -> Result<String> { Ok(r.try_get("", "place")?) };
    if matches(&a.member.name, &a.member.phone) {
        let p = sql::all(
            c,
            "SELECT name_zh AS place FROM places WHERE id = ?",
            vec![a.member.home_community_id.clone().into()],
        )
        .await?;
        out.push(ResidentChoice {
            id: a.member.id.clone(),
            name: a.member.name.clone(),
            phone: masked(&a.member.phone),
            community: p.first().map(place).transpose()?.unwrap_or_default(),
            because: "self".into(),
        });
    }
    let fam = sql::all(
        c,
        "SELECT m.id, m.name, m.phone, p.name_zh AS place FROM family_links f JOIN members m ON m.id = f.member_id \
         JOIN places p ON p.id = m.home_community_id WHERE f.relative_id = ? AND m.active = ? ORDER BY m.name",
        vec![a.id().into(), true.into()],
    )
    .await?;
    for r in &fam {
        let (name, phone): (String, String) = (r.try_get("", "name")?, r.try_get("", "phone")?);
        if matches(&name, &phone) {
            out.push(ResidentChoice {
                id: r.try_get("", "id")?,
                name,
                phone: masked(&phone),
                community: place(r)?,
                because: "family".into(),
            });
        }
    }
    if (a.is_admin() || a.has(Role::Staff)) && !q.is_empty() {
        let rows = sql::all(
            c,
            "SELECT m.id, m.name, m.phone, m.home_community_id, p.name_zh AS place FROM members m \
             JOIN places p ON p.id = m.home_community_id JOIN member_roles r ON r.member_id = m.id AND r.role = 'resident' \
             WHERE m.active = ? AND (m.name LIKE ? OR m.phone LIKE ?) ORDER BY m.name LIMIT 200",
            vec![true.into(), like.clone().into(), like.into()],
        )
        .await?;
        for r in &rows {
            let community: String = r.try_get("", "home_community_id")?;
            let id: String = r.try_get("", "id")?;
            if a.is_staff_for(&community) && !out.iter().any(|o| o.id == id) {
                out.push(ResidentChoice {
                    id,
                    name: r.try_get("", "name")?,
                    phone: r.try_get("", "phone")?,
                    community: place(r)?,
                    because: "staff".into(),
                });
            }
        }
    }
    out.truncate(30);
    Ok(out)
}

/// The member's family in both directions (whom they may give hours to), phones masked.
pub async fn family_of<C: ConnectionTrait>(c: &C, a: &Actor) -> Result<Vec<ResidentChoice>> {
    let rows = sql::all(
        c,
        "SELECT m.id, m.name, m.phone, p.name_zh AS place FROM family_links f \
         JOIN members m ON m.id = CASE WHEN f.member_id = ? THEN f.relative_id ELSE f.member_id END \
         JOIN places p ON p.id = m.home_community_id WHERE (f.member_id = ? OR f.relative_id = ?) ORDER BY m.name",
        vec![a.id().into(), a.id().into(), a.id().into()],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ResidentChoice {
                id: r.try_get("", "id")?,
                name: r.try_get("", "name")?,
                phone: masked(&r.try_get::<String>("", "phone")?),
                community: r.try_get("", "place")?,
                because: "family".into(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ActivityItem {
    pub id: String,
    pub community_id: String,
    pub title: String,
    pub description: String,
    pub starts_at: i64,
    pub credit_minutes: i64,
    pub capacity: i32,
    pub status: String,
    pub signed_up: i64,
    pub attended: i64,
    pub i_signed_up: bool,
}

/// Activities of a community (the asker's home community by default), newest first. Anyone
/// of the community or its staff may see them.
pub async fn activities<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    community: Option<&str>,
) -> Result<Vec<ActivityItem>> {
    let community = community.unwrap_or(&a.member.home_community_id);
    if community != a.member.home_community_id && !a.is_staff_for(community) {
        return Err(CoreError::new(crate::Code::OutOfScope).with("community", community));
    }
    sql::all(
        c,
        "SELECT a.id, a.community_id, a.title, a.description, a.starts_at, a.credit_minutes, a.capacity, a.status, \
         (SELECT COUNT(*) FROM activity_signups s WHERE s.activity_id = a.id) AS n, \
         (SELECT COUNT(*) FROM activity_signups s WHERE s.activity_id = a.id AND s.attended = ?) AS att, \
         (SELECT COUNT(*) FROM activity_signups s WHERE s.activity_id = a.id AND s.member_id = ?) AS mine \
         FROM activities a WHERE a.community_id = ? ORDER BY a.starts_at DESC LIMIT 200",
        vec![true.into(), a.id().into(), community.into()],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ActivityItem {
            id: r.try_get("", "id")?,
            community_id: r.try_get("", "community_id")?,
            title: r.try_get("", "title")?,
            description: r.try_get("", "description")?,
            starts_at: r.try_get("", "starts_at")?,
            credit_minutes: r.try_get("", "credit_minutes")?,
            capacity: r.try_get("", "capacity")?,
            status: r.try_get("", "status")?,
            signed_up: r.try_get("", "n")?,
            attended: r.try_get("", "att")?,
            i_signed_up: r.try_get::<i64>("", "mine")? > 0,
        })
    })
    .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SignupItem {
    pub member_id: String,
    pub name: String,
    pub attended: bool,
}

/// Who signed up for an activity (staff of its community, for attendance).
pub async fn signups<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    activity_id: &str,
) -> Result<Vec<SignupItem>> {
    let act = sql::all(
        c,
        "SELECT community_id FROM activities WHERE id = ?",
        vec![activity_id.into()],
    )
    .await?;
    let Some(row) = act.first() else {
        return Err(CoreError::not_found("activity", activity_id));
    };
    let community: String = row.try_get("", "community_id")?;
    a.require_staff_for(&community, "take attendance")?;
    sql::all(
        c,
        "SELECT s.member_id, m.name, s.attended FROM activity_signups s JOIN members m ON m.id = s.member_id \
         WHERE s.activity_id = ? ORDER BY m.name",
        vec![activity_id.into()],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(SignupItem {
            member_id: r.try_get("", "member_id")?,
            name: r.try_get("", "name")?,
            attended: r.try_get("", "attended")?,
        })
    })
    .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct FeedbackItem {
    pub id: String,
    pub order_id: String,
    pub service_zh: String,
    pub author: String,
    pub rating: Option<i32>,
    pub comment: String,
    pub staff_response: Option<String>,
    pub created_at: i64,
}

/// Feedback on orders of the communities the staff member serves, unanswered first.
pub async fn feedback_desk<C: ConnectionTrait>(c: &C, a: &Actor) -> Result<Vec<FeedbackItem>> {
    if !(a.is_admin() || a.has(Role::Staff)) {
        return Err(CoreError::forbidden("answer feedback"));
    }
    let rows = sql::all(
        c,
        "SELECT f.id, f.order_id, s.name_zh, m.name, f.rating, f.comment, f.staff_response, f.created_at, o.community_id \
         FROM feedback f JOIN orders o ON o.id = f.order_id JOIN services s ON s.code = o.service_code \
         JOIN members m ON m.id = f.author_id ORDER BY (f.staff_response IS NULL) DESC, f.created_at DESC LIMIT 500",
        vec![],
    )
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let community: String = r.try_get("", "community_id")?;
        if a.is_staff_for(&community) {
            out.push(FeedbackItem {
                id: r.try_get("", "id")?,
                order_id: r.try_get("", "order_id")?,
                service_zh: r.try_get("", "name_zh")?,
                author: r.try_get("", "name")?,
                rating: r.try_get("", "rating")?,
                comment: r.try_get("", "comment")?,
                staff_response: r.try_get("", "staff_response")?,
                created_at: r.try_get("", "created_at")?,
            });
        }
    }
    Ok(out)
}

/// The live figures a member may see: an administrator the whole city or one community; staff
/// the communities of their center (or one of them); everybody else their home community.
/// The figures are counts and sums, never a person's data.
pub async fn dashboard_for<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    community: Option<&str>,
    now_ms: i64,
) -> Result<crate::read::Dashboard> {
    let scope: Option<Vec<String>> = match community {
        Some(cm) if a.is_staff_for(cm) || cm == a.member.home_community_id => {
            Some(vec![cm.to_owned()])
        }
        Some(cm) => {
            return Err(CoreError::new(crate::Code::OutOfScope).with("community", cm));
        }
        None if a.is_admin() => None,
        None if a.has(Role::Staff) && !a.staff_scope.is_empty() => {
            Some(a.staff_scope.iter().cloned().collect())
        }
        None => Some(vec![a.member.home_community_id.clone()]),
    };
    crate::read::dashboard(c, scope.as_deref(), now_ms).await
}
