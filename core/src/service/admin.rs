//! Programme rules, the service catalogue and the bootstrap of a new database.
use super::{outbox, Actor, Audit, Ctx, Outcome};
use crate::domain::{AccountKind, GiftPolicy, Payer, PlaceLevel, Role, Rules};
use crate::entities::{
    accounts, center_communities, centers, places, programmes, service_fields, services,
};
use crate::error::{CoreError, Result};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryOrder, Set};
use serde_json::json;

/// The programme of this database and its rules.
pub async fn rules<C: ConnectionTrait>(c: &C) -> Result<(String, Rules)> {
    let p = programmes::Entity::find()
        .order_by_asc(programmes::Column::Id)
        .one(c)
        .await?
        .ok_or_else(|| CoreError::new(crate::error::Code::DeviceNotInitialised))?;
    Ok((p.id.clone(), rules_of(&p)))
}

pub fn rules_of(p: &programmes::Model) -> Rules {
    Rules {
        payer: Payer::parse(&p.payer).unwrap_or(Payer::Issuing),
        rounding_minutes: p.rounding_minutes,
        max_per_visit: p.max_per_visit,
        max_per_day: p.max_per_day,
        balance_cap: p.balance_cap,
        overdraft_limit: p.overdraft_limit,
        min_spend_age: p.min_spend_age,
        gift_policy: GiftPolicy::parse(&p.gift_policy).unwrap_or(GiftPolicy::DirectRelatives),
        signup_bonus: p.signup_bonus,
        auto_confirm_minutes: p.auto_confirm_minutes,
        urgent_escalation_minutes: p.urgent_escalation_minutes,
        timezone: p.timezone.clone(),
    }
}

fn programme_model(id: &str, name: &str, r: &Rules, now: i64) -> programmes::Model {
    programmes::Model {
        id: id.to_owned(),
        name: name.to_owned(),
        payer: r.payer.as_str().into(),
        rounding_minutes: r.rounding_minutes,
        max_per_visit: r.max_per_visit,
        max_per_day: r.max_per_day,
        balance_cap: r.balance_cap,
        overdraft_limit: r.overdraft_limit,
        min_spend_age: r.min_spend_age,
        gift_policy: r.gift_policy.as_str().into(),
        signup_bonus: r.signup_bonus,
        auto_confirm_minutes: r.auto_confirm_minutes,
        urgent_escalation_minutes: r.urgent_escalation_minutes,
        timezone: r.timezone.clone(),
        updated_at: now,
    }
}

pub async fn set_rules<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    r: &Rules,
) -> Result<(Outcome, Audit)> {
    a.require_admin("change the programme rules")?;
    r.validate()
        .map_err(|(f, zh, en)| CoreError::invalid(f, zh, en))?;
    let (id, before) = rules(c).await?;
    let p = programmes::Entity::find_by_id(id.clone())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("programme", &id))?;
    let name = p.name.clone();
    let am = programme_model(&id, &name, r, ctx.now_ms)
        .into_active_model()
        .reset_all();
    am.update(c).await?;
    Ok((
        Outcome::id(&id),
        Audit::of("programme", &id).detail(json!({"before": before, "after": r})),
    ))
}

pub async fn upsert_service<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    code: &str,
    field: &str,
    zh: &str,
    en: &str,
    active: bool,
) -> Result<(Outcome, Audit)> {
    a.require_admin("edit the service catalogue")?;
    let zh = super::nonempty("name_zh", zh, 40)?;
    let en = super::nonempty("name_en", en, 80)?;
    if !code
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch == '_' || ch.is_ascii_digit())
        || code.is_empty()
    {
        return Err(CoreError::invalid(
            "code",
            "编号只能用小写字母、数字和下划线",
            "use lowercase letters, digits and _",
        ));
    }
    if service_fields::Entity::find_by_id(field.to_owned())
        .one(c)
        .await?
        .is_none()
    {
        return Err(CoreError::not_found("service field", field));
    }
    match services::Entity::find_by_id(code.to_owned()).one(c).await? {
        Some(s) => {
            let mut am = s.into_active_model();
            am.field_code = Set(field.into());
            am.name_zh = Set(zh);
            am.name_en = Set(en);
            am.active = Set(active);
            am.update(c).await?;
        }
        None => {
            services::Entity::insert(
                services::Model {
                    code: code.into(),
                    field_code: field.into(),
                    name_zh: zh,
                    name_en: en,
                    sort: 100,
                    active,
                }
                .into_active_model(),
            )
            .exec_without_returning(c)
            .await?;
        }
    }
    Ok((
        Outcome::id(code),
        Audit::of("service", code).detail(json!({"field": field, "active": active})),
    ))
}

