//! The server's change log. Capture triggers (installed on the city server's database only)
//! queue every touched row; at the end of each writing transaction [`log_changes`] turns the
//! queue into change-log entries of the communities the rows belong to, with a gap-free
//! sequence allocated from `change_heads` in that same transaction (so sequence order is
//! commit order: a second writer of the same community waits on the head row).
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use timebank_core::entities::*;
use timebank_core::{sql, Code, CoreError};

/// The city-wide partition: places, centers, the catalogue, the programme.
pub const CITY: &str = "*";

pub use timebank_core::sync::{install_capture as install, TABLES as SYNCED};

/// The current row of `tbl` with key `pk` as JSON (None if it no longer exists).
pub async fn load_row<C: ConnectionTrait>(
    c: &C,
    tbl: &str,
    pk: &str,
) -> Result<Option<Value>, CoreError> {
    Ok(load_rows(c, tbl, &[pk.to_owned()]).await?.remove(pk))
}

/// The current rows of `tbl` with the keys `pks`, by key (keys of rows that no longer exist
/// are absent): one query per 500 keys, where [`load_row`] takes one per row.
pub async fn load_rows<C: ConnectionTrait>(
    c: &C,
    tbl: &str,
    pks: &[String],
) -> Result<HashMap<String, Value>, CoreError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let Some((_, key_cols)) = SYNCED.iter().find(|(t, _)| *t == tbl) else {
        return Ok(HashMap::new());
    };
    let wanted: HashSet<&str> = pks.iter().map(String::as_str).collect();
    // Rows are found by their key's first column (for two-column keys, the rows of that
    // first value are read and those not asked for are dropped).
    let firsts: Vec<String> = pks
        .iter()
        .map(|k| k.split('|').next().unwrap_or("").to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = HashMap::with_capacity(pks.len());
    for chunk in firsts.chunks(500) {
        let chunk = chunk.to_vec();
        macro_rules! many {
            ($m:ident, $col:ident) => {
                $m::Entity::find()
                    .filter($m::Column::$col.is_in(chunk))
                    .all(c)
                    .await?
                    .into_iter()
                    .map(|x| serde_json::to_value(x).unwrap_or(Value::Null))
                    .collect::<Vec<_>>()
            };
        }
        let found = match tbl {
            "places" => many!(places, Id),
            "centers" => many!(centers, Id),
            "center_communities" => many!(center_communities, CenterId),
            "programmes" => many!(programmes, Id),
            "service_fields" => many!(service_fields, Code),
            "services" => many!(services, Code),
            "members" => many!(members, Id),
            "member_roles" => many!(member_roles, MemberId),
            "family_links" => many!(family_links, MemberId),
            "volunteer_profiles" => many!(volunteer_profiles, MemberId),
            "orders" => many!(orders, Id),
            "order_visits" => many!(order_visits, Id),
            "order_volunteers" => many!(order_volunteers, Id),
            "visit_attendance" => many!(visit_attendance, Id),
            "activities" => many!(activities, Id),
            "activity_signups" => many!(activity_signups, ActivityId),
            "accounts" => many!(accounts, Id),
            "transfers" => many!(transfers, Id),
            "ledger_entries" => many!(ledger_entries, Id),
            "ledger_flags" => many!(ledger_flags, Id),
            "feedback" => many!(feedback, Id),
            "safeguarding_reports" => many!(safeguarding_reports, Id),
            "inbox_messages" => many!(inbox_messages, Id),
            _ => Vec::new(),
        };
        for row in found {
            let key = key_cols
                .iter()
                .map(|k| match row.get(*k) {
                    Some(Value::String(v)) => v.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                })
                .collect::<Vec<_>>()
                .join("|");
            if wanted.contains(key.as_str()) {
                out.insert(key, row);
            }
        }
    }
    Ok(out)
}

async fn col<C: ConnectionTrait>(c: &C, q: &str, key: &str) -> Result<Vec<String>, CoreError> {
    Ok(sql::all(c, q, vec![key.into()])
        .await?
        .iter()
        .filter_map(|r| r.try_get::<Option<String>>("", "v").ok().flatten())
        .collect())
}

/// Column `k` of a row image as text, if it is. `k` must be one of [`PLACING`]: logging a
/// batch reads row images for those columns alone ([`refs`]).
fn text<'a>(row: &'a Value, k: &str) -> Option<&'a str> {
    debug_assert!(
        PLACING.contains(&k),
        "{k} is not read from row images: add it to PLACING and Refs"
    );
    row.get(k).and_then(Value::as_str)
}

fn s<'a>(row: &'a Value, k: &str) -> &'a str {
    text(row, k).unwrap_or("")
}

