//! Signing in on a shared workstation: pick a member, enter the PIN. The desktop app keeps the
//! signed-in member for one session and locks it after inactivity; every command it runs acts
//! as that member, and the core checks the member's roles and communities as for any caller.
use std::collections::BTreeMap;

use sea_orm::ConnectionTrait;
use serde::Serialize;

use crate::domain::Role;
use crate::error::{Code, CoreError, Result};
use crate::service::{get_member, load_actor, members::verify_pin};
use crate::sql;

/// One member who can sign in here: only what the sign-in list needs (no phone, no address).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SignInChoice {
    pub id: String,
    pub name: String,
    pub community: String,
    pub roles: Vec<String>,
}

/// The signed-in member as the app shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Me {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub home_community_id: String,
    pub home_community: String,
    /// Communities the member may work in as staff (empty for everybody else).
    pub staff_communities: Vec<Place>,
    pub is_staff: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Place {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
}

/// Members with a PIN who may sign in here, for `query`, at most 60: staff, volunteers and
/// family (the people who use a workstation most) whose name contains it (all of them for an
/// empty query), then residents. A resident (a member who is nothing but a resident: an elder,
/// mostly) appears only to someone who already knows who they are: for their whole name or
/// their phone number, never in the list a passer-by sees at the workstation nor for a part of
/// a name; found by the number, only the surname shows (`王**`), so that a number does not
/// tell a name. A phone number finds anyone with a PIN.
pub async fn choices<C: ConnectionTrait>(c: &C, query: &str) -> Result<Vec<SignInChoice>> {
    let q = query.trim();
    let rows = sql::all(
        c,
        "SELECT m.id, m.name, p.name_zh, r.role FROM members m JOIN places p ON p.id = m.home_community_id \
         JOIN member_roles r ON r.member_id = m.id \
         WHERE m.active = ? AND m.pin_hash IS NOT NULL AND (m.name = ? OR m.phone = ? OR ((? = '' OR m.name LIKE ?) \
         AND EXISTS (SELECT 1 FROM member_roles x WHERE x.member_id = m.id AND x.role <> ?))) \
         ORDER BY m.name, m.id, r.role",
        vec![
            true.into(),
            q.into(),
            q.into(),
            q.into(),
            format!("%{q}%").into(),
            Role::Resident.as_str().into(),
        ],
    )
    .await?;
    let mut out: Vec<SignInChoice> = Vec::new();
    for r in rows {
        let id: String = r.try_get("", "id")?;
        let role: String = r.try_get("", "role")?;
        match out.last_mut() {
            Some(last) if last.id == id => last.roles.push(role),
            _ => out.push(SignInChoice {
                id,
                name: r.try_get("", "name")?,
                community: r.try_get("", "name_zh")?,
                roles: vec![role],
            }),
        }
    }
    let resident_only = |c: &SignInChoice| c.roles.iter().all(|r| r == Role::Resident.as_str());
    out.sort_by_key(|c| (resident_only(c), c.name.clone()));
    out.truncate(60);
    for c in out.iter_mut().filter(|c| c.name != q) {
        if resident_only(c) {
            c.name = surname_only(&c.name);
        }
    }
    Ok(out)
}

/// A name with all but its first character hidden: `王德明` -> `王**`.
fn surname_only(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().into_iter().chain(chars.map(|_| '*')).collect()
}

/// Check `pin` against the member's PIN hash and describe the member. Staff and
/// administrators sign in at a center's workstation only: a volunteer's device lets no one act
/// as staff, and holds no hash of their PINs (the city server withholds them).
pub async fn sign_in<C: ConnectionTrait>(c: &C, member_id: &str, pin: &str) -> Result<Me> {
    let m = get_member(c, member_id).await?;
    if let Some(grant) = crate::sync::enrolled_grant(c).await?.filter(|g| !g.center) {
        let roles = crate::service::members::roles_of(c, member_id).await?;
        if roles.iter().any(|r| !grant.allows(*r)) {
            return Err(CoreError::forbidden(
                "sign in as staff away from a center's workstation",
            ));
        }
    }
    let Some(hash) = m.pin_hash.as_deref() else {
        return Err(CoreError::new(Code::PinNotSet));
    };
    if !verify_pin(pin, hash) {
        return Err(CoreError::new(Code::PinIncorrect));
    }
    me(c, member_id).await
}

/// The member's roles and places, for the app's header and menus.
pub async fn me<C: ConnectionTrait>(c: &C, member_id: &str) -> Result<Me> {
    let a = load_actor(c, member_id).await?;
    let names = place_names(c).await?;
    let home = names
        .get(&a.member.home_community_id)
        .map(|p| p.name_zh.clone())
        .unwrap_or_default();
    let staff_communities: Vec<Place> = names
        .iter()
        .filter(|(id, _)| a.is_staff_for(id))
        .map(|(_, p)| p.clone())
        .collect();
    Ok(Me {
        id: a.member.id.clone(),
        name: a.member.name.clone(),
        roles: a.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        home_community_id: a.member.home_community_id.clone(),
        home_community: home,
        is_staff: !staff_communities.is_empty(),
        staff_communities,
    })
}

async fn place_names<C: ConnectionTrait>(c: &C) -> Result<BTreeMap<String, Place>> {
    Ok(communities(c)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect())
}

/// Every community, by Chinese name.
pub async fn communities<C: ConnectionTrait>(c: &C) -> Result<Vec<Place>> {
    sql::all(
        c,
        "SELECT id, name_zh, name_en FROM places WHERE level = 'community' ORDER BY name_zh",
        vec![],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Place {
            id: r.try_get("", "id")?,
            name_zh: r.try_get("", "name_zh")?,
            name_en: r.try_get("", "name_en")?,
        })
    })
    .collect()
}
