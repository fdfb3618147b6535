//! Members: registration, profile, family links, vetting, PINs.
use super::command::{Command, SeenProfile};
use super::{get_member, Actor, Audit, Ctx, Outcome, RegisterMember, UpdateMember};
use crate::domain::{PlaceLevel, Relation, Role, TransferKind, Vetting};
use crate::entities::{family_links, member_roles, members, volunteer_profiles};
use crate::error::{Code, CoreError, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::OsRng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use serde_json::json;

/// Check a PIN's form: 4 to 6 digits.
pub fn check_pin_form(pin: &str) -> Result<()> {
    if (4..=6).contains(&pin.len()) && pin.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "pin",
            "密码须为4到6位数字",
            "must be 4 to 6 digits",
        ))
    }
}

/// Hash a PIN with argon2id (random salt). Build `SetPin` commands with this.
pub fn hash_pin(pin: &str) -> Result<String> {
    check_pin_form(pin)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::new(Code::Io).with("detail", e))
}

pub fn verify_pin(pin: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(pin.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Mainland mobile numbers (11 digits starting 1[3-9]) or landlines (7 to 12 digits, an
/// optional area code joined by '-').
pub fn normalise_phone(raw: &str) -> Result<String> {
    let p: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let digits: String = p.chars().filter(|c| *c != '-').collect();
    let ok_chars = p.chars().all(|c| c.is_ascii_digit() || c == '-');
    let mobile = digits.len() == 11
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9');
    // A landline with its area code (0 + 2-3 digits + 7-8 digits), or a local number of 7-8
    // digits. Stored as digits only, so that one number is one number however it is written.
    let landline = (digits.starts_with('0') && (10..=12).contains(&digits.len()))
        || ((7..=8).contains(&digits.len()) && !digits.starts_with(['0', '1']));
    if ok_chars && (mobile || landline) && p.matches('-').count() <= 1 {
        Ok(digits)
    } else {
        Err(CoreError::invalid(
            "phone",
            "请填写11位手机号或座机号（如0571-88886666）",
            "enter an 11-digit mobile number or a landline such as 0571-88886666",
        ))
    }
}

pub(crate) fn validate_member(
    r: &RegisterMember,
    today: chrono::NaiveDate,
) -> Result<(String, String)> {
    let name = super::nonempty("name", &r.name, 40)?;
    let phone = normalise_phone(&r.phone)?;
    if r.date_of_birth > today
        || r.date_of_birth < chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default()
    {
        return Err(CoreError::invalid(
            "date_of_birth",
            "出生日期不合理",
            "is not a plausible date of birth",
        ));
    }
    if r.roles.is_empty() {
        return Err(CoreError::invalid(
            "roles",
            "至少选择一个身份",
            "choose at least one role",
        ));
    }
    if r.roles.contains(&Role::Volunteer) && r.volunteer.is_none() {
        return Err(CoreError::invalid(
            "volunteer",
            "志愿者需要填写服务领域",
            "volunteers need a profile with service fields",
        ));
    }
    if r.roles.contains(&Role::Staff) && r.center_id.is_none() {
        return Err(CoreError::invalid(
            "center_id",
            "工作人员需要指定服务中心",
            "staff need a center",
        ));
    }
    Ok((name, phone))
}

pub async fn register<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    r: &RegisterMember,
) -> Result<(Outcome, Audit)> {
    let rules = super::rules_in(c, ctx).await?;
    let today = rules.1.local_date(ctx.now_ms);
    let (name, phone) = validate_member(r, today)?;
    let community = super::get_place_in(c, ctx, &r.home_community_id).await?;
    if community.level != PlaceLevel::Community.as_str() {
        return Err(CoreError::invalid(
            "home_community_id",
            "必须是社区或村",
            "must be a community or village",
        ));
    }
    a.require_staff_for(&community.id, "register members")?;
    if (r.roles.contains(&Role::Staff) || r.roles.contains(&Role::Admin)) && !a.is_admin() {
        return Err(CoreError::forbidden("grant staff or administrator roles"));
    }
    // A phone already registered is refused by the unique index (see `insert_member_rows`).
    insert_member_rows(c, ctx.now_ms, r, name, phone).await?;
    let acct = super::ledger::open_member_account(c, ctx, &r.member_id).await?;
    if r.roles.contains(&Role::Volunteer) && rules.1.signup_bonus > 0 {
        let issuing = super::ledger::issuing_account_id_in(c, ctx, &rules.0).await?;
        super::ledger::post(
            c,
            ctx,
            super::ledger::NewTransfer {
                id: format!("bonus-{}", r.member_id),
                kind: TransferKind::SignupBonus,
                programme_id: rules.0.clone(),
                legs: vec![
                    (issuing, -rules.1.signup_bonus),
                    (acct, rules.1.signup_bonus),
                ],
                credit_key: Some(format!("bonus:{}", r.member_id)),
                // The member was inserted just above (a second registration of the same id
                // fails there), so its bonus cannot have been credited.
                fresh_credit_key: true,
                memo: "志愿者注册奖励 / volunteer sign-up bonus".into(),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok((
        Outcome::id(&r.member_id),
        Audit::of("member", &r.member_id)
            .detail(json!({"roles": r.roles, "community": r.home_community_id})),
    ))
}

/// Insert the rows of one member (no checks: callers validated). Shared with the bulk import.
pub(crate) async fn insert_member_rows<C: ConnectionTrait>(
    c: &C,
    now: i64,
    r: &RegisterMember,
    name: String,
    phone: String,
) -> Result<()> {
    members::Entity::insert(member_model(now, r, name, phone.clone()).into_active_model())
        .exec_without_returning(c)
        .await
        .map_err(|e| {
            // SQLite names the column (members.phone), PostgreSQL the constraint
            // (members_phone_key).
            if super::is_unique_violation(&e) && e.to_string().contains("phone") {
                CoreError::new(Code::DuplicatePhone).with("phone", &phone)
            } else {
                super::on_duplicate(e, "member", &r.member_id)
            }
        })?;
    member_roles::Entity::insert_many(
        role_models(r)
            .into_iter()
            .map(IntoActiveModel::into_active_model),
    )
    .exec_without_returning(c)
    .await?;
    if let Some(v) = volunteer_model(r) {
        volunteer_profiles::Entity::insert(v.into_active_model())
            .exec_without_returning(c)
            .await?;
    }
    Ok(())
}

pub(crate) fn member_model(
    now: i64,
    r: &RegisterMember,
    name: String,
    phone: String,
) -> members::Model {
    members::Model {
        id: r.member_id.clone(),
        name,
        phone,
        date_of_birth: r.date_of_birth,
        home_community_id: r.home_community_id.clone(),
        address: r.address.clone().filter(|s| !s.trim().is_empty()),
        hardship: r.hardship,
        pin_hash: None,
        center_id: r.center_id.clone(),
        active: true,
        created_at: now,
    }
}

pub(crate) fn role_models(r: &RegisterMember) -> Vec<member_roles::Model> {
    let mut roles = r.roles.clone();
    roles.sort();
    roles.dedup();
    roles
        .into_iter()
        .map(|x| member_roles::Model {
            member_id: r.member_id.clone(),
            role: x.as_str().to_owned(),
        })
        .collect()
}

pub(crate) fn volunteer_model(r: &RegisterMember) -> Option<volunteer_profiles::Model> {
    r.volunteer.as_ref().map(|v| volunteer_profiles::Model {
        member_id: r.member_id.clone(),
        vetting: Vetting::Registered.as_str().into(),
        service_fields: serde_json::to_string(&v.service_fields).unwrap_or_else(|_| "[]".into()),
        skills: v.skills.clone(),
        availability: v.availability.clone(),
        verified_by: None,
        verified_at: None,
    })
}

/// On the device: the command with the values the editor saw (see `UpdateMember::seen`).
pub async fn with_seen<C: ConnectionTrait>(c: &C, cmd: &Command) -> Result<Option<Command>> {
    let Command::UpdateMember(u) = cmd else {
        return Ok(None);
    };
    if u.seen.is_some() {
        return Ok(None);
    }
    let Some(m) = members::Entity::find_by_id(u.member_id.clone())
        .one(c)
        .await?
    else {
        return Ok(None); // the update itself says what is missing
    };
    Ok(Some(Command::UpdateMember(UpdateMember {
        seen: Some(SeenProfile {
            name: m.name,
            phone: m.phone,
            address: m.address,
        }),
        ..u.clone()
    })))
}

/// One edited field: its name, the value now, the value the editor saw (None: not known), the
/// new value (None: not edited).
type FieldEdit = (
    &'static str,
    Option<String>,
    Option<Option<String>>,
    Option<String>,
);

/// The winning write of one profile field on the city server.
async fn field_version<C: ConnectionTrait>(
    c: &C,
    member_id: &str,
    field: &str,
) -> Result<Option<String>> {
    let rows = crate::sql::all(
        c,
        "SELECT hlc FROM field_versions WHERE entity = 'member' AND entity_id = ? AND field = ?",
        vec![member_id.into(), field.into()],
    )
    .await?;
    Ok(match rows.first() {
        Some(r) => Some(r.try_get("", "hlc")?),
        None => None,
    })
}

async fn set_field_version<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    member_id: &str,
    field: &str,
    hlc: &str,
) -> Result<()> {
    crate::sql::exec(
        c,
        "DELETE FROM field_versions WHERE entity = 'member' AND entity_id = ? AND field = ?",
        vec![member_id.into(), field.into()],
    )
    .await?;
    crate::sql::exec(
        c,
        "INSERT INTO field_versions (entity, entity_id, field, hlc, device_id, mutation_id) VALUES ('member', ?, ?, ?, ?, ?)",
        vec![member_id.into(), field.into(), hlc.into(), ctx.device_id.clone().into(), ctx.mutation_id.clone().into()],
    )
    .await?;
    Ok(())
}

/// Edit a member's name, phone or address. On the city server each field is decided on its
/// own: a field changed since the editor saw it was edited concurrently on another device, and
/// the later write by hybrid logical clock wins (whatever order the two arrive in); the other
/// value is not lost but sent to the community's staff as a `profile_conflict`.
pub async fn update<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    u: &UpdateMember,
) -> Result<(Outcome, Audit)> {
    let m = get_member(c, &u.member_id).await?;
    if m.id != a.id() {
        a.require_staff_for(&m.home_community_id, "edit another member's profile")?;
    }
    let name = u
        .name
        .as_deref()
        .map(|n| super::nonempty("name", n, 40))
        .transpose()?;
    let phone = u.phone.as_deref().map(normalise_phone).transpose()?;
    let address = u
        .address
        .as_deref()
        .map(|ad| super::nonempty("address", ad, 200))
        .transpose()?;
    let seen = u.seen.as_ref();
    let fields: [FieldEdit; 3] = [
        (
            "name",
            Some(m.name.clone()),
            seen.map(|s| Some(s.name.clone())),
            name,
        ),
        (
            "phone",
            Some(m.phone.clone()),
            seen.map(|s| Some(s.phone.clone())),
            phone,
        ),
        (
            "address",
            m.address.clone(),
            seen.map(|s| s.address.clone()),
            address,
        ),
    ];
    let mut am = m.clone().into_active_model();
    let mut conflicts = Vec::new();
    for (field, now, seen, new) in fields {
        let Some(new) = new else { continue };
        let concurrent = ctx.replay && seen.as_ref().is_some_and(|s| *s != now);
        if let Some(hlc) = ctx.hlc.as_deref() {
            let winner = field_version(c, &m.id, field).await?;
            if concurrent && winner.as_deref().is_some_and(|w| w > hlc) {
                // The other edit is the later one: it stays, this value goes to staff.
                conflicts.push(json!({"field": field, "kept": now, "lost": new}));
                continue;
            }
            set_field_version(c, ctx, &m.id, field, hlc).await?;
        }
        if concurrent && now.as_deref() != Some(new.as_str()) {
            conflicts.push(json!({"field": field, "kept": new, "lost": now}));
        }
        match field {
            "name" => am.name = Set(new),
            "phone" => {
                if new != m.phone
                    && members::Entity::find()
                        .filter(members::Column::Phone.eq(new.as_str()))
                        .one(c)
                        .await?
                        .is_some()
                {
                    return Err(CoreError::new(Code::DuplicatePhone).with("phone", &new));
                }
                am.phone = Set(new);
            }
            _ => am.address = Set(Some(new)),
        }
    }
    am.update(c).await?;
    if !conflicts.is_empty() {
        for (i, staff) in super::staff_of(c, &m.home_community_id)
            .await?
            .into_iter()
            .enumerate()
        {
            let id = ctx.derive_tagged("conflict", i);
            crate::entities::inbox_messages::Entity::insert(
                crate::entities::inbox_messages::Model {
                    id,
                    member_id: staff,
                    kind: "profile_conflict".into(),
                    params: json!({"member_id": m.id, "member": m.name, "conflicts": conflicts})
                        .to_string(),
                    read_at: None,
                    created_at: ctx.now_ms,
                }
                .into_active_model(),
            )
            .exec_without_returning(c)
            .await?;
        }
    }
    Ok((
        Outcome::id(&m.id),
        Audit::of("member", &m.id).detail(json!({
            "before": {"name": m.name, "phone": m.phone, "address": m.address},
            "conflicts": conflicts,
        })),
    ))
}

pub async fn link_family<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    member_id: &str,
    relative_id: &str,
    relation: Relation,
) -> Result<(Outcome, Audit)> {
    if member_id == relative_id {
        return Err(CoreError::invalid(
            "relative_id",
            "不能和自己建立亲属关系",
            "cannot link a member to themself",
        ));
    }
    let m = get_member(c, member_id).await?;
    let r = get_member(c, relative_id).await?;
    // Linked family act for each other (`may_act_for`): staff of both members' communities,
    // or the administrator, record it. Staff of one community could otherwise link a member
    // of theirs to a resident elsewhere, and act for that resident through the link.
    a.require_staff_for(&m.home_community_id, "record family links")?;
    a.require_staff_for(&r.home_community_id, "record family links")?;
    let existing = family_links::Entity::find_by_id((m.id.clone(), r.id.clone()))
        .one(c)
        .await?;
    if existing.is_some() {
        return Err(CoreError::new(Code::Duplicate)
            .with("entity", "family link")
            .with("id", format!("{}-{}", m.name, r.name)));
    }
    let rows = [
        family_links::Model {
            member_id: m.id.clone(),
            relative_id: r.id.clone(),
            relation: relation.as_str().into(),
            created_at: ctx.now_ms,
        },
        family_links::Model {
            member_id: r.id.clone(),
            relative_id: m.id.clone(),
            relation: relation.inverse().as_str().into(),
            created_at: ctx.now_ms,
        },
    ];
    family_links::Entity::insert_many(rows.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(c)
        .await?;
    // Whoever is linked as family may act on the member's behalf.
    for who in [&m.id, &r.id] {
        let has = member_roles::Entity::find_by_id((who.clone(), Role::Family.as_str().to_owned()))
            .one(c)
            .await?;
        if has.is_none() && who == &r.id {
            member_roles::Entity::insert(
                member_roles::Model {
                    member_id: who.clone(),
                    role: Role::Family.as_str().into(),
                }
                .into_active_model(),
            )
            .exec_without_returning(c)
            .await?;
        }
    }
    Ok((
        Outcome::id(&m.id),
        Audit::of("member", &m.id).detail(json!({"relative": r.id, "relation": relation})),
    ))
}

/// The relation of `other` to `member`, if they are linked.
pub async fn relation_between<C: ConnectionTrait>(
    c: &C,
    member: &str,
    other: &str,
) -> Result<Option<Relation>> {
    Ok(
        family_links::Entity::find_by_id((member.to_owned(), other.to_owned()))
            .one(c)
            .await?
            .and_then(|l| Relation::parse(&l.relation)),
    )
}

/// Whether `actor` may act for `member`: themself, linked family, their staff, or an admin.
pub async fn may_act_for<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    member: &members::Model,
) -> Result<bool> {
    Ok(a.id() == member.id
        || a.is_staff_for(&member.home_community_id)
        || relation_between(c, &member.id, a.id()).await?.is_some())
}

pub async fn set_vetting<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    member_id: &str,
    v: Vetting,
) -> Result<(Outcome, Audit)> {
    let m = get_member(c, member_id).await?;
    a.require_staff_for(&m.home_community_id, "verify volunteers")?;
    let p = volunteer_profiles::Entity::find_by_id(m.id.clone())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::new(Code::NotAVolunteer))?;
    let before = p.vetting.clone();
    let mut am = p.into_active_model();
    am.vetting = Set(v.as_str().into());
    am.verified_by = Set(Some(a.id().to_owned()));
    am.verified_at = Set(Some(ctx.now_ms));
    am.update(c).await?;
    super::notify(c, ctx, &m.id, "vetting_changed", json!({"vetting": v})).await?;
    Ok((
        Outcome::id(&m.id),
        Audit::of("volunteer_profile", &m.id).detail(json!({"before": before, "after": v})),
    ))
}