/// Finds the partitions of rows, remembering the community of each member, order, activity
/// and account it has met (from rows of the same batch, or read once), so that logging a
/// batch does not read them again for every row that refers to them.
#[derive(Default)]
pub struct Partitions {
    /// (table, id) -> the row's community, for the tables of [`COMMUNITY_COLUMN`].
    known: HashMap<(&'static str, String), Vec<String>>,
    /// Account id -> its member and its community, from account rows of the batch.
    accounts: HashMap<String, (Option<String>, Option<String>)>,
    /// Account id -> its partitions, once worked out.
    account_parts: HashMap<String, Vec<String>>,
    /// Transfer id -> its partitions, once worked out (asked for the transfer's row and again
    /// for its entry on a programme's account).
    transfer_parts: HashMap<String, Vec<String>>,
    /// Transfer id -> the accounts of its ledger entries in the batch. A transfer's entries
    /// are written with it, in the same mutation, and never change, so a transfer of the
    /// batch has all its entries here.
    entries: HashMap<String, Vec<String>>,
    /// (table, key) -> the partitions the row has been logged in, for the rows asked about so
    /// far: a member's home and those it was copied to ([`MEMBER_REFS`]), and where a deleted
    /// row's deletion must go.
    logged_in: HashMap<(String, String), BTreeSet<String>>,
}

/// The rows of a community's partition that name members who may live in another community,
/// and the columns that do: a family link between two communities, an order posted by a
/// relative elsewhere, a volunteer (or a participant) from a neighbouring community. The
/// devices of the row's partition need those members' rows too (their foreign keys; and staff
/// see who the relative or the volunteer is), so the member's row is logged in that partition
/// as well, once, and from then on every change of it ([`member_copies`]). Without it a device
/// of that community alone failed every pull from then on, on the missing member.
const MEMBER_REFS: [(&str, &[&str]); 5] = [
    ("family_links", &["member_id", "relative_id"]),
    ("orders", &["beneficiary_id", "posted_by"]),
    ("order_volunteers", &["volunteer_id"]),
    ("visit_attendance", &["volunteer_id"]),
    ("activity_signups", &["member_id"]),
];

/// The columns of a member's row that only its home community's devices get: the hash of its
/// PIN (no one signs in as that member at a desk of another community) and its address. The
/// copies of the row in other partitions ([`MEMBER_REFS`]) leave them out ([`away_from_home`]).
/// A device's upsert of a pulled row sets the columns the row has and no other, so a device of
/// both communities keeps what the home partition gave it, whichever it pulls first, and a
/// device of the other community alone holds them empty.
pub const HOME_ONLY: [&str; 2] = ["pin_hash", "address"];

/// A member's row as a partition other than its home's gets it: without [`HOME_ONLY`].
fn away_from_home(row: &Value) -> Value {
    let mut row = row.clone();
    if let Value::Object(cols) = &mut row {
        for c in HOME_ONLY {
            cols.remove(c);
        }
    }
    row
}

/// The tables whose rows name a community outright, and the column that does.
const COMMUNITY_COLUMN: [(&str, &str); 3] = [
    ("members", "home_community_id"),
    ("orders", "community_id"),
    ("activities", "community_id"),
];

impl Partitions {
    /// Remember what a row about to be logged tells of communities (a member's home, an
    /// order's and an activity's community).
    pub fn learn(&mut self, tbl: &str, row: &Value) {
        if let Some((t, comm)) = COMMUNITY_COLUMN.iter().find(|(t, _)| *t == tbl) {
            let v = text(row, comm).map(str::to_owned);
            self.known
                .insert((t, s(row, "id").to_owned()), v.into_iter().collect());
        }
        match tbl {
            "accounts" => {
                let owner = |k| text(row, k).map(str::to_owned);
                self.accounts.insert(
                    s(row, "id").to_owned(),
                    (owner("member_id"), owner("community_id")),
                );
            }
            "ledger_entries" => self
                .entries
                .entry(s(row, "transfer_id").to_owned())
                .or_default()
                .push(s(row, "account_id").to_owned()),
            _ => {}
        }
    }

    /// The partitions of an account of `member` or `community`: its member's community, else
    /// its own, else the city's.
    async fn owned_by<C: ConnectionTrait>(
        &mut self,
        c: &C,
        member: Option<&str>,
        community: Option<&str>,
    ) -> Result<Vec<String>, CoreError> {
        Ok(match (member, community) {
            (Some(m), _) => self.community(c, "members", m).await?,
            (None, Some(cm)) => vec![cm.into()],
            _ => vec![CITY.into()],
        })
    }

