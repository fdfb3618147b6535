//! Push: a device sends its outbox mutations in sequence order. Each is applied in its own
//! savepoint of the batch's transaction through the core's `execute_in`, and its result is
//! stored under (device, sequence) in that same savepoint. A duplicate delivery is answered from the
//! stored result and changes nothing; a gap (a lost earlier message) stops the batch and tells
//! the device which sequence to send next; a rejection is stored, put in the inbox of the
//! member who made it, and never blocks the mutations after it.
use crate::auth::Device;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use timebank_core::domain::hlc::Hlc;
use timebank_core::service::{self, Actor, Command, Ctx};
use timebank_core::{sql, Code, CoreError, Lang};
use timebank_migrations::SCHEMA_VERSION;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushMutation {
    /// UUIDv7 of the mutation.
    pub id: String,
    /// Per-device sequence, gap-free from 1.
    pub seq: i64,
    pub name: String,
    #[schema(value_type = Object)]
    pub args: Value,
    /// Hybrid logical clock of the device when the mutation was made.
    pub hlc: String,
    pub schema_version: i32,
    pub actor_id: String,
    /// The device's wall-clock time when the change was made (domain time: check-in and
    /// check-out minutes, the day of a credit). Clamped to the server's clock.
    #[serde(default)]
    pub at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushRequest {
    pub mutations: Vec<PushMutation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PushResult {
    pub seq: i64,
    pub mutation_id: String,
    /// `applied` or `rejected`.
    pub status: String,
    /// True when this is the stored answer to an earlier delivery.
    pub duplicate: bool,
    /// For `applied`: what the command produced. For `rejected`: `{code, detail, message}`.
    #[schema(value_type = Object)]
    pub result: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushResponse {
    pub results: Vec<PushResult>,
    /// The sequence the server expects next from this device.
    pub next_seq: i64,
}

async fn stored<C: ConnectionTrait>(
    c: &C,
    device: &str,
    seq: i64,
) -> Result<Option<PushResult>, CoreError> {
    let row = sql::one(
        c,
        "SELECT mutation_id, status, result FROM push_results WHERE device_id = ? AND seq = ?",
        vec![device.into(), seq.into()],
    )
    .await?;
    Ok(match row {
        Some(r) => Some(PushResult {
            seq,
            mutation_id: r.try_get("", "mutation_id")?,
            status: r.try_get("", "status")?,
            duplicate: true,
            result: serde_json::from_str(&r.try_get::<String>("", "result")?)
                .unwrap_or(Value::Null),
        }),
        None => None,
    })
}

/// Apply a batch: one transaction for the whole batch, a savepoint for each mutation (so each
/// is applied, with its recorded result, or not at all), and the change log written once at
/// the end. A failure that is not the mutation's fault (the database) rolls the whole batch
/// back and the device sends it again.
pub async fn push(
    db: &DatabaseConnection,
    device: &Device,
    req: PushRequest,
    lang: Lang,
    now_ms: i64,
) -> Result<PushResponse, CoreError> {
    let mut muts = req.mutations;
    muts.sort_by_key(|m| m.seq);
    let txn = timebank_core::db::begin_write(db).await?;
    let mut next = sql::scalar_i64(
        &txn,
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM push_results WHERE device_id = ?",
        vec![device.id.clone().into()],
    )
    .await?;
    let mut results = Vec::with_capacity(muts.len());
    // Actors, rules and places loaded for this batch, kept while its mutations cannot change
    // them.
    let mut actors: HashMap<String, Actor> = HashMap::new();
    let memo = std::sync::Arc::new(service::Memo::default());
    let mut savepoint = false;
    for m in muts {
        if m.seq < next {
            if let Some(r) = stored(&txn, &device.id, m.seq).await? {
                results.push(r);
            }
            continue;
        }
        if m.seq > next {
            break; // a gap: the device resends from `next_seq`
        }
        let batch = Batch {
            actors: &mut actors,
            memo: &memo,
            savepoint: &mut savepoint,
        };
        results.push(apply_one(&txn, device, &m, lang, now_ms, batch).await?);
        next += 1;
    }
    crate::changes::log_changes(&txn, now_ms).await?;
    txn.commit().await?;
    Ok(PushResponse {
        results,
        next_seq: next,
    })
}

fn reject_reason(m: &PushMutation) -> Option<CoreError> {
    if m.schema_version > SCHEMA_VERSION || m.schema_version < SCHEMA_VERSION - 1 {
        return Some(
            CoreError::invalid(
                "schema_version",
                "数据版本不受支持，请更新软件",
                "schema version not supported; update the app",
            )
            .with("got", m.schema_version),
        );
    }
    if Hlc::decode(&m.hlc).is_none() {
        return Some(CoreError::invalid(
            "hlc",
            "时间戳格式错误",
            "malformed clock",
        ));
    }
    if uuid::Uuid::parse_str(&m.id).is_err() {
        return Some(CoreError::invalid(
            "id",
            "编号格式错误",
            "the mutation id is not a UUID",
        ));
    }
    None
}

/// What the mutations of one batch share: the actors and reference data loaded (see
/// `service::Memo`), and whether the savepoint `m` is open.
struct Batch<'a> {
    actors: &'a mut HashMap<String, Actor>,
    memo: &'a std::sync::Arc<service::Memo>,
    savepoint: &'a mut bool,
}

/// Start the mutation's savepoint `m`. The previous mutation's is released in the same
/// statement (a round trip to the database per mutation, not two).
async fn savepoint(txn: &DatabaseTransaction, open: &mut bool) -> Result<(), CoreError> {
    let sql = if *open {
        "RELEASE SAVEPOINT m; SAVEPOINT m"
    } else {
        "SAVEPOINT m"
    };
    txn.execute_unprepared(sql).await?;
    *open = true;
    Ok(())
}

/// Undo what the mutation wrote since its savepoint (which stays open).
async fn undo(txn: &DatabaseTransaction) -> Result<(), CoreError> {
    txn.execute_unprepared("ROLLBACK TO SAVEPOINT m").await?;
    Ok(())
}

/// Apply one mutation in a savepoint of the batch's transaction and record its result there.
async fn apply_one(
    txn: &DatabaseTransaction,
    device: &Device,
    m: &PushMutation,
    lang: Lang,
    now_ms: i64,
    batch: Batch<'_>,
) -> Result<PushResult, CoreError> {
    savepoint(txn, batch.savepoint).await?;
    let parsed: Result<Command, CoreError> =
        serde_json::from_value(json!({"name": m.name, "args": m.args})).map_err(|e| {
            CoreError::invalid(
                "mutation",
                "无法识别的操作",
                "unknown or malformed mutation",
            )
            .with("detail", e)
        });
    let outcome: Result<(), CoreError> = match (reject_reason(m), parsed) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(cmd)) => {
            let device_at =
                m.at.or_else(|| Hlc::decode(&m.hlc).map(|h| h.millis))
                    .unwrap_or(now_ms);
            let at = device_at.min(now_ms); // clocks ahead of the server's are clamped
            let ctx = Ctx::replaying(&m.actor_id, &device.id, at, &m.id)
                .with_hlc(&m.hlc)
                .with_device_time(device_at)
                .with_memo(batch.memo.clone());
            let res = match scoped_actor(txn, device, &m.actor_id, batch.actors).await {
                Ok(actor) => service::execute_as(txn, &ctx, actor.as_ref(), &cmd).await,
                Err(e) => Err(e),
            };
            if !cmd.leaves_actors_unchanged() {
                batch.actors.clear();
                batch.memo.clear();
            }
            match res {
                Ok(out) => {
                    let result = serde_json::to_value(&out).unwrap_or(Value::Null);
                    if record(txn, device, m, "applied", &result, now_ms)
                        .await
                        .is_err()
                    {
                        // Another delivery of the same mutation committed first.
                        undo(txn).await?;
                        return stored(txn, &device.id, m.seq)
                            .await?
                            .ok_or_else(|| CoreError::new(Code::Database));
                    }
                    return Ok(PushResult {
                        seq: m.seq,
                        mutation_id: m.id.clone(),
                        status: "applied".into(),
                        duplicate: false,
                        result,
                    });
                }
                Err(e) => {
                    undo(txn).await?;
                    Err(e)
                }
            }
        }
    };
    let Err(e) = outcome else {
        unreachable!("applied mutations returned above")
    };
    if e.code == Code::Database {
        return Err(e); // not the mutation's fault: the device retries
    }
    let wire = e.to_wire(lang);
    if record(txn, device, m, "rejected", &wire, now_ms)
        .await
        .is_err()
    {
        undo(txn).await?;
        return stored(txn, &device.id, m.seq)
            .await?
            .ok_or_else(|| CoreError::new(Code::Database));
    }
    // The member who made it is told why, in the inbox (the record of every notification).
    let actor_exists = sql::scalar_i64(
        txn,
        "SELECT COUNT(*) FROM members WHERE id = ?",
        vec![m.actor_id.clone().into()],
    )
    .await?
        > 0;
    if actor_exists {
        let ctx = Ctx::new(&m.actor_id, &device.id, now_ms);
        service::notify(txn, &ctx, &m.actor_id, "sync_rejected", json!({"mutation": m.name, "code": e.code, "message_zh": e.message(Lang::Zh), "message_en": e.message(Lang::En)})).await?;
    }
    Ok(PushResult {
        seq: m.seq,
        mutation_id: m.id.clone(),
        status: "rejected".into(),
        duplicate: false,
        result: wire,
    })
}

