//! The ledger: accounts, double-entry transfers in whole minutes, balances maintained in the
//! same transaction. Entries are only ever inserted; a mistake is corrected by a reversing
//! transfer (and the database refuses UPDATE and DELETE of entries by trigger).
use super::{get_member, Actor, Audit, Ctx, Outcome};
use crate::domain::rules::{age_on, HoldReason};
use crate::domain::{AccountKind, Role, TransferKind};
use crate::entities::{accounts, ledger_entries, ledger_flags, transfers};
use crate::error::{Code, CoreError, Result};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use serde_json::json;

#[derive(Debug, Clone, Default)]
pub struct NewTransfer {
    pub id: String,
    pub kind: TransferKind,
    pub programme_id: String,
    /// (account, signed minutes); must sum to zero.
    pub legs: Vec<(String, i64)>,
    pub credit_key: Option<String>,
    /// The credit key names something this same mutation created (a new member's sign-up
    /// bonus), so no transfer can carry it yet: [`post`] skips the read that looks for one
    /// (the unique index on the key still refuses a duplicate). On the city server that read
    /// would send every row the pushed group held back to the database first.
    pub fresh_credit_key: bool,
    pub reverses_id: Option<String>,
    pub order_id: Option<String>,
    pub visit_id: Option<String>,
    pub activity_id: Option<String>,
    pub memo: String,
    pub reason: Option<String>,
    pub approved_by: Option<String>,
}

#[allow(clippy::derivable_impls)] // the kind enum is made by a macro shared by all vocabularies
impl Default for TransferKind {
    fn default() -> Self {
        TransferKind::Correction
    }
}

/// Post one balanced transfer: insert it and its entries, move the balances.
pub async fn post<C: ConnectionTrait>(c: &C, ctx: &Ctx, t: NewTransfer) -> Result<String> {
    let sum: i64 = t.legs.iter().map(|(_, m)| m).sum();
    if sum != 0 || t.legs.len() < 2 {
        return Err(CoreError::new(Code::UnbalancedTransfer).with("sum", sum));
    }
    if t.legs.iter().any(|(_, m)| *m == 0) {
        return Err(CoreError::invalid(
            "minutes",
            "金额不能为0",
            "must not be zero",
        ));
    }
    if let Some(k) = t.credit_key.as_ref().filter(|_| !t.fresh_credit_key) {
        let dup = transfers::Entity::find()
            .filter(transfers::Column::CreditKey.eq(k.as_str()))
            .one(c)
            .await?;
        if dup.is_some() {
            return Err(CoreError::new(Code::AlreadyCredited));
        }
    }
    transfers::Entity::insert(
        transfers::Model {
            id: t.id.clone(),
            kind: t.kind.as_str().into(),
            programme_id: t.programme_id,
            order_id: t.order_id,
            visit_id: t.visit_id,
            activity_id: t.activity_id,
            credit_key: t.credit_key,
            reverses_id: t.reverses_id,
            memo: t.memo,
            reason: t.reason,
            approved_by: t.approved_by,
            created_by: ctx.actor_id.clone(),
            created_at: ctx.now_ms,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await
    .map_err(|e| super::on_duplicate(e, "transfer", &t.id))?;
    let entries = t.legs.iter().enumerate().map(|(i, (acct, m))| {
        ledger_entries::Model {
            id: format!("{}:{i}", t.id),
            transfer_id: t.id.clone(),
            account_id: acct.clone(),
            amount: *m,
            created_at: ctx.now_ms,
        }
        .into_active_model()
    });
    // The entries' foreign key refuses an account that does not exist.
    ledger_entries::Entity::insert_many(entries)
        .exec_without_returning(c)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
                let accounts: Vec<&str> = t.legs.iter().map(|(a, _)| a.as_str()).collect();
                CoreError::not_found("account", &accounts.join(", "))
            }
            _ => e.into(),
        })?;
    // So the balance updates need not count the rows they change (and do not: the city
    // server holds them back and sends them summed, see server/src/deferred.rs).
    for (acct, m) in &t.legs {
        accounts::Entity::update_many()
            .col_expr(
                accounts::Column::Balance,
                Expr::col(accounts::Column::Balance).add(*m),
            )
            .filter(accounts::Column::Id.eq(acct.as_str()))
            .exec(c)
            .await?;
    }
    Ok(t.id)
}