    /// The partitions of the account `id` ([`Self::owned_by`]), from its row in the batch or
    /// read once.
    async fn account<C: ConnectionTrait>(
        &mut self,
        c: &C,
        id: &str,
    ) -> Result<Vec<String>, CoreError> {
        if let Some(v) = self.account_parts.get(id) {
            return Ok(v.clone());
        }
        let v = match self.accounts.get(id).cloned() {
            Some((m, cm)) => self.owned_by(c, m.as_deref(), cm.as_deref()).await?,
            None => col(c, "SELECT COALESCE(m.home_community_id, a.community_id, '*') AS v FROM accounts a LEFT JOIN members m ON m.id = a.member_id WHERE a.id = ?", id).await?,
        };
        self.account_parts.insert(id.to_owned(), v.clone());
        Ok(v)
    }

    /// The community of row `id` of `tbl` (one of [`COMMUNITY_COLUMN`]), read once.
    async fn community<C: ConnectionTrait>(
        &mut self,
        c: &C,
        tbl: &'static str,
        id: &str,
    ) -> Result<Vec<String>, CoreError> {
        if let Some(v) = self.known.get(&(tbl, id.to_owned())) {
            return Ok(v.clone());
        }
        let comm = COMMUNITY_COLUMN
            .iter()
            .find(|(t, _)| *t == tbl)
            .map_or("community_id", |(_, c)| c);
        let v = col(
            c,
            &format!("SELECT {comm} AS v FROM {tbl} WHERE id = ?"),
            id,
        )
        .await?;
        self.known.insert((tbl, id.to_owned()), v.clone());
        Ok(v)
    }

    /// Learn the partitions the rows of `tbl` with the keys `pks` have been logged in: one
    /// query for every 500 rows, through the log's index of rows (partition, table, key), one
    /// partition at a time (a search by table and key alone read the whole log: 0.4 s for
    /// 280,000 entries; the `CROSS JOIN` keeps SQLite to that order: planned freely, it read
    /// the whole log's index for each batch, and pushes were a tenth slower).
    async fn load_logged_in<C: ConnectionTrait>(
        &mut self,
        c: &C,
        tbl: &str,
        pks: &[String],
    ) -> Result<(), CoreError> {
        let pks: Vec<&String> = pks
            .iter()
            .filter(|k| !self.logged_in.contains_key(&(tbl.to_owned(), (*k).clone())))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in pks.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut vals: Vec<sea_orm::Value> = vec![tbl.into()];
            vals.extend(chunk.iter().map(|k| (*k).clone().into()));
            let rows = sql::all(
                c,
                &format!("SELECT DISTINCT l.community_id AS p, l.pk AS k FROM change_heads h CROSS JOIN change_log l WHERE l.community_id = h.community_id AND l.tbl = ? AND l.pk IN ({marks})"),
                vals,
            )
            .await?;
            for k in chunk {
                self.logged_in
                    .entry((tbl.to_owned(), (*k).clone()))
                    .or_default();
            }
            for r in rows {
                let (p, k): (String, String) = (r.try_get("", "p")?, r.try_get("", "k")?);
                self.logged_in
                    .entry((tbl.to_owned(), k))
                    .or_default()
                    .insert(p);
            }
        }
        Ok(())
    }

    /// The partitions the row of `tbl` with the key `pk` has been logged in (read once).
    async fn logged<C: ConnectionTrait>(
        &mut self,
        c: &C,
        tbl: &str,
        pk: &str,
    ) -> Result<BTreeSet<String>, CoreError> {
        let key = (tbl.to_owned(), pk.to_owned());
        if !self.logged_in.contains_key(&key) {
            self.load_logged_in(c, tbl, std::slice::from_ref(&key.1))
                .await?;
        }
        Ok(self.logged_in.get(&key).cloned().unwrap_or_default())
    }

    /// The partitions of a member's row: its home community's, and every partition it has
    /// been copied to ([`MEMBER_REFS`]).
    async fn member<C: ConnectionTrait>(
        &mut self,
        c: &C,
        row: &Value,
    ) -> Result<Vec<String>, CoreError> {
        let mut v = self.logged(c, "members", s(row, "id")).await?;
        v.insert(s(row, "home_community_id").to_owned());
        Ok(v.into_iter().collect())
    }