pub async fn set_pin<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    member_id: &str,
    pin_hash: &str,
) -> Result<(Outcome, Audit)> {
    let m = get_member(c, member_id).await?;
    if m.id != a.id() {
        a.require_staff_for(&m.home_community_id, "set another member's PIN")?;
    } else if !a.withheld.is_empty() {
        // A PIN that lets its holder act as staff is changed at a center: a volunteer's device
        // (or one claiming to act for the member) must not be able to take the account over.
        return Err(CoreError::forbidden(
            "change a staff member's PIN away from a center's workstation",
        ));
    }
    if PasswordHash::new(pin_hash).is_err() {
        return Err(CoreError::invalid(
            "pin_hash",
            "不是有效的密码摘要",
            "is not a password hash",
        ));
    }
    let mut am = m.into_active_model();
    am.pin_hash = Set(Some(pin_hash.to_owned()));
    am.update(c).await?;
    Ok((
        Outcome::id(member_id),
        Audit::of("member", member_id).detail(json!({"pin": "changed"})),
    ))
}

pub async fn set_hardship<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    member_id: &str,
    hardship: bool,
) -> Result<(Outcome, Audit)> {
    let m = get_member(c, member_id).await?;
    a.require_staff_for(&m.home_community_id, "record a hardship exception")?;
    let mut am = m.into_active_model();
    am.hardship = Set(hardship);
    am.update(c).await?;
    Ok((
        Outcome::id(member_id),
        Audit::of("member", member_id).detail(json!({"hardship": hardship})),
    ))
}