pub async fn open_member_account<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    member_id: &str,
) -> Result<String> {
    let id = format!("acct-{member_id}");
    accounts::Entity::insert(
        accounts::Model {
            id: id.clone(),
            kind: AccountKind::Member.as_str().into(),
            member_id: Some(member_id.to_owned()),
            community_id: None,
            programme_id: None,
            balance: 0,
            created_at: ctx.now_ms,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await?;
    Ok(id)
}

pub async fn member_account<C: ConnectionTrait>(c: &C, member_id: &str) -> Result<accounts::Model> {
    accounts::Entity::find()
        .filter(accounts::Column::MemberId.eq(member_id))
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("account of member", member_id))
}

pub async fn issuing_account<C: ConnectionTrait>(
    c: &C,
    programme_id: &str,
) -> Result<accounts::Model> {
    accounts::Entity::find()
        .filter(accounts::Column::Kind.eq(AccountKind::Issuing.as_str()))
        .filter(accounts::Column::ProgrammeId.eq(programme_id))
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("issuing account of programme", programme_id))
}

/// The id of the programme's issuing account, through the batch's memo when there is one (a
/// pushed group's sign-up bonuses and credits then read it once, not once a mutation).
pub async fn issuing_account_id_in<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    programme_id: &str,
) -> Result<String> {
    let memo = ctx.memo.as_ref().map(|m| &m.issuing);
    if let Some(id) = memo.and_then(|m| {
        m.lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(programme_id)
            .cloned()
    }) {
        return Ok(id);
    }
    let id = issuing_account(c, programme_id).await?.id;
    if let Some(m) = memo {
        m.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(programme_id.to_owned(), id.clone());
    }
    Ok(id)
}

/// Minutes of service credited to `account` during the programme-local day of `now`.
async fn credited_today<C: ConnectionTrait>(
    c: &C,
    account: &str,
    start: i64,
    end: i64,
) -> Result<i64> {
    let v = crate::sql::scalar_i64(
        c,
        "SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id \
         WHERE e.account_id = ? AND e.created_at >= ? AND e.created_at < ? AND e.amount > 0 AND t.kind IN (?, ?)",
        vec![
            account.into(),
            start.into(),
            end.into(),
            TransferKind::ServiceCredit.as_str().into(),
            TransferKind::Spend.as_str().into(),
        ],
    )
    .await?;
    Ok(v)
}

/// What a service credit is for.
pub struct CreditFor<'a> {
    pub volunteer_id: &'a str,
    /// The beneficiary (None for community activities: the programme pays).
    pub beneficiary_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub visit_id: Option<&'a str>,
    pub activity_id: Option<&'a str>,
    /// Unique per visit and volunteer (or activity and member): at most one credit.
    pub credit_key: String,
    pub memo: String,
}

/// Refuse an amount of minutes that staff set (`field`) which is not a whole number of the
/// programme's rounding units: credited, it would be rounded to another amount, silently.
pub async fn whole_units<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    field: &str,
    minutes: i64,
) -> Result<()> {
    // The city server takes what a device accepted (its rules may have been older): the
    // amount is rounded as before, never refused there, or every later step would be too.
    if ctx.replay {
        return Ok(());
    }
    let (_, rules) = super::rules_in(c, ctx).await?;
    let unit = i64::from(Ord::max(rules.rounding_minutes, 1));
    if minutes % unit == 0 {
        return Ok(());
    }
    Err(CoreError::invalid(
        field,
        &format!("须为{unit}分钟的整数倍（本项目按{unit}分钟取整）"),
        &format!("must be a whole number of {unit}-minute units (the programme's rounding)"),
    ))
}

