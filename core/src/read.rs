//! The read side: order board, order detail, balances and the passbook, `ledger verify`, the
//! dashboard figures, reports, inbox, audit trail and staff queues. Every read that shows
//! personal data checks who is asking. Returns transport types (serde), never entities.
use crate::domain::{format_minutes, OrderStatus, Role, Vetting};
use crate::entities::{members, volunteer_profiles};
use crate::error::{CoreError, Result};
use crate::service::{get_member, members::may_act_for, Actor};
use crate::sql;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QueryResult, Value,
};
use serde::Serialize;

fn get<T: sea_orm::TryGetable>(r: &QueryResult, col: &str) -> Result<T> {
    Ok(r.try_get::<T>("", col)?)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct BoardItem {
    pub id: String,
    pub service_code: String,
    pub service_zh: String,
    pub service_en: String,
    pub field_code: String,
    pub urgent: bool,
    pub escalated: bool,
    pub community_id: String,
    pub place_hint: String,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub expected_minutes: i32,
    pub volunteers_needed: i32,
    pub accepted_count: i32,
    pub visits_total: i32,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(default)]
pub struct BoardQuery {
    /// Defaults to the actor's home community.
    pub community_id: Option<String>,
    pub field_code: Option<String>,
    pub page: u64,
    pub per_page: u64,
}

/// Open orders of one community that still need volunteers: urgent first, then oldest first.
/// Volunteers see their own community (and urgent orders widened to their subdistrict);
/// staff see the communities their center serves. Exact addresses are never on the board.
pub async fn board<C: ConnectionTrait>(c: &C, a: &Actor, q: &BoardQuery) -> Result<Vec<BoardItem>> {
    let community = q
        .community_id
        .clone()
        .unwrap_or_else(|| a.member.home_community_id.clone());
    let allowed = a.is_staff_for(&community)
        || (a.has(Role::Volunteer) && community == a.member.home_community_id);
    if !allowed {
        return Err(CoreError::new(crate::Code::OutOfScope).with("community", &community));
    }
    let per_page = q.per_page.clamp(1, 200);
    // Urgent orders nobody took in time are widened to the whole subdistrict: they head the
    // first page of the neighbouring communities' boards.
    let mut widened = Vec::new();
    if q.page == 0 {
        let place = crate::service::get_place(c, &community).await?;
        if let Some(parent) = place.parent_id {
            let mut vals: Vec<Value> = vec![parent.into(), community.clone().into()];
            if let Some(f) = &q.field_code {
                vals.push(f.clone().into());
            }
            widened = sql::all(c, &widened_sql(q.field_code.is_some()), vals).await?;
        }
    }
    let mut sql = format!("{BOARD_COLS} AND o.community_id = ?");
    let mut vals: Vec<Value> = vec![community.into()];
    if let Some(f) = &q.field_code {
        sql.push_str(" AND o.field_code = ?");
        vals.push(f.clone().into());
    }
    sql.push_str(" ORDER BY o.urgent DESC, o.created_at ASC LIMIT ? OFFSET ?");
    vals.push((per_page as i64).into());
    vals.push(((q.page * per_page) as i64).into());
    let rows = sql::all(c, &sql, vals).await?;
    widened.iter().chain(rows.iter()).map(board_item).collect()
}

/// The board's columns, of the orders that still need volunteers.
const BOARD_COLS: &str = "SELECT o.id, o.service_code, s.name_zh, s.name_en, o.field_code, o.urgent, o.escalated, o.community_id, o.place_hint, \
         o.window_start, o.window_end, o.expected_minutes, o.volunteers_needed, o.accepted_count, o.visits_total, o.created_at \
         FROM orders o JOIN services s ON s.code = o.service_code \
         WHERE o.status IN ('open', 'accepted') AND o.accepted_count < o.volunteers_needed";

/// The widened orders of the other communities of a subdistrict (parameters: the
/// subdistrict, the community, and the service field if `field`). `o.escalated` stands as it
/// is, not compared with a parameter: it is the condition of the partial index of widened
/// orders (migration 9), which the planner can then use.
fn widened_sql(field: bool) -> String {
    format!(
        "{BOARD_COLS} AND o.escalated AND o.community_id IN (SELECT id FROM places WHERE parent_id = ? AND id <> ?){} ORDER BY o.created_at ASC LIMIT 20",
        if field { " AND o.field_code = ?" } else { "" }
    )
}

fn board_item(r: &QueryResult) -> Result<BoardItem> {
    Ok(BoardItem {
        id: get(r, "id")?,
        service_code: get(r, "service_code")?,
        service_zh: get(r, "name_zh")?,
        service_en: get(r, "name_en")?,
        field_code: get(r, "field_code")?,
        urgent: get(r, "urgent")?,
        escalated: get(r, "escalated")?,
        community_id: get(r, "community_id")?,
        place_hint: get(r, "place_hint")?,
        window_start: get(r, "window_start")?,
        window_end: get(r, "window_end")?,
        expected_minutes: get(r, "expected_minutes")?,
        volunteers_needed: get(r, "volunteers_needed")?,
        accepted_count: get(r, "accepted_count")?,
        visits_total: get(r, "visits_total")?,
        created_at: get(r, "created_at")?,
    })
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OrderView {
    pub id: String,
    pub status: String,
    pub status_zh: String,
    pub service_zh: String,
    pub service_en: String,
    pub description: String,
    pub urgent: bool,
    pub beneficiary_name: String,
    pub posted_by_name: String,
    pub place_hint: String,
    /// Only for the accepted volunteers, the beneficiary and proxies, and staff.
    pub address: Option<String>,
    pub beneficiary_phone: Option<String>,
    pub expected_minutes: i32,
    pub volunteers_needed: i32,
    pub accepted_count: i32,
    pub visits_total: i32,
    pub visits_done: i32,
    pub volunteers: Vec<String>,
    pub created_at: i64,
}

pub async fn order_detail<C: ConnectionTrait>(c: &C, a: &Actor, id: &str) -> Result<OrderView> {
    let o = crate::service::orders::get_order(c, id).await?;
    let b = get_member(c, &o.beneficiary_id).await?;
    let poster = get_member(c, &o.posted_by).await?;
    let vols = sql::all(
        c,
        "SELECT m.id, m.name FROM order_volunteers v JOIN members m ON m.id = v.volunteer_id WHERE v.order_id = ? AND v.status = 'accepted' ORDER BY v.accepted_at",
        vec![id.into()],
    )
    .await?;
    let vol_ids: Vec<String> = vols
        .iter()
        .filter_map(|r| get::<String>(r, "id").ok())
        .collect();
    let is_mine = vol_ids.iter().any(|v| v == a.id());
    let verified = volunteer_profiles::Entity::find_by_id(a.id().to_owned())
        .one(c)
        .await?
        .is_some_and(|p| p.vetting == Vetting::Verified.as_str());
    let close = (is_mine && verified) || may_act_for(c, a, &b).await?;
    let visible = close || (a.has(Role::Volunteer) && a.member.home_community_id == o.community_id);
    if !visible {
        return Err(CoreError::forbidden("see this order"));
    }
    let svc = crate::entities::services::Entity::find_by_id(o.service_code.clone())
        .one(c)
        .await?;
    let status = OrderStatus::parse(&o.status).unwrap_or(OrderStatus::Open);
    Ok(OrderView {
        id: o.id,
        status: o.status.clone(),
        status_zh: status.label_zh().into(),
        service_zh: svc.as_ref().map(|s| s.name_zh.clone()).unwrap_or_default(),
        service_en: svc.map(|s| s.name_en).unwrap_or_default(),
        description: o.description,
        urgent: o.urgent,
        beneficiary_name: b.name.clone(),
        posted_by_name: poster.name,
        place_hint: o.place_hint,
        address: close.then_some(o.address),
        beneficiary_phone: close.then_some(b.phone),
        expected_minutes: o.expected_minutes,
        volunteers_needed: o.volunteers_needed,
        accepted_count: o.accepted_count,
        visits_total: o.visits_total,
        visits_done: o.visits_done,
        volunteers: vols
            .iter()
            .filter_map(|r| get::<String>(r, "name").ok())
            .collect(),
        created_at: o.created_at,
    })
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OrderRow {
    pub id: String,
    pub status: String,
    pub service_zh: String,
    pub beneficiary_name: String,
    pub urgent: bool,
    pub place_hint: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Orders for staff (all of a community, optionally by status) or a member's own orders
/// (as beneficiary, poster or accepted volunteer) when `community` is None.
pub async fn list_orders<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    community: Option<&str>,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<OrderRow>> {
    let mut sql = String::from(
        "SELECT o.id, o.status, s.name_zh, m.name, o.urgent, o.place_hint, o.created_at, o.updated_at \
         FROM orders o JOIN services s ON s.code = o.service_code JOIN members m ON m.id = o.beneficiary_id WHERE ",
    );
    let mut vals: Vec<Value> = Vec::new();
    match community {
        Some(cm) => {
            a.require_staff_for(cm, "list every order of a community")?;
            sql.push_str("o.community_id = ?");
            vals.push(cm.into());
        }
        None => {
            sql.push_str("(o.beneficiary_id = ? OR o.posted_by = ? OR o.id IN (SELECT order_id FROM order_volunteers WHERE volunteer_id = ? AND status = 'accepted'))");
            for _ in 0..3 {
                vals.push(a.id().into());
            }
        }
    }
    if let Some(s) = status {
        sql.push_str(" AND o.status = ?");
        vals.push(s.into());
    }
    sql.push_str(" ORDER BY o.updated_at DESC LIMIT ?");
    vals.push((limit.clamp(1, 10_000) as i64).into());
    sql::all(c, &sql, vals)
        .await?
        .iter()
        .map(|r| {
            Ok(OrderRow {
                id: get(r, "id")?,
                status: get(r, "status")?,
                service_zh: get(r, "name_zh")?,
                beneficiary_name: get(r, "name")?,
                urgent: get(r, "urgent")?,
                place_hint: get(r, "place_hint")?,
                created_at: get(r, "created_at")?,
                updated_at: get(r, "updated_at")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct EntryView {
    pub entry_id: String,
    pub transfer_id: String,
    pub at: i64,
    pub kind: String,
    pub amount: i64,
    pub memo: String,
    /// Balance after this entry (passbook only).
    pub balance_after: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct BalanceView {
    pub member_id: String,
    pub name: String,
    pub account_id: String,
    pub balance: i64,
    pub balance_text_zh: String,
    pub entries: Vec<EntryView>,
}

async fn may_see_account<C: ConnectionTrait>(c: &C, a: &Actor, m: &members::Model) -> Result<()> {
    if may_act_for(c, a, m).await? {
        Ok(())
    } else {
        Err(CoreError::forbidden("see another member's time account"))
    }
}

fn entry(r: &QueryResult) -> Result<EntryView> {
    Ok(EntryView {
        entry_id: get(r, "id")?,
        transfer_id: get(r, "transfer_id")?,
        at: get(r, "created_at")?,
        kind: get(r, "kind")?,
        amount: get(r, "amount")?,
        memo: get(r, "memo")?,
        balance_after: None,
    })
}

/// A member's balance and their most recent `limit` entries (newest first).
pub async fn balance<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    member_id: &str,
    limit: u64,
) -> Result<BalanceView> {
    let m = get_member(c, member_id).await?;
    may_see_account(c, a, &m).await?;
    let acct = crate::service::ledger::member_account(c, member_id).await?;
    let rows = sql::all(
        c,
        "SELECT e.id, e.transfer_id, e.created_at, t.kind, e.amount, t.memo FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id \
         WHERE e.account_id = ? ORDER BY e.created_at DESC, e.id DESC LIMIT ?",
        vec![acct.id.clone().into(), (limit.min(1000) as i64).into()],
    )
    .await?;
    Ok(BalanceView {
        member_id: m.id,
        name: m.name,
        account_id: acct.id,
        balance: acct.balance,
        balance_text_zh: format_minutes(acct.balance, true),
        entries: rows.iter().map(entry).collect::<Result<_>>()?,
    })
}

/// The passbook (存折): every entry oldest first with the running balance.
pub async fn passbook<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    member_id: &str,
) -> Result<BalanceView> {
    let m = get_member(c, member_id).await?;
    may_see_account(c, a, &m).await?;
    let acct = crate::service::ledger::member_account(c, member_id).await?;
    let rows = sql::all(
        c,
        "SELECT e.id, e.transfer_id, e.created_at, t.kind, e.amount, t.memo FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id \
         WHERE e.account_id = ? ORDER BY e.created_at ASC, e.id ASC",
        vec![acct.id.clone().into()],
    )
    .await?;
    let mut running = 0;
    let mut entries = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut e = entry(r)?;
        running += e.amount;
        e.balance_after = Some(running);
        entries.push(e);
    }
    Ok(BalanceView {
        member_id: m.id,
        name: m.name,
        account_id: acct.id,
        balance: acct.balance,
        balance_text_zh: format_minutes(acct.balance, true),
        entries,
    })
}

/// Printable passbook text (fixed-width, Chinese labels, programme time zone).
pub fn passbook_text(p: &BalanceView, tz: chrono_tz::Tz) -> String {
    use chrono::TimeZone;
    let kind_zh = |k: &str| match k {
        "service_credit" => "服务存入",
        "spend" => "兑换服务",
        "gift" => "赠送",
        "signup_bonus" => "注册奖励",
        "correction" => "冲正更正",
        _ => "其他",
    };
    let mut s = format!(
        "时间银行存折 / Time bank passbook\n户名：{}    账号：{}\n",
        p.name, p.account_id
    );
    s.push_str(&format!(
        "{:<17} {:<8} {:>12} {:>12}  摘要\n",
        "日期时间", "类别", "发生额", "余额"
    ));
    for e in &p.entries {
        let when = tz
            .timestamp_millis_opt(e.at)
            .single()
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        s.push_str(&format!(
            "{:<17} {:<8} {:>12} {:>12}  {}\n",
            when,
            kind_zh(&e.kind),
            format_minutes(e.amount, true),
            format_minutes(e.balance_after.unwrap_or(0), true),
            e.memo
        ));
    }
    s.push_str(&format!("当前余额：{}\n", format_minutes(p.balance, true)));
    s
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AccountMismatch {
    pub account_id: String,
    pub member_name: Option<String>,
    pub stored_balance: i64,
    pub sum_of_entries: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct VerifyReport {
    pub accounts: i64,
    pub transfers: i64,
    pub entries: i64,
    pub total_of_all_entries: i64,
    pub mismatched_accounts: Vec<AccountMismatch>,
    pub unbalanced_transfers: Vec<(String, i64)>,
    /// Whether this database is a device's that serves only some of the communities it knows
    /// of. It then holds a transfer between two communities with only its own side's entries,
    /// and a programme's accounts with only its communities' share of their entries: the
    /// whole ledger sums to zero on the city server and on a device of every community only.
    pub some_communities: bool,
    /// On a device of some communities: the programme's own accounts (the issuing account),
    /// whose balance is the city's but whose entries here are only those of this device's
    /// communities (the others' are on their devices and on the city server, which checks
    /// them). Not a fault, so not in `mismatched_accounts`.
    pub held_in_part: Vec<AccountMismatch>,
    /// On a device of some communities: transfers whose entries here do not sum to zero, as a
    /// transfer between a member of this device's communities and a member of another (a gift,
    /// a payment for help) has only this side's entry here (the other's is on the other
    /// community's devices). The city server checks them whole. Elsewhere these are
    /// `unbalanced_transfers`.
    pub transfers_held_in_part: Vec<(String, i64)>,
}

impl VerifyReport {
    /// Every account adds up and, where the database holds whole transfers, every transfer and
    /// the whole ledger sum to zero.
    pub fn ok(&self) -> bool {
        self.mismatched_accounts.is_empty()
            && self.unbalanced_transfers.is_empty()
            && (self.some_communities || self.total_of_all_entries == 0)
    }
}

/// Recompute every balance from its entries, check every transfer sums to zero and the whole
/// ledger sums to zero. On a device that serves only some communities, the programme's own
/// accounts and transfers with another community cannot be checked whole (see
/// [`VerifyReport::some_communities`]). (At most one credit per
/// visit and volunteer is a unique constraint on `transfers.credit_key`, so the database
/// itself refuses a second one.) `progress` is called with a step number (1..=3) as the work
/// goes on. Each step is one scan of a covering index.
pub async fn verify<C: ConnectionTrait>(
    c: &C,
    progress: &(dyn Fn(u64, &str) + Sync),
) -> Result<VerifyReport> {
    use std::collections::HashMap;
    progress(1, "balances");
    let sums = sql::all(c, "SELECT account_id, CAST(SUM(amount) AS BIGINT) AS s, CAST(COUNT(*) AS BIGINT) AS n FROM ledger_entries GROUP BY account_id", vec![]).await?;
    let mut by_account: HashMap<String, i64> = HashMap::with_capacity(sums.len());
    let (mut entries, mut total) = (0i64, 0i64);
    for r in &sums {
        let s: i64 = get(r, "s")?;
        entries += get::<i64>(r, "n")?;
        total += s;
        by_account.insert(get(r, "account_id")?, s);
    }
    let accts = sql::all(
        c,
        "SELECT a.id, a.balance, m.name, a.member_id IS NULL AND a.community_id IS NULL AS city_wide FROM accounts a LEFT JOIN members m ON m.id = a.member_id",
        vec![],
    )
    .await?;
    let in_part = holds_some_communities(c).await?;
    let (mut mismatched_accounts, mut held_in_part) = (Vec::new(), Vec::new());
    for r in &accts {
        let id: String = get(r, "id")?;
        let stored: i64 = get(r, "balance")?;
        let sum = by_account.get(&id).copied().unwrap_or(0);
        if stored != sum {
            let m = AccountMismatch {
                account_id: id,
                member_name: get(r, "name")?,
                stored_balance: stored,
                sum_of_entries: sum,
            };
            if in_part && get::<bool>(r, "city_wide")? {
                held_in_part.push(m);
            } else {
                mismatched_accounts.push(m);
            }
        }
    }
    progress(2, "transfers");
    let rows = sql::all(
        c,
        "SELECT transfer_id, CAST(SUM(amount) AS BIGINT) AS s FROM ledger_entries GROUP BY transfer_id HAVING SUM(amount) <> 0",
        vec![],
    )
    .await?;
    let unbalanced = rows
        .iter()
        .map(|r| Ok((get(r, "transfer_id")?, get(r, "s")?)))
        .collect::<Result<Vec<_>>>()?;
    let (unbalanced_transfers, transfers_held_in_part) = if in_part {
        (Vec::new(), unbalanced)
    } else {
        (unbalanced, Vec::new())
    };
    progress(3, "counting");
    let transfers = sql::scalar_i64(c, "SELECT COUNT(*) FROM transfers", vec![]).await?;
    Ok(VerifyReport {
        accounts: accts.len() as i64,
        transfers,
        entries,
        total_of_all_entries: total,
        mismatched_accounts,
        unbalanced_transfers,
        some_communities: in_part,
        held_in_part,
        transfers_held_in_part,
    })
}

/// Whether this database is a device's that serves only some of the communities it knows of
/// (its pulled places): it then holds a transfer's entries on a programme's own account only
/// for its communities. False for the city server, a device of every community, and a
/// database never enrolled.
async fn holds_some_communities<C: ConnectionTrait>(c: &C) -> Result<bool> {
    let Some(served) = crate::sync::enrolled_partitions(c).await? else {
        return Ok(false);
    };
    let communities = sql::all(
        c,
        "SELECT id FROM places WHERE level = ?",
        vec![crate::domain::types::PlaceLevel::Community.as_str().into()],
    )
    .await?;
    for r in &communities {
        if !served.contains(&get::<String>(r, "id")?) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Count {
    pub key: String,
    pub label_zh: String,
    pub label_en: String,
    pub orders_completed: i64,
    pub minutes_credited: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Dashboard {
    pub volunteers_registered: i64,
    pub volunteers_active_30d: i64,
    pub orders_open: i64,
    pub orders_in_service: i64,
    pub orders_completed_today: i64,
    pub orders_completed_month: i64,
    pub minutes_deposited: i64,
    pub minutes_spent: i64,
    pub median_minutes_to_accept: Option<i64>,
    pub satisfaction_avg: Option<f64>,
    pub ratings: i64,
    pub by_field: Vec<Count>,
    pub by_community: Vec<Count>,
}

/// Live figures for a set of communities (a center's) or the whole database (None).
pub async fn dashboard<C: ConnectionTrait>(
    c: &C,
    communities: Option<&[String]>,
    now_ms: i64,
) -> Result<Dashboard> {
    let (_, rules) = crate::service::admin::rules(c).await?;
    let (day_start, _) = rules.local_day_bounds(now_ms);
    let month_start = {
        use chrono::{Datelike, TimeZone};
        let d = rules.local_date(now_ms).with_day(1).unwrap_or_default();
        d.and_hms_opt(0, 0, 0)
            .and_then(|n| rules.tz().from_local_datetime(&n).earliest())
            .map(|t| t.timestamp_millis())
            .unwrap_or(day_start)
    };
    let (filter, vals): (String, Vec<Value>) = match communities {
        Some(list) if !list.is_empty() => {
            let ph = vec!["?"; list.len()].join(",");
            (
                format!(" AND o.community_id IN ({ph})"),
                list.iter().map(|s| s.clone().into()).collect(),
            )
        }
        Some(_) => (" AND 1 = 0".into(), vec![]),
        None => (String::new(), vec![]),
    };
    let mfilter = filter.replace("o.community_id", "m.home_community_id");
    let with = |extra: Vec<Value>| -> Vec<Value> {
        extra.into_iter().chain(vals.iter().cloned()).collect()
    };
    let n = |sql: String, extra: Vec<Value>| {
        let v = with(extra);
        async move { sql::scalar_i64(c, &sql, v).await }
    };
    let mut d = Dashboard {
        volunteers_registered: n(format!("SELECT COUNT(*) FROM volunteer_profiles p JOIN members m ON m.id = p.member_id WHERE m.active = ?{mfilter}"), vec![true.into()]).await?,
        volunteers_active_30d: n(
            format!("SELECT COUNT(DISTINCT a.volunteer_id) FROM visit_attendance a JOIN orders o ON o.id = a.order_id WHERE a.checked_in_at >= ?{filter}"),
            vec![(now_ms - 30 * 86_400_000).into()],
        )
        .await?,
        orders_open: n(format!("SELECT COUNT(*) FROM orders o WHERE o.status IN ('open', 'accepted'){filter}"), vec![]).await?,
        orders_in_service: n(format!("SELECT COUNT(*) FROM orders o WHERE o.status IN ('in_service', 'awaiting_confirmation'){filter}"), vec![]).await?,
        orders_completed_today: n(format!("SELECT COUNT(*) FROM orders o WHERE o.status = 'completed' AND o.updated_at >= ?{filter}"), vec![day_start.into()]).await?,
        orders_completed_month: n(format!("SELECT COUNT(*) FROM orders o WHERE o.status = 'completed' AND o.updated_at >= ?{filter}"), vec![month_start.into()]).await?,
        minutes_deposited: n(
            format!("SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id JOIN accounts ac ON ac.id = e.account_id JOIN members m ON m.id = ac.member_id WHERE t.kind IN ('service_credit', 'spend') AND e.amount > 0{mfilter}"),
            vec![],
        )
        .await?,
        minutes_spent: n(
            format!("SELECT COALESCE(-SUM(e.amount), 0) FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id JOIN accounts ac ON ac.id = e.account_id JOIN members m ON m.id = ac.member_id WHERE t.kind = 'spend' AND e.amount < 0{mfilter}"),
            vec![],
        )
        .await?,
        ..Default::default()
    };
    let waits = sql::all(c, &format!("SELECT o.first_accepted_at - o.created_at AS w FROM orders o WHERE o.first_accepted_at IS NOT NULL{filter} ORDER BY w"), vals.clone()).await?;
    if !waits.is_empty() {
        let w: i64 = get(&waits[waits.len() / 2], "w")?;
        d.median_minutes_to_accept = Some(w / 60_000);
    }
    let r = sql::one(c, &format!("SELECT CAST(COUNT(f.rating) AS BIGINT) AS n, CAST(SUM(f.rating) AS BIGINT) AS s FROM feedback f JOIN orders o ON o.id = f.order_id WHERE f.rating IS NOT NULL{filter}"), vals.clone()).await?;
    if let Some(r) = r {
        d.ratings = get::<Option<i64>>(&r, "n")?.unwrap_or(0);
        let s = get::<Option<i64>>(&r, "s")?.unwrap_or(0);
        if d.ratings > 0 {
            d.satisfaction_avg = Some((s as f64 / d.ratings as f64 * 100.0).round() / 100.0);
        }
    }
    d.by_field = grouped(
        c,
        "o.field_code",
        "f.name_zh",
        "f.name_en",
        "JOIN service_fields f ON f.code = o.field_code",
        &filter,
        &vals,
    )
    .await?;
    d.by_community = grouped(
        c,
        "o.community_id",
        "p.name_zh",
        "p.name_en",
        "JOIN places p ON p.id = o.community_id",
        &filter,
        &vals,
    )
    .await?;
    Ok(d)
}

async fn grouped<C: ConnectionTrait>(
    c: &C,
    key: &str,
    zh: &str,
    en: &str,
    join: &str,
    filter: &str,
    vals: &[Value],
) -> Result<Vec<Count>> {
    let sql = format!(
        "SELECT {key} AS k, {zh} AS zh, {en} AS en, CAST(SUM(CASE WHEN o.status = 'completed' THEN 1 ELSE 0 END) AS BIGINT) AS done, \
         CAST(COALESCE((SELECT SUM(e.amount) FROM transfers t JOIN ledger_entries e ON e.transfer_id = t.id JOIN orders o2 ON o2.id = t.order_id \
           WHERE t.kind IN ('service_credit', 'spend') AND e.amount > 0 AND {k2} = {key}), 0) AS BIGINT) AS mins \
         FROM orders o {join} WHERE 1 = 1{filter} GROUP BY {key}, {zh}, {en} ORDER BY {key}",
        k2 = key.replace("o.", "o2."),
    );
    sql::all(c, &sql, vals.to_vec())
        .await?
        .iter()
        .map(|r| {
            Ok(Count {
                key: get(r, "k")?,
                label_zh: get(r, "zh")?,
                label_en: get(r, "en")?,
                orders_completed: get(r, "done")?,
                minutes_credited: get(r, "mins")?,
            })
        })
        .collect()
}

/// Report dimension for CSV exports to funders and government.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ReportBy {
    Field,
    Community,
    Month,
}

/// Report rows: (dimension, orders posted, completed, minutes credited, volunteers served).
pub async fn report_csv<C: ConnectionTrait>(c: &C, a: &Actor, by: ReportBy) -> Result<String> {
    if !(a.is_admin() || a.has(Role::Staff)) {
        return Err(CoreError::forbidden("export reports"));
    }
    let (_, rules) = crate::service::admin::rules(c).await?;
    let scope: Vec<String> = if a.is_admin() {
        vec![]
    } else {
        a.staff_scope.iter().cloned().collect()
    };
    let filter = if scope.is_empty() {
        String::new()
    } else {
        format!(
            " AND o.community_id IN ({})",
            vec!["?"; scope.len()].join(",")
        )
    };
    let vals: Vec<Value> = scope.iter().map(|s| s.clone().into()).collect();
    let rows = sql::all(
        c,
        &format!(
            "SELECT o.id, o.field_code, f.name_zh AS fzh, p.name_zh AS pzh, o.status, o.created_at, \
             CAST(COALESCE((SELECT SUM(e.amount) FROM transfers t JOIN ledger_entries e ON e.transfer_id = t.id WHERE t.order_id = o.id AND t.kind IN ('service_credit','spend') AND e.amount > 0), 0) AS BIGINT) AS mins, \
             CAST((SELECT COUNT(DISTINCT a.volunteer_id) FROM visit_attendance a WHERE a.order_id = o.id) AS BIGINT) AS vols \
             FROM orders o JOIN service_fields f ON f.code = o.field_code JOIN places p ON p.id = o.community_id WHERE 1 = 1{filter}"
        ),
        vals,
    )
    .await?;
    let mut agg: std::collections::BTreeMap<String, (i64, i64, i64, i64)> = Default::default();
    for r in &rows {
        let key = match by {
            ReportBy::Field => format!(
                "{} {}",
                get::<String>(r, "field_code")?,
                get::<String>(r, "fzh")?
            ),
            ReportBy::Community => get::<String>(r, "pzh")?,
            ReportBy::Month => rules
                .local_date(get(r, "created_at")?)
                .format("%Y-%m")
                .to_string(),
        };
        let e = agg.entry(key).or_default();
        e.0 += 1;
        if get::<String>(r, "status")? == "completed" {
            e.1 += 1;
        }
        e.2 += get::<i64>(r, "mins")?;
        e.3 += get::<i64>(r, "vols")?;
    }
    let head = match by {
        ReportBy::Field => "service_field",
        ReportBy::Community => "community",
        ReportBy::Month => "month",
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| CoreError::new(crate::Code::Io).with("detail", e);
    w.write_record([
        head,
        "orders_posted",
        "orders_completed",
        "minutes_credited",
        "hours_credited",
        "volunteer_visits",
    ])
    .map_err(io)?;
    for (k, (p, d, m, v)) in agg {
        w.write_record([
            k,
            p.to_string(),
            d.to_string(),
            m.to_string(),
            format!("{:.2}", m as f64 / 60.0),
            v.to_string(),
        ])
        .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CoreError::new(crate::Code::Io).with("detail", e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every table as JSON (administrators only).
pub async fn export_json<C: ConnectionTrait>(c: &C, a: &Actor) -> Result<serde_json::Value> {
    a.require_admin("export all data")?;
    use crate::entities::*;
    macro_rules! dump {
        ($($t:ident),*) => {{
            let mut m = serde_json::Map::new();
            $( m.insert(stringify!($t).into(), serde_json::to_value($t::Entity::find().all(c).await?).unwrap_or_default()); )*
            m
        }};
    }
    let mut m = dump!(
        places,
        centers,
        center_communities,
        programmes,
        service_fields,
        services,
        members,
        member_roles,
        family_links,
        volunteer_profiles,
        orders,
        order_visits,
        order_volunteers,
        visit_attendance,
        activities,
        activity_signups,
        accounts,
        transfers,
        ledger_entries,
        ledger_flags,
        feedback,
        safeguarding_reports,
        inbox_messages,
        audit_log,
        outbox
    );
    // PIN hashes stay on the device.
    if let Some(serde_json::Value::Array(ms)) = m.get_mut("members") {
        for x in ms {
            x["pin_hash"] = serde_json::Value::Null;
        }
    }
    Ok(
        serde_json::json!({ "format": "timebank-export", "version": 1, "schema_version": timebank_migrations::SCHEMA_VERSION, "tables": m }),
    )
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct InboxItem {
    pub id: String,
    pub kind: String,
    pub params: serde_json::Value,
    pub read: bool,
    pub created_at: i64,
}

pub async fn inbox<C: ConnectionTrait>(c: &C, a: &Actor, limit: u64) -> Result<Vec<InboxItem>> {
    let rows = sql::all(c, "SELECT id, kind, params, read_at, created_at FROM inbox_messages WHERE member_id = ? ORDER BY created_at DESC, id DESC LIMIT ?", vec![a.id().into(), (limit.min(1000) as i64).into()]).await?;
    rows.iter()
        .map(|r| {
            Ok(InboxItem {
                id: get(r, "id")?,
                kind: get(r, "kind")?,
                params: serde_json::from_str(&get::<String>(r, "params")?).unwrap_or_default(),
                read: get::<Option<i64>>(r, "read_at")?.is_some(),
                created_at: get(r, "created_at")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditRow {
    pub at: i64,
    pub actor: String,
    pub on_behalf_of: Option<String>,
    pub device_id: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub detail: serde_json::Value,
}

/// The audit trail (staff and administrators), optionally of one entity.
pub async fn audit<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    entity_id: Option<&str>,
    limit: u64,
) -> Result<Vec<AuditRow>> {
    if !(a.is_admin() || a.has(Role::Staff)) {
        return Err(CoreError::forbidden("read the audit trail"));
    }
    let mut sql = String::from(
        "SELECT l.at, COALESCE(m.name, l.actor_id) AS actor, b.name AS behalf, l.device_id, l.action, l.entity, l.entity_id, l.detail \
         FROM audit_log l LEFT JOIN members m ON m.id = l.actor_id LEFT JOIN members b ON b.id = l.on_behalf_of",
    );
    let mut vals: Vec<Value> = vec![];
    if let Some(e) = entity_id {
        sql.push_str(" WHERE l.entity_id = ?");
        vals.push(e.into());
    }
    sql.push_str(" ORDER BY l.at DESC, l.id DESC LIMIT ?");
    vals.push((limit.min(10_000) as i64).into());
    sql::all(c, &sql, vals)
        .await?
        .iter()
        .map(|r| {
            Ok(AuditRow {
                at: get(r, "at")?,
                actor: get(r, "actor")?,
                on_behalf_of: get(r, "behalf")?,
                device_id: get(r, "device_id")?,
                action: get(r, "action")?,
                entity: get(r, "entity")?,
                entity_id: get(r, "entity_id")?,
                detail: serde_json::from_str(&get::<String>(r, "detail")?).unwrap_or_default(),
            })
        })
        .collect()
}

/// Safeguarding reports: staff of the communities concerned only, never volunteers.
pub async fn safeguarding<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
) -> Result<Vec<crate::entities::safeguarding_reports::Model>> {
    if !(a.is_admin() || a.has(Role::Staff)) {
        return Err(CoreError::forbidden("read safeguarding reports"));
    }
    let all = crate::entities::safeguarding_reports::Entity::find()
        .all(c)
        .await?;
    Ok(all
        .into_iter()
        .filter(|r| a.is_staff_for(&r.community_id))
        .collect())
}

/// One held amount waiting for a staff decision: minutes over a limit, or help whose order
/// another volunteer took first while both were offline.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct HeldRow {
    pub id: String,
    /// `max_per_visit`, `max_per_day`, `balance_cap`, `paid_by_programme`, `contested_completion`.
    pub kind: String,
    pub member_id: String,
    pub member_name: String,
    pub order_id: Option<String>,
    pub held_minutes: i64,
    pub created_at: i64,
    /// What is known of the help (for a contested completion: `taken_by`, `checked_in_at`,
    /// `checked_out_at`, `note`, `resident_confirmed_at`).
    pub info: serde_json::Value,
}

/// Held minutes and flagged help waiting for a staff decision, of the communities the actor
/// is staff of.
pub async fn held<C: ConnectionTrait>(c: &C, a: &Actor) -> Result<Vec<HeldRow>> {
    if !(a.is_admin() || a.has(Role::Staff)) {
        return Err(CoreError::forbidden("see held hours"));
    }
    let rows = crate::entities::ledger_flags::Entity::find()
        .filter(crate::entities::ledger_flags::Column::Status.eq("open"))
        .order_by_asc(crate::entities::ledger_flags::Column::CreatedAt)
        .all(c)
        .await?;
    let mut out = Vec::new();
    for f in rows {
        let m = get_member(c, &f.member_id).await?;
        if a.is_staff_for(&m.home_community_id) {
            let detail: serde_json::Value =
                serde_json::from_str(&f.detail).unwrap_or(serde_json::Value::Null);
            out.push(HeldRow {
                id: f.id,
                kind: f.kind,
                member_id: f.member_id,
                member_name: m.name,
                order_id: f.order_id,
                held_minutes: f.held_minutes,
                created_at: f.created_at,
                info: detail
                    .get("info")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub community: String,
    pub roles: Vec<String>,
    pub vetting: Option<String>,
    pub age: i32,
}

/// Members of a community with their contact details: staff of that community only.
pub async fn members_of<C: ConnectionTrait>(
    c: &C,
    a: &Actor,
    community: &str,
    now_ms: i64,
) -> Result<Vec<MemberRow>> {
    a.require_staff_for(community, "see residents' personal data")?;
    let (_, rules) = crate::service::admin::rules(c).await?;
    let today = rules.local_date(now_ms);
    let rows = sql::all(
        c,
        "SELECT m.id, m.name, m.phone, m.date_of_birth, p.name_zh, v.vetting, \
         (SELECT GROUP_CONCAT_ROLES FROM member_roles r WHERE r.member_id = m.id) AS roles \
         FROM members m JOIN places p ON p.id = m.home_community_id LEFT JOIN volunteer_profiles v ON v.member_id = m.id \
         WHERE m.home_community_id = ? ORDER BY m.name"
            .replace(
                "GROUP_CONCAT_ROLES",
                if c.get_database_backend() == sea_orm::DbBackend::Postgres { "STRING_AGG(r.role, ',')" } else { "GROUP_CONCAT(r.role, ',')" },
            )
            .as_str(),
        vec![community.into()],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let dob: chrono::NaiveDate = get(r, "date_of_birth")?;
            Ok(MemberRow {
                id: get(r, "id")?,
                name: get(r, "name")?,
                phone: get(r, "phone")?,
                community: get(r, "name_zh")?,
                roles: get::<Option<String>>(r, "roles")?
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                vetting: get(r, "vetting")?,
                age: crate::domain::rules::age_on(dob, today),
            })
        })
        .collect()
}

/// Find a member by id or phone (for the CLI's `--as` and arguments).
pub async fn find_member<C: ConnectionTrait>(c: &C, key: &str) -> Result<members::Model> {
    use sea_orm::{ColumnTrait, QueryFilter};
    if let Some(m) = members::Entity::find_by_id(key.to_owned()).one(c).await? {
        return Ok(m);
    }
    let phone = crate::service::members::normalise_phone(key).unwrap_or_else(|_| key.to_owned());
    members::Entity::find()
        .filter(members::Column::Phone.eq(phone))
        .one(c)
        .await?
        .ok_or_else(|| CoreError::not_found("member", key))
}

/// Find a community by id or Chinese/English name.
pub async fn find_community<C: ConnectionTrait>(
    c: &C,
    key: &str,
) -> Result<crate::entities::places::Model> {
    let rows = sql::all(c, "SELECT id FROM places WHERE level = 'community' AND (id = ? OR name_zh = ? OR name_en = ?)", vec![key.into(), key.into(), key.into()]).await?;
    match rows.first() {
        Some(r) => crate::service::get_place(c, &get::<String>(r, "id")?).await,
        None => Err(CoreError::not_found("community", key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The widened orders are read from their own index, with or without a service field:
    /// without it every open order of the neighbouring communities was read (28 ms a board
    /// page in the benchmark), and with the field the field board's index was taken instead.
    #[tokio::test]
    async fn the_widened_orders_of_a_board_are_read_from_their_index() {
        let dir = tempfile::tempdir().expect("directory");
        let pool = crate::db::connect(&crate::db::sqlite_url(&dir.path().join("plan.db")))
            .await
            .expect("open");
        let db = sea_orm::TransactionTrait::begin(&pool)
            .await
            .expect("one connection");
        // The planner's statistics of the benchmark's database (1,000,000 orders, 28,422 of
        // them open, 20 communities), as ANALYZE left them, and a few widened orders.
        db.execute_unprepared("ANALYZE").await.expect("analyze");
        db.execute_unprepared(
            "DELETE FROM sqlite_stat1 WHERE tbl = 'orders'; \
             INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES \
             ('orders', 'ix_orders_status', '947369 157895 1'), \
             ('orders', 'ix_orders_beneficiary', '947369 10'), \
             ('orders', 'ix_orders_board', '28422 569 285 1'), \
             ('orders', 'ix_orders_field_board', '28422 569 72 36 1'), \
             ('orders', 'ix_orders_widened', '12 1 1 1'); \
             ANALYZE sqlite_schema",
        )
        .await
        .expect("statistics");
        for field in [false, true] {
            let mut vals: Vec<Value> = vec!["sub".into(), "c1".into()];
            if field {
                vals.push("care".into());
            }
            let plan: Vec<String> = sql::all(
                &db,
                &format!("EXPLAIN QUERY PLAN {}", widened_sql(field)),
                vals,
            )
            .await
            .expect("plan")
            .iter()
            .map(|r| r.try_get::<String>("", "detail").expect("detail"))
            .collect();
            assert!(
                plan.iter()
                    .any(|d| d.starts_with("SEARCH o USING INDEX ix_orders_widened")),
                "field {field}: {plan:?}"
            );
        }
    }
}