/// The default catalogue: the city platform's eight service fields, each with services.
/// (code, zh, en) of a service.
pub type ServiceDef = (&'static str, &'static str, &'static str);
/// (field code, zh, en, services) of a service field.
pub type FieldDef = (
    &'static str,
    &'static str,
    &'static str,
    &'static [ServiceDef],
);

pub const CATALOGUE: &[FieldDef] = &[
    (
        "daily_living",
        "生活照料",
        "Daily living",
        &[
            ("meal_delivery", "助餐送餐", "Meal delivery"),
            ("shopping", "代购买菜", "Shopping"),
            ("cleaning", "打扫卫生", "Cleaning"),
        ],
    ),
    (
        "health",
        "医疗健康",
        "Health",
        &[
            ("hospital_escort", "陪同就医", "Escort to hospital"),
            ("medicine_pickup", "代取药品", "Medicine pickup"),
            ("health_reminder", "健康提醒", "Health check reminders"),
        ],
    ),
    (
        "companionship",
        "精神慰藉",
        "Companionship",
        &[
            ("chat_visit", "上门陪伴聊天", "Companionship visit"),
            ("checkin_call", "电话问候", "Check-in call"),
        ],
    ),
    (
        "fitness",
        "文体健身",
        "Fitness and sports",
        &[
            ("walk_together", "陪同散步", "Walking together"),
            ("group_exercise", "集体健身", "Group exercise"),
        ],
    ),
    (
        "culture",
        "文化学习",
        "Culture and learning",
        &[
            ("phone_help", "手机应用教学", "Phone and app help"),
            ("reading", "读书读报", "Reading aloud"),
        ],
    ),
    (
        "repairs",
        "家政维修",
        "Household repairs",
        &[
            ("small_repair", "小家电维修", "Small repairs"),
            ("plumbing", "水电维修", "Plumbing and electrics"),
        ],
    ),
    (
        "legal",
        "法律政务",
        "Legal and paperwork",
        &[
            ("paperwork", "代办政务", "Paperwork help"),
            ("legal_advice", "法律咨询", "Legal advice"),
        ],
    ),
    (
        "emergency",
        "应急救助",
        "Emergency and disaster relief",
        &[
            ("typhoon_check", "台风天上门查看", "Typhoon check"),
            ("supplies", "应急物资送达", "Emergency supplies"),
        ],
    ),
];

/// What a new database is set up with.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub city: (String, String),
    pub district: (String, String),
    pub subdistrict: (String, String),
    /// (zh, en) names of the communities the center serves.
    pub communities: Vec<(String, String)>,
    pub center: (String, String),
    pub admin_name: String,
    pub admin_phone: String,
    pub admin_birth: chrono::NaiveDate,
    pub programme_name: String,
    pub rules: Rules,
}

#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Bootstrapped {
    pub device_id: String,
    pub programme_id: String,
    pub center_id: String,
    pub community_ids: Vec<String>,
    pub subdistrict_id: String,
    pub admin_id: String,
}