/// Credit served minutes to a volunteer under the programme rules. Help that happened is
/// never lost: minutes over a limit are held as a flag for staff, and a beneficiary who
/// cannot pay is paid for by the programme, also flagged. Returns (credited, held).
pub async fn credit_service<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    raw_minutes: i64,
    f: CreditFor<'_>,
) -> Result<(i64, i64)> {
    let (programme_id, rules) = super::rules_in(c, ctx).await?;
    let minutes = rules.round(raw_minutes);
    if minutes == 0 {
        return Ok((0, 0));
    }
    let acct = member_account(c, f.volunteer_id).await?;
    let (start, end) = rules.local_day_bounds(ctx.now_ms);
    let today = credited_today(c, &acct.id, start, end).await?;
    let split = rules.split_credit(minutes, today, acct.balance);
    let mut payer = issuing_account_id_in(c, ctx, &programme_id).await?;
    let mut kind = TransferKind::ServiceCredit;
    if let (crate::domain::Payer::Beneficiary, Some(b)) = (rules.payer, f.beneficiary_id) {
        let bm = get_member(c, b).await?;
        let bacct = member_account(c, b).await?;
        let age = age_on(bm.date_of_birth, rules.local_date(ctx.now_ms));
        let can = rules.may_spend(age, bm.hardship).is_ok()
            && rules.may_pay(bacct.balance, split.credited);
        if can {
            payer = bacct.id;
            kind = TransferKind::Spend;
        } else if split.credited > 0 {
            flag(
                c,
                ctx,
                "paid_by_programme",
                b,
                &f,
                0,
                json!({"age": age, "balance": bacct.balance, "needed": split.credited}),
            )
            .await?;
        }
    }
    if split.credited > 0 {
        post(
            c,
            ctx,
            NewTransfer {
                id: ctx.derive_id(),
                kind,
                programme_id: programme_id.clone(),
                legs: vec![(payer, -split.credited), (acct.id.clone(), split.credited)],
                credit_key: Some(f.credit_key.clone()),
                order_id: f.order_id.map(str::to_owned),
                visit_id: f.visit_id.map(str::to_owned),
                activity_id: f.activity_id.map(str::to_owned),
                memo: f.memo.clone(),
                ..Default::default()
            },
        )
        .await?;
        super::notify(c, ctx, f.volunteer_id, "hours_credited", json!({"minutes": split.credited, "order_id": f.order_id, "activity_id": f.activity_id})).await?;
    }
    let mut held = 0;
    for (why, m) in &split.held {
        held += m;
        flag(
            c,
            ctx,
            why.as_str(),
            f.volunteer_id,
            &f,
            *m,
            json!({"reason": why}),
        )
        .await?;
    }
    Ok((split.credited, held))
}

pub(crate) async fn flag<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    kind: &str,
    member: &str,
    f: &CreditFor<'_>,
    held: i64,
    detail: serde_json::Value,
) -> Result<()> {
    let id = ctx.derive_id();
    ledger_flags::Entity::insert(
        ledger_flags::Model {
            id: id.clone(),
            kind: kind.into(),
            member_id: member.into(),
            order_id: f.order_id.map(str::to_owned),
            visit_id: f.visit_id.map(str::to_owned),
            activity_id: f.activity_id.map(str::to_owned),
            held_minutes: held,
            status: "open".into(),
            detail:
                json!({"volunteer": f.volunteer_id, "credit_key": f.credit_key, "info": detail})
                    .to_string(),
            created_at: ctx.now_ms,
            resolved_by: None,
            resolved_at: None,
            transfer_id: None,
        }
        .into_active_model(),
    )
    .exec_without_returning(c)
    .await?;
    let m = get_member(c, f.volunteer_id).await?;
    for s in super::staff_of(c, &m.home_community_id).await? {
        super::notify(
            c,
            ctx,
            &s,
            "ledger_flag",
            json!({"flag_id": id, "kind": kind, "minutes": held, "member": m.name}),
        )
        .await?;
    }
    Ok(())
}