/// The actor of a mutation, once its scope is checked: from this batch's cache, or loaded and
/// kept (None when loading fails: the command's own load then gives the same error as ever).
async fn scoped_actor<C: sea_orm::ConnectionTrait>(
    c: &C,
    device: &Device,
    actor_id: &str,
    actors: &mut HashMap<String, Actor>,
) -> Result<Option<Actor>, CoreError> {
    if let Some(a) = actors.get(actor_id) {
        if device.communities.contains(&a.member.home_community_id) {
            return Ok(Some(a.clone()));
        }
        return Err(CoreError::new(Code::OutOfScope).with("community", &a.member.home_community_id));
    }
    check_scope(c, device, actor_id).await?;
    match service::load_actor(c, actor_id).await {
        Ok(a) => {
            actors.insert(actor_id.to_owned(), a.clone());
            Ok(Some(a))
        }
        Err(_) => Ok(None),
    }
}

/// A device acts only for members of the communities its enrolment grants.
async fn check_scope<C: sea_orm::ConnectionTrait>(
    c: &C,
    device: &Device,
    actor_id: &str,
) -> Result<(), CoreError> {
    let actor = service::get_member(c, actor_id).await?;
    if device.communities.contains(&actor.home_community_id) {
        Ok(())
    } else {
        Err(CoreError::new(Code::OutOfScope).with("community", &actor.home_community_id))
    }
}

async fn record<C: sea_orm::ConnectionTrait>(
    c: &C,
    device: &Device,
    m: &PushMutation,
    status: &str,
    result: &Value,
    now_ms: i64,
) -> Result<(), CoreError> {
    sql::exec(
        c,
        "INSERT INTO push_results (device_id, seq, mutation_id, name, status, result, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![device.id.clone().into(), m.seq.into(), m.id.clone().into(), m.name.clone().into(), status.into(), result.to_string().into(), now_ms.into()],
    )
    .await?;
    Ok(())
}
