//! CSV import of residents and volunteers from existing registries.
//!
//! The import is all-or-nothing: every row is checked first and every bad row is reported
//! with its line number and reason; if any row is bad nothing is imported. A good file is
//! written in one transaction in batches, with the same rows, audit entries and outbox
//! mutations (`register_member`, one per member) as registering each member by hand.
use crate::domain::{hlc::Hlc, Role, TransferKind};
use crate::entities::{accounts, audit_log, ledger_entries, members, outbox, transfers};
use crate::error::{Code, CoreError, Result};
use crate::service::command::{Command, RegisterMember, VolunteerProfile};
use crate::service::{self, members as msvc, outbox as ob, Ctx};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use timebank_migrations::SCHEMA_VERSION;

pub const HEADER: [&str; 7] = [
    "name",
    "phone",
    "date_of_birth",
    "community",
    "roles",
    "address",
    "service_fields",
];

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RowError {
    pub line: u64,
    pub field: String,
    pub reason_zh: String,
    pub reason_en: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ImportReport {
    pub imported: usize,
    pub volunteers: usize,
}

fn row_err(line: u64, e: &CoreError) -> RowError {
    RowError {
        line,
        field: e
            .detail
            .get("field")
            .cloned()
            .unwrap_or_else(|| e.code.as_str()),
        reason_zh: e
            .detail
            .get("reason_zh")
            .cloned()
            .unwrap_or_else(|| e.message(crate::Lang::Zh)),
        reason_en: e
            .detail
            .get("reason_en")
            .cloned()
            .unwrap_or_else(|| e.message(crate::Lang::En)),
    }
}

fn bad(line: u64, field: &str, zh: &str, en: &str) -> RowError {
    RowError {
        line,
        field: field.into(),
        reason_zh: zh.into(),
        reason_en: en.into(),
    }
}

/// Parse and check a CSV file. Returns the commands to apply, or every bad row.
pub async fn check<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    data: &[u8],
) -> Result<std::result::Result<Vec<RegisterMember>, Vec<RowError>>> {
    let (_, rules) = service::admin::rules(c).await?;
    let today = rules.local_date(ctx.now_ms);
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| CoreError::new(Code::Io).with("detail", e))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_lowercase())
        .collect();
    if header != HEADER {
        return Ok(Err(vec![bad(
            1,
            "header",
            &format!("表头应为：{}", HEADER.join(",")),
            &format!("the header must be: {}", HEADER.join(",")),
        )]));
    }
    let communities: HashMap<String, String> = crate::sql::all(
        c,
        "SELECT id, name_zh, name_en FROM places WHERE level = 'community'",
        vec![],
    )
    .await?
    .iter()
    .flat_map(|r| {
        let id: String = r.try_get("", "id").unwrap_or_default();
        let zh: String = r.try_get("", "name_zh").unwrap_or_default();
        let en: String = r.try_get("", "name_en").unwrap_or_default();
        [(zh, id.clone()), (en, id.clone()), (id.clone(), id)]
    })
    .collect();
    let fields: HashSet<String> = crate::entities::service_fields::Entity::find()
        .all(c)
        .await?
        .into_iter()
        .map(|f| f.code)
        .collect();
    let mut phones: HashSet<String> = members::Entity::find()
        .select_only()
        .column(members::Column::Phone)
        .into_tuple::<String>()
        .all(c)
        .await?
        .into_iter()
        .collect();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(bad(
                    line,
                    "row",
                    &format!("无法读取这一行：{e}"),
                    &format!("cannot read the row: {e}"),
                ));
                continue;
            }
        };
        if rec.len() != HEADER.len() {
            errors.push(bad(
                line,
                "row",
                &format!("应有{}列，实际{}列", HEADER.len(), rec.len()),
                &format!("expected {} columns, found {}", HEADER.len(), rec.len()),
            ));
            continue;
        }
        let f = |n: usize| rec.get(n).unwrap_or("").to_owned();
        let dob = match chrono::NaiveDate::parse_from_str(&f(2), "%Y-%m-%d") {
            Ok(d) => d,
            Err(_) => {
                errors.push(bad(
                    line,
                    "date_of_birth",
                    "出生日期格式应为 YYYY-MM-DD",
                    "date of birth must be YYYY-MM-DD",
                ));
                continue;
            }
        };
        let Some(community) = communities.get(&f(3)) else {
            errors.push(bad(
                line,
                "community",
                &format!("找不到社区“{}”", f(3)),
                &format!("no community named '{}'", f(3)),
            ));
            continue;
        };
        let mut roles = Vec::new();
        let mut role_bad = false;
        for r in f(4).split(';').map(str::trim).filter(|s| !s.is_empty()) {
            match Role::parse(r) {
                Some(x @ (Role::Resident | Role::Family | Role::Volunteer)) => roles.push(x),
                _ => role_bad = true,
            }
        }
        if role_bad {
            errors.push(bad(
                line,
                "roles",
                "身份只能是 resident、family、volunteer（用;分隔）",
                "roles must be resident, family or volunteer, separated by ;",
            ));
            continue;
        }
        let sf: Vec<String> = f(6)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(x) = sf.iter().find(|x| !fields.contains(*x)) {
            errors.push(bad(
                line,
                "service_fields",
                &format!("未知的服务领域“{x}”"),
                &format!("unknown service field '{x}'"),
            ));
            continue;
        }
        let reg = RegisterMember {
            member_id: service::new_id(),
            name: f(0),
            phone: f(1),
            date_of_birth: dob,
            home_community_id: community.clone(),
            address: Some(f(5)).filter(|s| !s.is_empty()),
            volunteer: roles.contains(&Role::Volunteer).then(|| VolunteerProfile {
                service_fields: sf,
                ..Default::default()
            }),
            roles,
            hardship: false,
            center_id: None,
        };
        match msvc::validate_member(&reg, today) {
            Ok((name, phone)) => {
                if !phones.insert(phone.clone()) {
                    errors.push(bad(
                        line,
                        "phone",
                        &format!("手机号{phone}已登记或在文件中重复"),
                        &format!("phone {phone} is already registered or repeated in the file"),
                    ));
                    continue;
                }
                out.push(RegisterMember { name, phone, ..reg });
            }
            Err(e) => errors.push(row_err(line, &e)),
        }
    }
    Ok(if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    })
}