pub async fn gift<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    transfer_id: &str,
    to: &str,
    minutes: i64,
    note: &str,
) -> Result<(Outcome, Audit)> {
    let (programme_id, rules) = super::rules_in(c, ctx).await?;
    if minutes <= 0 {
        return Err(CoreError::invalid(
            "minutes",
            "赠送时间必须大于0",
            "must be more than zero",
        ));
    }
    if to == a.id() {
        return Err(CoreError::invalid(
            "to",
            "不能赠送给自己",
            "cannot give hours to yourself",
        ));
    }
    let recipient = get_member(c, to).await?;
    let relation = super::members::relation_between(c, a.id(), to).await?;
    if !rules.gift_policy.allows(relation) {
        return Err(CoreError::new(Code::GiftNotAllowed)
            .with("allowed_zh", rules.gift_policy.describe(true))
            .with("allowed_en", rules.gift_policy.describe(false))
            .with("to", &recipient.name));
    }
    let from = member_account(c, a.id()).await?;
    if from.balance < minutes {
        return Err(CoreError::new(Code::InsufficientBalance)
            .with_minutes("balance", from.balance)
            .with_minutes("needed", minutes));
    }
    let dest = member_account(c, to).await?;
    if dest.balance + minutes > rules.balance_cap {
        return Err(CoreError::new(Code::BalanceCapExceeded).with_minutes("cap", rules.balance_cap));
    }
    post(
        c,
        ctx,
        NewTransfer {
            id: transfer_id.to_owned(),
            kind: TransferKind::Gift,
            programme_id,
            legs: vec![(from.id, -minutes), (dest.id, minutes)],
            memo: note.trim().to_owned(),
            ..Default::default()
        },
    )
    .await?;
    super::notify(
        c,
        ctx,
        to,
        "hours_gifted",
        json!({"minutes": minutes, "from": a.member.name}),
    )
    .await?;
    Ok((
        Outcome::id(transfer_id),
        Audit::of("transfer", transfer_id)
            .detail(json!({"to": to, "minutes": minutes, "relation": relation})),
    ))
}

pub async fn reverse<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    transfer_id: &str,
    reverses_id: &str,
    reason: &str,
) -> Result<(Outcome, Audit)> {
    if !(a.is_admin() || a.has(Role::Staff)) {
        return Err(CoreError::forbidden("correct the ledger"));
    }
    let reason = super::nonempty("reason", reason, 500)?;
    let orig = transfers::Entity::find_by_id(reverses_id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("transfer", reverses_id))?;
    if orig.reverses_id.is_some() {
        return Err(CoreError::invalid(
            "reverses_id",
            "不能冲正一笔冲正记录，请另做更正",
            "a reversal cannot itself be reversed",
        ));
    }
    let done = transfers::Entity::find()
        .filter(transfers::Column::ReversesId.eq(reverses_id))
        .one(c)
        .await?;
    if done.is_some() {
        return Err(CoreError::new(Code::AlreadyReversed));
    }
    let entries = ledger_entries::Entity::find()
        .filter(ledger_entries::Column::TransferId.eq(reverses_id))
        .all(c)
        .await?;
    // Staff may only correct the accounts of members they serve; administrators those of the
    // communities of the device they act on.
    if !a.is_admin() || a.reach.is_some() {
        for e in &entries {
            if let Some(acct) = accounts::Entity::find_by_id(e.account_id.clone())
                .one(c)
                .await?
            {
                if let Some(m) = acct.member_id {
                    let m = get_member(c, &m).await?;
                    a.require_staff_for(&m.home_community_id, "correct the ledger")?;
                }
            }
        }
    }
    post(
        c,
        ctx,
        NewTransfer {
            id: transfer_id.to_owned(),
            kind: TransferKind::Correction,
            programme_id: orig.programme_id.clone(),
            legs: entries
                .iter()
                .map(|e| (e.account_id.clone(), -e.amount))
                .collect(),
            reverses_id: Some(reverses_id.to_owned()),
            order_id: orig.order_id.clone(),
            memo: format!("冲正 / reversal of {reverses_id}"),
            reason: Some(reason.clone()),
            approved_by: Some(a.id().to_owned()),
            ..Default::default()
        },
    )
    .await?;
    Ok((
        Outcome::id(transfer_id),
        Audit::of("transfer", transfer_id)
            .detail(json!({"reverses": reverses_id, "reason": reason})),
    ))
}