pub async fn roles_of<C: ConnectionTrait>(c: &C, member_id: &str) -> Result<Vec<Role>> {
    Ok(member_roles::Entity::find()
        .filter(member_roles::Column::MemberId.eq(member_id))
        .all(c)
        .await?
        .into_iter()
        .filter_map(|r| Role::parse(&r.role))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_accept_mobiles_and_landlines_and_refuse_the_rest() {
        assert_eq!(
            normalise_phone("138 0013 8000").ok().as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalise_phone("0571-88886666").ok().as_deref(),
            Some("057188886666")
        );
        for bad in [
            "12345",
            "1280013800",
            "23800138000x",
            "23800138000",
            "abc",
            "0571--8888",
        ] {
            assert_eq!(
                normalise_phone(bad).map_err(|e| e.code),
                Err(Code::InvalidInput),
                "{bad}"
            );
        }
    }

    #[test]
    fn pins_are_hashed_with_argon2_and_verified() {
        let h = hash_pin("2468").expect("hash");
        assert!(h.starts_with("$argon2"));
        assert!(verify_pin("2468", &h));
        assert!(!verify_pin("1357", &h));
        assert_eq!(
            hash_pin("12a4").map_err(|e| e.code),
            Err(Code::InvalidInput)
        );
        assert_eq!(hash_pin("123").map_err(|e| e.code), Err(Code::InvalidInput));
    }
}