    /// The partitions (communities, or [`CITY`]) a row belongs to.
    pub async fn of<C: ConnectionTrait>(
        &mut self,
        c: &C,
        tbl: &str,
        row: &Value,
    ) -> Result<Vec<String>, CoreError> {
        Ok(match tbl {
            "places" | "centers" | "center_communities" | "programmes" | "service_fields"
            | "services" => vec![CITY.into()],
            "members" => self.member(c, row).await?,
            "member_roles" | "volunteer_profiles" | "ledger_flags" | "inbox_messages" => {
                self.community(c, "members", s(row, "member_id")).await?
            }
            "family_links" => {
                let mut v = self.community(c, "members", s(row, "member_id")).await?;
                v.extend(self.community(c, "members", s(row, "relative_id")).await?);
                v
            }
            "orders" | "activities" | "safeguarding_reports" => vec![s(row, "community_id").into()],
            "order_visits" | "order_volunteers" | "visit_attendance" | "feedback" => {
                self.community(c, "orders", s(row, "order_id")).await?
            }
            "activity_signups" => {
                self.community(c, "activities", s(row, "activity_id"))
                    .await?
            }
            "accounts" => {
                self.owned_by(c, text(row, "member_id"), text(row, "community_id"))
                    .await?
            }
            "ledger_entries" => {
                let parts = self.account(c, s(row, "account_id")).await?;
                if parts == [CITY] {
                    // An entry of a programme's account (the issuing account: every credit and
                    // sign-up bonus has a leg on it) goes where its transfer goes, not to every
                    // device of the city.
                    self.transfer(c, s(row, "transfer_id")).await?
                } else {
                    parts
                }
            }
            "transfers" => self.transfer(c, s(row, "id")).await?,
            _ => vec![],
        })
    }

    /// The partitions of the transfer `id`: those of its entries' accounts, leaving out the
    /// city's (a programme's account, which has no member and no community) unless no other
    /// is left. A service credit from the issuing account goes to the volunteer's community
    /// alone, where it went to every device of the city before; a transfer between programme
    /// accounts alone stays city-wide.
    async fn transfer<C: ConnectionTrait>(
        &mut self,
        c: &C,
        id: &str,
    ) -> Result<Vec<String>, CoreError> {
        if let Some(v) = self.transfer_parts.get(id) {
            return Ok(v.clone());
        }
        let mut v = match self.entries.get(id).cloned() {
            Some(accounts) => {
                let mut v = Vec::new();
                for a in accounts {
                    v.extend(self.account(c, &a).await?);
                }
                v
            }
            None => col(
                c,
                "SELECT DISTINCT COALESCE(m.home_community_id, a.community_id, '*') AS v FROM ledger_entries e JOIN accounts a ON a.id = e.account_id LEFT JOIN members m ON m.id = a.member_id WHERE e.transfer_id = ?",
                id,
            )
            .await?,
        };
        v.sort();
        v.dedup();
        if v.len() > 1 {
            v.retain(|p| p != CITY);
        }
        self.transfer_parts.insert(id.to_owned(), v.clone());
        Ok(v)
    }
}

/// The partitions (communities, or [`CITY`]) a row belongs to.
pub async fn communities_of<C: ConnectionTrait>(
    c: &C,
    tbl: &str,
    row: &Value,
) -> Result<Vec<String>, CoreError> {
    Partitions::default().of(c, tbl, row).await
}

/// Reserve `n` consecutive sequences of `community` inside the caller's transaction and return
/// the first. One upsert: it creates the head row of a partition's first write or raises the
/// head, and holds the row until commit, so sequences follow commit order. (An UPDATE, then an
/// INSERT when it found no row, let two first writes to a new community on PostgreSQL both
/// insert the head row: the second failed on its key once the first committed.)
async fn reserve_seqs<C: ConnectionTrait>(
    c: &C,
    community: &str,
    n: i64,
) -> Result<i64, CoreError> {
    let last = sql::one(
        c,
        "INSERT INTO change_heads (community_id, last_seq) VALUES (?, ?) \
         ON CONFLICT (community_id) DO UPDATE SET last_seq = change_heads.last_seq + excluded.last_seq \
         RETURNING last_seq",
        vec![community.into(), n.into()],
    )
    .await?
    .ok_or_else(|| {
        CoreError::new(Code::Database).with("detail", "the change head's upsert returned no row")
    })?
    .try_get::<i64>("", "last_seq")?;
    Ok(last - n + 1)
}

/// The columns of a row image that [`Partitions`] reads: its id and the communities, members,
/// orders, activities and accounts it refers to.
const PLACING: [&str; 12] = [
    "id",
    "home_community_id",
    "community_id",
    "member_id",
    "relative_id",
    "order_id",
    "activity_id",
    "account_id",
    "transfer_id",
    "beneficiary_id",
    "posted_by",
    "volunteer_id",
];

/// A row image as a JSON object of its [`PLACING`] columns alone: the rest of the image is
/// skipped, not built.
fn refs(image: &str) -> Result<Value, serde_json::Error> {
    /// The columns of [`PLACING`], one field each.
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Refs {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        home_community_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        community_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        member_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        relative_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        activity_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        account_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        transfer_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        beneficiary_id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        posted_by: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        volunteer_id: Option<Value>,
    }
    serde_json::to_value(serde_json::from_str::<Refs>(image)?)
}

/// A row the transaction touched: its last operation and, for an upsert, the row after it.
struct Touched {
    tbl: String,
    pk: String,
    delete: bool,
    image: Option<String>,
    /// Created by this transaction (its first write an insert): logged nowhere before.
    created: bool,
}