/// Initialise an empty device database for a center: place hierarchy, center, programme and
/// its accounts, the catalogue and the first administrator. One transaction.
pub async fn bootstrap<C: ConnectionTrait>(c: &C, b: &Bootstrap, now: i64) -> Result<Bootstrapped> {
    if outbox::get_setting(c, outbox::K_DEVICE_ID).await?.is_some() {
        return Err(CoreError::new(crate::error::Code::Duplicate)
            .with("entity", "device")
            .with("id", "this database"));
    }
    if b.communities.is_empty() {
        return Err(CoreError::invalid(
            "communities",
            "至少需要一个社区",
            "at least one community is needed",
        ));
    }
    b.rules
        .validate()
        .map_err(|(f, zh, en)| CoreError::invalid(f, zh, en))?;
    let device_id = super::new_id();
    let place =
        |id: &str, parent: Option<&str>, level: PlaceLevel, n: &(String, String)| places::Model {
            id: id.to_owned(),
            parent_id: parent.map(str::to_owned),
            level: level.as_str().into(),
            name_zh: n.0.clone(),
            name_en: n.1.clone(),
        };
    let city = super::new_id();
    let district = super::new_id();
    let sub = super::new_id();
    let mut rows = vec![
        place(&city, None, PlaceLevel::City, &b.city),
        place(&district, Some(&city), PlaceLevel::District, &b.district),
        place(
            &sub,
            Some(&district),
            PlaceLevel::Subdistrict,
            &b.subdistrict,
        ),
    ];
    let mut community_ids = Vec::new();
    for n in &b.communities {
        let id = super::new_id();
        rows.push(place(&id, Some(&sub), PlaceLevel::Community, n));
        community_ids.push(id);
    }
    places::Entity::insert_many(rows.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(c)
        .await?;
    let center_id = super::new_id();
    centers::Entity::insert(
        centers::Model {
            id: center_id.clone(),
            name_zh: b.center.0.clone(),
            name_en: b.center.1.clone(),
            subdistrict_id: sub.clone(),
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await?;
    center_communities::Entity::insert_many(community_ids.iter().map(|cid| {
        center_communities::Model {
            center_id: center_id.clone(),
            community_id: cid.clone(),
        }
        .into_active_model()
    }))
    .exec_without_returning(c)
    .await?;
    let programme_id = super::new_id();
    programmes::Entity::insert(
        programme_model(&programme_id, &b.programme_name, &b.rules, now).into_active_model(),
    )
    .exec_without_returning(c)
    .await?;
    let mut accts = vec![accounts::Model {
        id: format!("issuing-{programme_id}"),
        kind: AccountKind::Issuing.as_str().into(),
        member_id: None,
        community_id: None,
        programme_id: Some(programme_id.clone()),
        balance: 0,
        created_at: now,
    }];
    for cid in &community_ids {
        accts.push(accounts::Model {
            id: format!("fund-{cid}"),
            kind: AccountKind::CommunityFund.as_str().into(),
            member_id: None,
            community_id: Some(cid.clone()),
            programme_id: Some(programme_id.clone()),
            balance: 0,
            created_at: now,
        });
    }
    accounts::Entity::insert_many(accts.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(c)
        .await?;
    seed_catalogue(c).await?;
    outbox::set_setting(c, outbox::K_DEVICE_ID, &device_id).await?;
    outbox::set_setting(c, outbox::K_CENTER, &center_id).await?;
    outbox::set_setting(c, outbox::K_PROGRAMME, &programme_id).await?;
    outbox::set_setting(c, outbox::K_NEXT_SEQ, "1").await?;
    // The first administrator is created directly (there is nobody yet to authorise it);
    // the audit trail records it as done by the system on this device.
    let admin_id = super::new_id();
    let reg = super::RegisterMember {
        member_id: admin_id.clone(),
        name: b.admin_name.clone(),
        phone: b.admin_phone.clone(),
        date_of_birth: b.admin_birth,
        home_community_id: community_ids[0].clone(),
        address: None,
        roles: vec![Role::Admin, Role::Staff],
        hardship: false,
        center_id: Some(center_id.clone()),
        volunteer: None,
    };
    let (name, phone) = super::members::validate_member(&reg, b.rules.local_date(now))?;
    super::members::insert_member_rows(c, now, &reg, name, phone).await?;
    let ctx = Ctx::new(&admin_id, &device_id, now);
    super::ledger::open_member_account(c, &ctx, &admin_id).await?;
    super::write_audit(
        c,
        &Ctx::new("system", &device_id, now),
        "bootstrap",
        &Audit::of("device", &device_id).detail(json!({"center": center_id, "admin": admin_id})),
    )
    .await?;
    Ok(Bootstrapped {
        device_id,
        programme_id,
        center_id,
        community_ids,
        subdistrict_id: sub,
        admin_id,
    })
}

pub async fn seed_catalogue<C: ConnectionTrait>(c: &C) -> Result<()> {
    let mut fields = Vec::new();
    let mut svcs = Vec::new();
    for (i, (code, zh, en, list)) in CATALOGUE.iter().enumerate() {
        fields.push(
            service_fields::Model {
                code: (*code).into(),
                name_zh: (*zh).into(),
                name_en: (*en).into(),
                sort: i as i32,
                active: true,
            }
            .into_active_model(),
        );
        for (j, (s, szh, sen)) in list.iter().enumerate() {
            svcs.push(
                services::Model {
                    code: (*s).into(),
                    field_code: (*code).into(),
                    name_zh: (*szh).into(),
                    name_en: (*sen).into(),
                    sort: j as i32,
                    active: true,
                }
                .into_active_model(),
            );
        }
    }
    service_fields::Entity::insert_many(fields)
        .exec_without_returning(c)
        .await?;
    services::Entity::insert_many(svcs)
        .exec_without_returning(c)
        .await?;
    Ok(())
}
