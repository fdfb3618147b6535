//! Pull: "the changes of partition C after sequence S, at most N". A partition is a community
//! the device's enrolment grants, or `*` for the city-wide reference data. Pages carry a
//! checksum of their content; devices of volunteers never receive safeguarding reports, nor
//! the PIN hashes and inbox messages of staff and administrators ([`center_only_members`]).
use crate::auth::Device;
use crate::changes::CITY;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use timebank_core::service::Grant;
use timebank_core::{sql, Code, CoreError};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
pub struct PullQuery {
    /// A community id, or `*` for city-wide data.
    pub community: String,
    /// The last sequence the device has applied (0 for a new device).
    #[serde(default)]
    pub after: i64,
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn default_limit() -> i64 {
    1000
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Change {
    pub seq: i64,
    pub table: String,
    pub pk: String,
    /// `upsert` (the row is the whole current row) or `delete`.
    pub op: String,
    #[schema(value_type = Object)]
    pub row: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullPage {
    pub community: String,
    pub changes: Vec<Change>,
    /// The cursor to send as `after` next time (the last sequence of this page).
    pub next_after: i64,
    /// The partition's newest sequence: the device is up to date when `next_after == head`.
    pub head: i64,
    /// SHA-256 over `seq|table|pk|op|row` of every change of the page, one per line.
    pub checksum: String,
}

/// The page's checksum, as the device computes it ([`timebank_core::sync::checksum_of`]).
pub fn checksum(changes: &[Change]) -> String {
    timebank_core::sync::checksum_of(changes.iter().map(|c| {
        (
            c.seq,
            c.table.as_str(),
            c.pk.as_str(),
            c.op.as_str(),
            &c.row,
        )
    }))
}

pub async fn pull(
    db: &DatabaseConnection,
    device: &Device,
    q: &PullQuery,
) -> Result<PullPage, CoreError> {
    pull_between(db, device, q, async {}).await
}

/// The head of `community`'s log and its horizon ((0, 0) when it has no log yet).
async fn head_and_horizon(
    db: &DatabaseConnection,
    community: &str,
) -> Result<(i64, i64), CoreError> {
    Ok(
        match sql::one(
            db,
            "SELECT last_seq, horizon FROM change_heads WHERE community_id = ?",
            vec![community.into()],
        )
        .await?
        {
            Some(r) => (
                r.try_get::<i64>("", "last_seq")?,
                r.try_get::<i64>("", "horizon")?,
            ),
            None => (0, 0),
        },
    )
}

/// Refuses a pull from a cursor below the partition's horizon (the device may have missed a
/// deletion that compaction removed) or past its head: the device must pull the partition
/// again from the start.
fn check_horizon(q: &PullQuery, head: i64, horizon: i64) -> Result<(), CoreError> {
    if q.after > 0 && q.after < horizon {
        return Err(CoreError::new(Code::ResyncRequired)
            .with("community", &q.community)
            .with("horizon", horizon));
    }
    // A cursor past the head: the city's database went back in time (restored from a backup,
    // or a failover that lost commits), and the entries it numbers again up to the cursor
    // would never reach the device. It pulls from the start instead.
    if q.after > head {
        return Err(CoreError::new(Code::ResyncRequired)
            .with("community", &q.community)
            .with("head", head));
    }
    Ok(())
}

/// [`pull`], running `between` after the page's head and horizon are read and before its
/// rows are: the moment a compaction committed in the meantime would be unseen (the tests put
/// one there).
pub async fn pull_between(
    db: &DatabaseConnection,
    device: &Device,
    q: &PullQuery,
    between: impl std::future::Future<Output = ()>,
) -> Result<PullPage, CoreError> {
    if q.community != CITY && !device.communities.contains(&q.community) {
        return Err(CoreError::new(Code::OutOfScope).with("community", &q.community));
    }
    if q.after < 0 {
        return Err(CoreError::invalid(
            "after",
            "游标不能为负数",
            "must not be negative",
        ));
    }
    let limit = q.limit.clamp(1, 5000);
    // The head first: every entry up to it is committed (sequences follow commit order), so
    // a page that ends before `limit` has read everything up to the head.
    let (head, horizon) = head_and_horizon(db, &q.community).await?;
    check_horizon(q, head, horizon)?;
    between.await;
    let rows = sql::all(
        db,
        "SELECT seq, tbl, pk, op, row_json FROM change_log WHERE community_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        vec![q.community.clone().into(), q.after.into(), head.into(), limit.into()],
    )
    .await?;
    // A compaction that committed between the two reads may have taken a deletion past the
    // device's cursor out of the rows just read (and raised the horizon with it): read the
    // horizon again, after the rows, and send the device to pull from the start if it moved
    // past the cursor. (A compaction after the rows' read took nothing from them.)
    if q.after > 0 {
        check_horizon(q, head, head_and_horizon(db, &q.community).await?.1)?;
    }
    let complete = (rows.len() as i64) < limit;
    let mut next_after = q.after;
    let mut changes = Vec::with_capacity(rows.len());
    for r in &rows {
        let seq: i64 = r.try_get("", "seq")?;
        next_after = seq;
        let table: String = r.try_get("", "tbl")?;
        if table == "safeguarding_reports" && device.role != "center" {
            continue; // staff only
        }
        changes.push(Change {
            seq,
            table,
            pk: r.try_get("", "pk")?,
            op: r.try_get("", "op")?,
            row: serde_json::from_str(&r.try_get::<String>("", "row_json")?).unwrap_or(Value::Null),
        });
    }
    if complete {
        // Entries compaction removed leave gaps: the cursor moves to the head all the same.
        next_after = Ord::max(next_after, head);
    }
    let staff =
        center_only_members(db, device, changes.iter().any(|c| held_back(&c.table))).await?;
    changes.retain(|c| !staff_message(&staff, &c.table, &c.row));
    for c in changes.iter_mut().filter(|c| c.table == "members") {
        withhold_pin(&staff, &c.pk, &mut c.row);
    }
    let checksum = checksum(&changes);
    Ok(PullPage {
        community: q.community.clone(),
        changes,
        next_after,
        head,
        checksum,
    })
}

/// The members whose PIN hash and inbox messages `device` does not get: none on a center's
/// workstation, and on a volunteer's device, where no one acts as staff (`Actor::confined`)
/// and staff do not sign in, the staff and administrators: a stolen laptop does not hand the
/// four to six digits of the PINs that carry those powers to an offline search, nor the
/// messages staff get (a safeguarding report filed and its category, the values of a profile
/// conflict, disputes and escalations). Read only when the answer has rows of those tables
/// (`needed`, see [`held_back`]). Those roles are granted only when a member is registered, in
/// the transaction that writes the member's row, so no row a device gets is older than its
/// member's roles.
async fn center_only_members(
    db: &DatabaseConnection,
    device: &Device,
    needed: bool,
) -> Result<HashSet<String>, CoreError> {
    let grant = device.grant();
    let withheld: Vec<&str> = Grant::CENTER_ONLY
        .iter()
        .filter(|r| !grant.allows(**r))
        .map(|r| r.as_str())
        .collect();
    if withheld.is_empty() || !needed {
        return Ok(HashSet::new());
    }
    let marks = vec!["?"; withheld.len()].join(", ");
    sql::all(
        db,
        &format!("SELECT DISTINCT member_id FROM member_roles WHERE role IN ({marks})"),
        withheld.into_iter().map(Into::into).collect(),
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get("", "member_id")?))
    .collect()
}

/// The tables of which [`center_only_members`] holds something back.
fn held_back(table: &str) -> bool {
    table == "members" || table == "inbox_messages"
}

/// An inbox message of one of [`center_only_members`] (withheld; a deletion names no member
/// and goes through).
fn staff_message(withheld: &HashSet<String>, table: &str, row: &Value) -> bool {
    table == "inbox_messages"
        && row
            .get("member_id")
            .and_then(Value::as_str)
            .is_some_and(|m| withheld.contains(m))
}

/// A member's row with its PIN hash null when [`center_only_members`] names it (a device's upsert
/// sets the columns a row has, so it then holds none); a copy without the column (`HOME_ONLY`)
/// is left as it is.
fn withhold_pin(withheld: &HashSet<String>, id: &str, row: &mut Value) {
    if let Some(pin) = row.get_mut("pin_hash").filter(|_| withheld.contains(id)) {
        *pin = Value::Null;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowKey {
    pub table: String,
    pub pk: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowsRequest {
    pub rows: Vec<RowKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RowState {
    pub table: String,
    pub pk: String,
    /// The current row, or null when the server has none.
    #[schema(value_type = Object)]
    pub row: Option<Value>,
}

/// The current version of rows a device changed optimistically. Rows of partitions the device
/// may not read are left out (and so never reach it).
pub async fn rows(
    db: &DatabaseConnection,
    device: &Device,
    req: &RowsRequest,
) -> Result<Vec<RowState>, CoreError> {
    if req.rows.len() > 1000 {
        return Err(CoreError::invalid(
            "rows",
            "一次最多查询1000行",
            "at most 1,000 rows per request",
        ));
    }
    let mut out = Vec::with_capacity(req.rows.len());
    for k in &req.rows {
        if !crate::changes::SYNCED.iter().any(|(t, _)| *t == k.table) {
            continue;
        }
        let mut row = crate::changes::load_row(db, &k.table, &k.pk).await?;
        if let Some(r) = &mut row {
            let parts = crate::changes::communities_of(db, &k.table, r).await?;
            let visible = parts
                .iter()
                .any(|p| p == CITY || device.communities.contains(p));
            if !visible || (k.table == "safeguarding_reports" && device.role != "center") {
                continue;
            }
            let home = r.get("home_community_id").and_then(Value::as_str);
            // A device of none of the member's home communities holds no PIN hash or address
            // of theirs (HOME_ONLY): null here, so that a local edit the server refused is put
            // right as well.
            if k.table == "members"
                && !home.is_some_and(|h| device.communities.iter().any(|c| c == h))
            {
                for c in crate::changes::HOME_ONLY {
                    r[c] = Value::Null;
                }
            }
        }
        out.push(RowState {
            table: k.table.clone(),
            pk: k.pk.clone(),
            row,
        });
    }
    let staff = center_only_members(db, device, out.iter().any(|s| held_back(&s.table))).await?;
    out.retain(|s| {
        !s.row
            .as_ref()
            .is_some_and(|row| staff_message(&staff, &s.table, row))
    });
    for s in out.iter_mut().filter(|s| s.table == "members") {
        if let Some(row) = &mut s.row {
            withhold_pin(&staff, &s.pk, row);
        }
    }
    Ok(out)
}