/// The member rows to log in partitions other than their home's, because a row of the batch
/// logged there names them ([`MEMBER_REFS`]) and they have not been logged there before:
/// (partition, member id, the member's row as it is now). Each is then known as logged there,
/// so that its later changes follow ([`Partitions::member`]).
async fn member_copies<C: ConnectionTrait>(
    c: &C,
    partitions: &mut Partitions,
    queued: &[Touched],
    values: &[Value],
    parts_of: &[BTreeSet<String>],
) -> Result<Vec<(String, String, String)>, CoreError> {
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((t, row), parts) in queued.iter().zip(values).zip(parts_of) {
        let Some((_, cols)) = MEMBER_REFS.iter().find(|(tbl, _)| *tbl == t.tbl) else {
            continue;
        };
        if t.delete {
            continue;
        }
        for col in *cols {
            let Some(m) = text(row, col).filter(|m| !m.is_empty()) else {
                continue;
            };
            let ps = wanted.entry(m.to_owned()).or_default();
            ps.extend(parts.iter().filter(|p| *p != CITY).cloned());
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = wanted.keys().cloned().collect();
    partitions.load_logged_in(c, "members", &ids).await?;
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (m, ps) in wanted {
        let home = partitions.community(c, "members", &m).await?;
        let logged = partitions.logged(c, "members", &m).await?;
        let need: Vec<String> = ps
            .into_iter()
            .filter(|p| !home.contains(p) && !logged.contains(p))
            .collect();
        if !need.is_empty() {
            missing.insert(m, need);
        }
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = missing.keys().cloned().collect();
    if c.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Read the rows as a transaction writing them leaves them. Pushes run side by side on
        // PostgreSQL: one changing a member has read where the member was logged before this
        // copy, and logs the change only there; a plain read here would copy the row as it was
        // before that change into a partition the change never reaches. The share lock waits
        // for such a writer to commit (the read then gets its row), or makes a later writer
        // wait for this commit (its log then sees the copy).
        let marks = vec!["?"; ids.len()].join(", ");
        sql::all(
            c,
            &format!("SELECT id FROM members WHERE id IN ({marks}) ORDER BY id FOR SHARE"),
            ids.iter().map(|m| m.clone().into()).collect(),
        )
        .await?;
    }
    let found = load_rows(c, "members", &ids).await?;
    let mut out = Vec::new();
    for (m, ps) in missing {
        let Some(row) = found.get(&m) else { continue };
        let image = away_from_home(row).to_string();
        for p in &ps {
            out.push((p.clone(), m.clone(), image.clone()));
        }
        partitions
            .logged_in
            .entry(("members".to_owned(), m))
            .or_default()
            .extend(ps);
    }
    Ok(out)
}

/// Where a transaction's touched rows are queued for its change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The database's `change_queue`, by the database's capture triggers.
    Database,
    /// The connection's own temporary queue, by its own triggers (the SQLite writer's, see
    /// [`timebank_core::sync::connection_capture_sqlite`]).
    Connection,
}

/// Queue this transaction's rows in the connection's own queue when it has one (SQLite's
/// writer connection), else in the database's. Call it first in the transaction, and end it
/// with [`log_changes_of`] with what it returns.
pub async fn queue_of<C: ConnectionTrait>(c: &C) -> Result<Queue, CoreError> {
    if c.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return Ok(Queue::Database);
    }
    let own = sql::exec(
        c,
        &format!(
            "INSERT INTO device_settings (key, value) SELECT ?, '1' WHERE EXISTS \
             (SELECT 1 FROM temp.sqlite_master WHERE type = 'table' AND name = '{}')",
            timebank_core::sync::CONNECTION_QUEUE
        ),
        vec![timebank_core::sync::OWN_CAPTURE.into()],
    )
    .await?;
    Ok(if own == 1 {
        Queue::Connection
    } else {
        Queue::Database
    })
}

/// Turn the queued row changes of this transaction into change-log entries. Call it inside
/// the writing transaction, after the write.
pub async fn log_changes<C: ConnectionTrait>(c: &C, now_ms: i64) -> Result<usize, CoreError> {
    log_changes_of(c, now_ms, Queue::Database).await
}

/// [`log_changes`] from the queue [`queue_of`] chose; the connection's own queue is then
/// closed for the transaction (the database's triggers queue its later writes, if any).
pub async fn log_changes_of<C: ConnectionTrait>(
    c: &C,
    now_ms: i64,
    queue: Queue,
) -> Result<usize, CoreError> {
    let n = log_queued(c, now_ms, queue).await?;
    if queue == Queue::Connection {
        sql::exec(
            c,
            "DELETE FROM device_settings WHERE key = ?",
            vec![timebank_core::sync::OWN_CAPTURE.into()],
        )
        .await?;
    }
    Ok(n)
}