const CHUNK: usize = 1000;

async fn insert_chunks<E, A, C>(c: &C, rows: Vec<A>) -> Result<()>
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    let mut it = rows.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<A> = it.by_ref().take(CHUNK).collect();
        E::insert_many(chunk).exec_without_returning(c).await?;
    }
    Ok(())
}

/// Import members from CSV as `ctx.actor_id` (staff of every community in the file, or an
/// administrator). `progress(done, total)` is called as batches are written.
pub async fn import_members(
    db: &DatabaseConnection,
    ctx: &Ctx,
    data: &[u8],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ImportReport> {
    let txn = crate::db::begin_write(db).await?;
    let actor = service::load_actor(&txn, &ctx.actor_id).await?;
    let regs = match check(&txn, ctx, data).await? {
        Ok(r) => r,
        Err(errors) => {
            return Err(CoreError::new(Code::CsvInvalid)
                .with("count", errors.len())
                .with_data(serde_json::to_value(&errors).unwrap_or_default()));
        }
    };
    let scope: HashSet<&String> = regs.iter().map(|r| &r.home_community_id).collect();
    for cm in scope {
        actor.require_staff_for(cm, "import members")?;
    }
    let total = regs.len() as u64;
    let (programme_id, rules) = service::admin::rules(&txn).await?;
    let issuing = service::ledger::issuing_account(&txn, &programme_id).await?;
    let device = ob::device_id(&txn).await?;
    let mut seq: i64 = ob::get_setting(&txn, ob::K_NEXT_SEQ)
        .await?
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut hlc = ob::get_setting(&txn, ob::K_HLC)
        .await?
        .and_then(|s| Hlc::decode(&s))
        .unwrap_or_else(|| Hlc::zero(&device));
    let bonus = rules.signup_bonus;
    let mut volunteers = 0;
    let mut bonus_total = 0;
    let mut done = 0u64;
    let mut last_mutation = String::new();
    for batch in regs.chunks(CHUNK) {
        let (mut ms, mut rs, mut vs, mut accts, mut ts, mut es, mut audits, mut outs) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        for r in batch {
            ms.push(
                msvc::member_model(ctx.now_ms, r, r.name.clone(), r.phone.clone())
                    .into_active_model(),
            );
            rs.extend(
                msvc::role_models(r)
                    .into_iter()
                    .map(IntoActiveModel::into_active_model),
            );
            let gets_bonus = r.roles.contains(&Role::Volunteer) && bonus > 0;
            if let Some(v) = msvc::volunteer_model(r) {
                vs.push(v.into_active_model());
                volunteers += 1;
            }
            let acct = format!("acct-{}", r.member_id);
            accts.push(
                accounts::Model {
                    id: acct.clone(),
                    kind: "member".into(),
                    member_id: Some(r.member_id.clone()),
                    community_id: None,
                    programme_id: None,
                    balance: if gets_bonus { bonus } else { 0 },
                    created_at: ctx.now_ms,
                }
                .into_active_model(),
            );
            if gets_bonus {
                let tid = format!("bonus-{}", r.member_id);
                ts.push(
                    transfers::Model {
                        id: tid.clone(),
                        kind: TransferKind::SignupBonus.as_str().into(),
                        programme_id: programme_id.clone(),
                        order_id: None,
                        visit_id: None,
                        activity_id: None,
                        credit_key: Some(format!("bonus:{}", r.member_id)),
                        reverses_id: None,
                        memo: "志愿者注册奖励 / volunteer sign-up bonus".into(),
                        reason: None,
                        approved_by: None,
                        created_by: ctx.actor_id.clone(),
                        created_at: ctx.now_ms,
                    }
                    .into_active_model(),
                );
                es.push(
                    ledger_entries::Model {
                        id: format!("{tid}:0"),
                        transfer_id: tid.clone(),
                        account_id: issuing.id.clone(),
                        amount: -bonus,
                        created_at: ctx.now_ms,
                    }
                    .into_active_model(),
                );
                es.push(
                    ledger_entries::Model {
                        id: format!("{tid}:1"),
                        transfer_id: tid,
                        account_id: acct,
                        amount: bonus,
                        created_at: ctx.now_ms,
                    }
                    .into_active_model(),
                );
                bonus_total += bonus;
            }
            let cmd = Command::RegisterMember(r.clone());
            audits.push(
                audit_log::Model {
                    id: service::new_id(),
                    at: ctx.now_ms,
                    actor_id: ctx.actor_id.clone(),
                    on_behalf_of: None,
                    device_id: ctx.device_id.clone(),
                    action: "register_member".into(),
                    entity: "member".into(),
                    entity_id: r.member_id.clone(),
                    detail: serde_json::json!({"import": true, "roles": r.roles}).to_string(),
                }
                .into_active_model(),
            );
            hlc = hlc.tick(ctx.now_ms);
            outs.push(
                outbox::Model {
                    id: {
                        last_mutation = service::new_id();
                        last_mutation.clone()
                    },
                    device_id: device.clone(),
                    seq,
                    name: cmd.name(),
                    args: cmd.args().to_string(),
                    hlc: hlc.encode(),
                    schema_version: SCHEMA_VERSION,
                    actor_id: ctx.actor_id.clone(),
                    status: "pending".into(),
                    created_at: ctx.now_ms,
                }
                .into_active_model(),
            );
            seq += 1;
        }
        insert_chunks(&txn, ms).await?;
        insert_chunks(&txn, rs).await?;
        insert_chunks(&txn, vs).await?;
        insert_chunks(&txn, accts).await?;
        insert_chunks(&txn, ts).await?;
        insert_chunks(&txn, es).await?;
        insert_chunks(&txn, audits).await?;
        insert_chunks(&txn, outs).await?;
        done += batch.len() as u64;
        progress(done, total);
    }
    if bonus_total > 0 {
        accounts::Entity::update_many()
            .col_expr(
                accounts::Column::Balance,
                Expr::col(accounts::Column::Balance).sub(bonus_total),
            )
            .filter(accounts::Column::Id.eq(issuing.id.as_str()))
            .exec(&txn)
            .await?;
    }
    ob::set_setting(&txn, ob::K_NEXT_SEQ, &seq.to_string()).await?;
    ob::set_setting(&txn, ob::K_HLC, &hlc.encode()).await?;
    // On an enrolled device, the rows the import wrote join the journal under its last
    // mutation (confirmed only once every import mutation before it is).
    if !last_mutation.is_empty() {
        crate::sql::exec(
            &txn,
            "UPDATE change_queue SET mutation_id = ? WHERE mutation_id IS NULL",
            vec![last_mutation.into()],
        )
        .await?;
    }
    txn.commit().await?;
    Ok(ImportReport {
        imported: regs.len(),
        volunteers,
    })
}