async fn open_flag<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    flag_id: &str,
) -> Result<ledger_flags::Model> {
    let f = ledger_flags::Entity::find_by_id(flag_id.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("flag", flag_id))?;
    let m = get_member(c, &f.member_id).await?;
    a.require_staff_for(&m.home_community_id, "decide on held hours")?;
    if f.status != "open" {
        return Err(CoreError::illegal(&f.status, "decide"));
    }
    Ok(f)
}

/// Staff approve minutes that a limit held: they are credited from the issuing account.
pub async fn approve_held<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    flag_id: &str,
    transfer_id: &str,
    note: &str,
) -> Result<(Outcome, Audit)> {
    let f = open_flag(c, a, flag_id).await?;
    let (programme_id, _) = super::rules_in(c, ctx).await?;
    if f.held_minutes > 0 {
        let issuing = issuing_account_id_in(c, ctx, &programme_id).await?;
        let acct = member_account(c, &f.member_id).await?;
        post(
            c,
            ctx,
            NewTransfer {
                id: transfer_id.to_owned(),
                kind: TransferKind::ServiceCredit,
                programme_id,
                legs: vec![(issuing, -f.held_minutes), (acct.id, f.held_minutes)],
                credit_key: Some(format!("flag:{flag_id}")),
                order_id: f.order_id.clone(),
                visit_id: f.visit_id.clone(),
                activity_id: f.activity_id.clone(),
                memo: "工作人员批准的暂扣时间 / held minutes approved by staff".into(),
                reason: Some(note.to_owned()),
                approved_by: Some(a.id().to_owned()),
                ..Default::default()
            },
        )
        .await?;
    }
    let mut am = f.clone().into_active_model();
    am.status = Set("approved".into());
    am.resolved_by = Set(Some(a.id().to_owned()));
    am.resolved_at = Set(Some(ctx.now_ms));
    am.transfer_id = Set((f.held_minutes > 0).then(|| transfer_id.to_owned()));
    am.update(c).await?;
    Ok((
        Outcome::id(flag_id),
        Audit::of("ledger_flag", flag_id).detail(json!({"minutes": f.held_minutes, "note": note})),
    ))
}

pub async fn dismiss_held<C: ConnectionTrait>(
    c: &C,
    ctx: &Ctx,
    a: &Actor,
    flag_id: &str,
    note: &str,
) -> Result<(Outcome, Audit)> {
    let note = super::nonempty("note", note, 500)?;
    let f = open_flag(c, a, flag_id).await?;
    let mut am = f.into_active_model();
    am.status = Set("dismissed".into());
    am.resolved_by = Set(Some(a.id().to_owned()));
    am.resolved_at = Set(Some(ctx.now_ms));
    am.update(c).await?;
    Ok((
        Outcome::id(flag_id),
        Audit::of("ledger_flag", flag_id).detail(json!({"note": note})),
    ))
}

impl HoldReason {
    pub fn label_zh(self) -> &'static str {
        match self {
            HoldReason::MaxPerVisit => "超过单次上限",
            HoldReason::MaxPerDay => "超过每日上限",
            HoldReason::BalanceCap => "超过余额上限",
        }
    }
}