async fn log_queued<C: ConnectionTrait>(
    c: &C,
    now_ms: i64,
    queue: Queue,
) -> Result<usize, CoreError> {
    use std::collections::hash_map::Entry;
    let table = match queue {
        Queue::Database => "change_queue",
        Queue::Connection => timebank_core::sync::CONNECTION_QUEUE,
    };
    // In the order the transaction first touched each row (parents before children).
    let order = match c.get_database_backend() {
        sea_orm::DbBackend::Postgres => "qid",
        _ => "rowid",
    };
    let rows = sql::all(
        c,
        &format!("SELECT tbl, pk, op, row_json FROM {table} ORDER BY {order}"),
        vec![],
    )
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Each row once, where it first appears, as its last write left it (deduplicated here:
    // cheaper than a GROUP BY).
    let mut at: HashMap<(String, String), usize> = HashMap::with_capacity(rows.len());
    let mut queued: Vec<Touched> = Vec::with_capacity(rows.len());
    for q in &rows {
        let (tbl, pk): (String, String) = (q.try_get("", "tbl")?, q.try_get("", "pk")?);
        let op: String = q.try_get("", "op")?;
        let delete = op == "delete";
        let image: Option<String> = q.try_get("", "row_json")?;
        match at.entry((tbl, pk)) {
            Entry::Occupied(i) => {
                let t = &mut queued[*i.get()];
                t.delete = delete;
                t.image = image;
            }
            Entry::Vacant(v) => {
                let (tbl, pk) = v.key().clone();
                v.insert(queued.len());
                queued.push(Touched {
                    tbl,
                    pk,
                    delete,
                    image,
                    created: op == "insert",
                });
            }
        }
    }
    // Upserts queued without the row (by a trigger of an earlier version) read it back, one
    // query per table (and 500 keys); a row gone meanwhile is logged as deleted.
    let mut missing: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, t) in queued.iter().enumerate() {
        if !t.delete && t.image.is_none() {
            missing.entry(t.tbl.clone()).or_default().push(i);
        }
    }
    for (tbl, at) in missing {
        let pks: Vec<String> = at.iter().map(|i| queued[*i].pk.clone()).collect();
        let mut found = load_rows(c, &tbl, &pks).await?;
        for i in at {
            let t = &mut queued[i];
            match found.remove(&t.pk) {
                Some(row) => t.image = Some(row.to_string()),
                None => t.delete = true,
            }
        }
    }
    // The rows as values, for the partitions they belong to; what each tells of communities
    // is learnt first (a member registered in this batch, then its roles and account).
    let mut values: Vec<Value> = Vec::with_capacity(queued.len());
    let mut partitions = Partitions::default();
    for t in &queued {
        let v = match (&t.image, t.delete) {
            (Some(text), false) => refs(text).map_err(|e| {
                CoreError::new(Code::Database)
                    .with("table", &t.tbl)
                    .with("detail", e)
            })?,
            _ => Value::Null,
        };
        partitions.learn(&t.tbl, &v);
        values.push(v);
    }
    // Where the members the batch writes, and the rows it deletes, have been logged: one
    // query for each table. A member the transaction created has been logged nowhere, and is
    // not looked up: registrations are most of a busy batch's members, and on PostgreSQL the
    // prepared lookup's generic plan read every logged member of the log (0.5-0.7 s a batch
    // on a log of 230,000 entries; the benchmark's reconnect took 1.4-1.8 s instead of 0.9).
    let mut asked: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for t in queued.iter().filter(|t| t.delete || t.tbl == "members") {
        if t.created && !t.delete {
            partitions
                .logged_in
                .entry((t.tbl.clone(), t.pk.clone()))
                .or_default();
        } else {
            asked.entry(&t.tbl).or_default().push(t.pk.clone());
        }
    }
    for (tbl, pks) in &asked {
        partitions.load_logged_in(c, tbl, pks).await?;
    }
    let mut parts_of: Vec<BTreeSet<String>> = Vec::with_capacity(queued.len());
    for (t, row) in queued.iter().zip(&values) {
        let parts: BTreeSet<String> = if !t.delete {
            partitions.of(c, &t.tbl, row).await?.into_iter().collect()
        } else {
            // A deletion goes to every partition the row was ever logged in, so that no
            // device (nor a new one pulling from the start) keeps or gets it back.
            let seen = partitions.logged(c, &t.tbl, &t.pk).await?;
            if seen.is_empty() {
                [CITY.to_owned()].into()
            } else {
                seen
            }
        };
        parts_of.push(parts);
    }
    // Members named by rows of another community's partition, copied there first (a device
    // applies a page's rows in their order).
    let copies = member_copies(c, &mut partitions, &queued, &values, &parts_of).await?;
    let mut by_partition: BTreeMap<&str, Vec<(&str, &str, &str, &str)>> = BTreeMap::new();
    for (p, m, image) in &copies {
        by_partition
            .entry(p)
            .or_default()
            .push(("members", m, "upsert", image));
    }
    // A member's row in the partitions it was copied to, without what only its home gets.
    let mut away: HashMap<usize, String> = HashMap::new();
    for (i, ((t, row), parts)) in queued.iter().zip(&values).zip(&parts_of).enumerate() {
        let home = s(row, "home_community_id");
        if t.tbl == "members" && !t.delete && parts.iter().any(|p| p != home) {
            let full: Value = serde_json::from_str(t.image.as_deref().unwrap_or("null"))
                .map_err(|e| CoreError::new(Code::Database).with("detail", e))?;
            away.insert(i, away_from_home(&full).to_string());
        }
    }
    for (i, ((t, row), parts)) in queued.iter().zip(&values).zip(&parts_of).enumerate() {
        let (op, image) = match (&t.image, t.delete) {
            (Some(text), false) => ("upsert", text.as_str()),
            _ => ("delete", "null"),
        };
        for p in parts {
            let image = match away.get(&i) {
                Some(copy) if p != s(row, "home_community_id") => copy.as_str(),
                _ => image,
            };
            by_partition
                .entry(p)
                .or_default()
                .push((&t.tbl, &t.pk, op, image));
        }
    }
    let mut n = 0;
    for (community, changes) in by_partition {
        // One allocation of the partition's next sequences, one insert per batch of rows.
        let first = reserve_seqs(c, community, changes.len() as i64).await?;
        if c.get_database_backend() == sea_orm::DbBackend::Postgres {
            n += insert_arrays(c, community, first, &changes, now_ms).await?;
            continue;
        }
        for (i, chunk) in changes.chunks(200).enumerate() {
            let marks = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut vals = Vec::with_capacity(chunk.len() * 7);
            for (j, (tbl, pk, op, row)) in chunk.iter().enumerate() {
                let seq = first + (i * 200 + j) as i64;
                vals.extend([
                    community.into(),
                    seq.into(),
                    (*tbl).into(),
                    (*pk).into(),
                    (*op).into(),
                    (*row).into(),
                    now_ms.into(),
                ]);
            }
            sql::exec(c, &format!("INSERT INTO change_log (community_id, seq, tbl, pk, op, row_json, at) VALUES {marks}"), vals).await?;
            n += chunk.len();
        }
    }
    sql::exec(c, &format!("DELETE FROM {table}"), vec![]).await?;
    Ok(n)
}

/// The rows of one partition's log entries given as arrays, one for each column, that
/// PostgreSQL takes apart with `unnest` (at most [`ARRAY_ROWS`] rows a statement): a
/// statement of seven parameters, sent in binary, instead of one of seven parameters a row
/// that PostgreSQL must parse, bind and plan as a long `VALUES` list (the log's statements of a
/// one-device push took 0.21-0.24 s against 0.30; bench/RESULTS.md).
async fn insert_arrays<C: ConnectionTrait>(
    c: &C,
    community: &str,
    first: i64,
    changes: &[(&str, &str, &str, &str)],
    now_ms: i64,
) -> Result<usize, CoreError> {
    use sea_orm::{sea_query::ArrayType, Value as Sql};
    fn texts<'a>(column: impl Iterator<Item = &'a str>) -> Sql {
        Sql::Array(
            ArrayType::String,
            Some(Box::new(column.map(|t| Sql::from(t.to_owned())).collect())),
        )
    }
    let mut n = 0;
    for (i, chunk) in changes.chunks(ARRAY_ROWS).enumerate() {
        let from = first + (i * ARRAY_ROWS) as i64;
        sql::exec(
            c,
            "INSERT INTO change_log (community_id, seq, tbl, pk, op, row_json, at) \
             SELECT ?, ? + u.i - 1, u.tbl, u.pk, u.op, u.row_json, ? \
             FROM unnest(?::text[], ?::text[], ?::text[], ?::text[]) WITH ORDINALITY \
             AS u(tbl, pk, op, row_json, i)",
            vec![
                community.into(),
                from.into(),
                now_ms.into(),
                texts(chunk.iter().map(|r| r.0)),
                texts(chunk.iter().map(|r| r.1)),
                texts(chunk.iter().map(|r| r.2)),
                texts(chunk.iter().map(|r| r.3)),
            ],
        )
        .await?;
        n += chunk.len();
    }
    Ok(n)
}

/// The most log entries [`insert_arrays`] sends in one statement.
const ARRAY_ROWS: usize = 5_000;

/// Give back the change queue's space, on PostgreSQL (`VACUUM`; skipped when another server
/// process is vacuuming it). Every row of the queue is deleted by the transaction that wrote
/// it ([`log_changes`]), but on PostgreSQL a deleted row stays in the table until a vacuum,
/// and reading the queue reads the whole table: with autovacuum off (as on these machines)
/// the queue held 281,047 dead rows (87 MB) and no live one after the sync benchmark's
/// pushes, and every push read them twice (its log and its delete). The server calls this
/// every [`crate::QUEUE_VACUUM_MS`] while it is busy ([`crate::serve`]); a vacuum of the
/// emptied queue also hands its pages back to the file system. SQLite reuses a deleted row's
/// space: nothing to do there.
pub async fn vacuum_queue<C: ConnectionTrait>(c: &C) -> Result<(), CoreError> {
    if c.get_database_backend() == sea_orm::DbBackend::Postgres {
        c.execute_unprepared("VACUUM (SKIP_LOCKED) change_queue")
            .await?;
    }
    Ok(())
}

/// What a compaction of the change log removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Compacted {
    /// Versions of rows between their first and their latest entry of a partition.
    pub superseded: u64,
    /// Entries of rows deleted longer ago than the retention period (their deletion included).
    pub deleted_rows: u64,
}

/// Drop the change-log entries no device needs any more, partition by partition, each in one
/// transaction that holds the partition's head (so no writer logs meanwhile):
/// - every version of a row between its first and its latest entry: a device pulling from any
///   cursor still meets the latest version after it, and a new device still meets each row
///   (its first entry) before the rows that refer to it, as the log had it;
/// - every entry of a row whose latest entry is a deletion older than `retention_ms`, raising
///   the partition's horizon to the newest such deletion. A device whose cursor is below the
///   horizon may have missed a deletion and is told to pull again from the start.
pub async fn compact(
    db: &sea_orm::DatabaseConnection,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Compacted, CoreError> {
    let parts: Vec<String> = sql::all(db, "SELECT community_id FROM change_heads", vec![])
        .await?
        .iter()
        .filter_map(|r| r.try_get::<String>("", "community_id").ok())
        .collect();
    let same_row = "l.community_id = change_log.community_id AND l.tbl = change_log.tbl AND l.pk = change_log.pk";
    let mut out = Compacted::default();
    for p in parts {
        let txn = timebank_core::db::begin_write(db).await?;
        sql::exec(
            &txn,
            "UPDATE change_heads SET last_seq = last_seq WHERE community_id = ?",
            vec![p.clone().into()],
        )
        .await?;
        out.superseded += sql::exec(
            &txn,
            &format!("DELETE FROM change_log WHERE community_id = ? AND seq > (SELECT MIN(l.seq) FROM change_log l WHERE {same_row}) AND seq < (SELECT MAX(l.seq) FROM change_log l WHERE {same_row})"),
            vec![p.clone().into()],
        )
        .await?;
        let gone = sql::all(
            &txn,
            &format!("SELECT tbl, pk, seq FROM change_log WHERE community_id = ? AND op = 'delete' AND at < ? AND seq = (SELECT MAX(l.seq) FROM change_log l WHERE {same_row})"),
            vec![p.clone().into(), (now_ms - retention_ms).into()],
        )
        .await?;
        let mut horizon = 0;
        for g in &gone {
            let (tbl, pk, seq): (String, String, i64) = (
                g.try_get("", "tbl")?,
                g.try_get("", "pk")?,
                g.try_get("", "seq")?,
            );
            horizon = horizon.max(seq);
            out.deleted_rows += sql::exec(
                &txn,
                "DELETE FROM change_log WHERE community_id = ? AND tbl = ? AND pk = ?",
                vec![p.clone().into(), tbl.into(), pk.into()],
            )
            .await?;
        }
        if horizon > 0 {
            sql::exec(
                &txn,
                "UPDATE change_heads SET horizon = ? WHERE community_id = ? AND horizon < ?",
                vec![horizon.into(), p.clone().into(), horizon.into()],
            )
            .await?;
        }
        txn.commit().await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_image_is_read_for_the_columns_that_place_it_and_nothing_else() {
        let image = r#"{"id":"e1","account_id":"a1","transfer_id":"t1","minutes":-45,"memo":"买菜 \"急\"","member_id":null,"created_at":1}"#;
        assert_eq!(
            refs(image).expect("an image"),
            serde_json::json!({"id": "e1", "account_id": "a1", "transfer_id": "t1"})
        );
        assert!(refs("not json").is_err());
    }

    #[test]
    fn every_placing_column_is_read_from_a_row_image() {
        let image: serde_json::Map<String, Value> = PLACING
            .iter()
            .map(|k| ((*k).to_owned(), Value::from(format!("v-{k}"))))
            .chain([("name".to_owned(), Value::from("王秀芝"))])
            .collect();
        let read = refs(&Value::Object(image.clone()).to_string()).expect("an image");
        let mut expected = image;
        expected.remove("name");
        assert_eq!(read, Value::Object(expected));
    }
}
