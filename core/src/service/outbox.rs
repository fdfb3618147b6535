//! The device side of sync: every command is appended to the outbox in the transaction that
//! applies it, with a UUIDv7 id, the device id, a gap-free per-device sequence, the hybrid
//! logical clock time and the schema version (see `shared/design/sync.md`).
use super::{Command, Ctx};
use crate::domain::hlc::Hlc;
use crate::entities::{device_settings, outbox};
use crate::error::{Code, CoreError, Result};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};
use timebank_migrations::SCHEMA_VERSION;

pub const K_DEVICE_ID: &str = "device_id";
pub const K_NEXT_SEQ: &str = "outbox_next_seq";
pub const K_HLC: &str = "hlc";
pub const K_CENTER: &str = "center_id";
pub const K_PROGRAMME: &str = "programme_id";

pub async fn get_setting<C: ConnectionTrait>(c: &C, key: &str) -> Result<Option<String>> {
    Ok(device_settings::Entity::find_by_id(key.to_owned())
        .one(c)
        .await?
        .map(|m| m.value))
}

pub async fn set_setting<C: ConnectionTrait>(c: &C, key: &str, value: &str) -> Result<()> {
    use sea_orm::sea_query::OnConflict;
    device_settings::Entity::insert(
        device_settings::Model {
            key: key.to_owned(),
            value: value.to_owned(),
        }
        .into_active_model(),
    )
    .on_conflict(
        OnConflict::column(device_settings::Column::Key)
            .update_column(device_settings::Column::Value)
            .to_owned(),
    )
    .exec_without_returning(c)
    .await?;
    Ok(())
}

/// The device id of this database, or `device_not_initialised`.
pub async fn device_id<C: ConnectionTrait>(c: &C) -> Result<String> {
    get_setting(c, K_DEVICE_ID)
        .await?
        .ok_or_else(|| CoreError::new(Code::DeviceNotInitialised))
}

pub async fn append<C: ConnectionTrait>(c: &C, ctx: &Ctx, cmd: &Command) -> Result<()> {
    let device = device_id(c).await?;
    // Take the next sequence atomically: the UPDATE locks the counter row until commit on
    // PostgreSQL (and SQLite writers are serialized by BEGIN IMMEDIATE).
    let bumped = crate::sql::exec(
        c,
        "UPDATE device_settings SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = ?",
        vec![K_NEXT_SEQ.into()],
    )
    .await?;
    let seq: i64 = if bumped == 0 {
        set_setting(c, K_NEXT_SEQ, "2").await?;
        1
    } else {
        get_setting(c, K_NEXT_SEQ)
            .await?
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(1)
            - 1
    };
    let last = get_setting(c, K_HLC)
        .await?
        .and_then(|s| Hlc::decode(&s))
        .unwrap_or_else(|| Hlc::zero(&device));
    let hlc = last.tick(ctx.now_ms);
    outbox::Entity::insert(
        outbox::Model {
            id: ctx.mutation_id.clone(),
            device_id: device,
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
    )
    .exec_without_returning(c)
    .await?;
    set_setting(c, K_HLC, &hlc.encode()).await?;
    Ok(())
}

/// Bring the waiting mutations that an earlier version of the app made up to this version's
/// schema, once the database is migrated (`db::connect`). The city server takes mutations of
/// its own schema and the one before (`push::reject_reason` on the server); without this, a
/// center that made changes offline and then installed an update two schema versions ahead
/// before syncing would see them all refused as "update the app", though it is up to date. A
/// waiting mutation is re-stamped only when this version reads its command (`Command::from_parts`,
/// as the rebase and the server do); one it cannot read keeps its stamp, and the server's refusal
/// says why. One transaction; gives how many were re-stamped.
pub async fn restamp_pending(db: &sea_orm::DatabaseConnection) -> Result<u64> {
    let older = "SELECT id, name, args FROM outbox WHERE status = 'pending' AND schema_version < ?";
    // Most opens find nothing to do: look before taking the write lock.
    if crate::sql::all(db, older, vec![SCHEMA_VERSION.into()])
        .await?
        .is_empty()
    {
        return Ok(0);
    }
    let txn = crate::db::begin_write(db).await?;
    let mut done = 0;
    for r in crate::sql::all(&txn, older, vec![SCHEMA_VERSION.into()]).await? {
        let id: String = r.try_get("", "id")?;
        let name: String = r.try_get("", "name")?;
        let args: String = r.try_get("", "args")?;
        let readable =
            serde_json::from_str(&args).is_ok_and(|args| Command::from_parts(&name, args).is_ok());
        if !readable {
            tracing::warn!(mutation = %id, %name, "a waiting mutation of an earlier schema that this version cannot read keeps its stamp");
            continue;
        }
        done += crate::sql::exec(
            &txn,
            "UPDATE outbox SET schema_version = ? WHERE id = ?",
            vec![SCHEMA_VERSION.into(), id.into()],
        )
        .await?;
    }
    txn.commit().await?;
    Ok(done)
}

/// Number the waiting mutations from sequence `from` on again from `to` on, in their order,
/// and the next one made after them: the city server's record of this device's sequences is
/// not the outbox's. The device's database was restored from a backup, and its new mutations
/// took sequences the city has answered for others (`to` is past them); or the city's database
/// was, and it expects sequences the device sent and forgot long ago (`to` is before them).
/// Either way the waiting mutations would otherwise be taken for what the city has, or never
/// taken at all. One transaction (two statements: a sequence is unique on the way).
pub async fn renumber_waiting(db: &sea_orm::DatabaseConnection, from: i64, to: i64) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    crate::sql::exec(
        &txn,
        "UPDATE outbox SET seq = -seq WHERE status = 'pending' AND seq >= ?",
        vec![from.into()],
    )
    .await?;
    // -(-seq) + (to - from)
    crate::sql::exec(
        &txn,
        "UPDATE outbox SET seq = ? - seq WHERE status = 'pending' AND seq < 0",
        vec![(to - from).into()],
    )
    .await?;
    let last =
        crate::sql::scalar_i64(&txn, "SELECT COALESCE(MAX(seq), 0) FROM outbox", vec![]).await?;
    set_setting(&txn, K_NEXT_SEQ, &Ord::max(last + 1, to).to_string()).await?;
    txn.commit().await?;
    tracing::warn!(from, to, "the waiting mutations are numbered again to follow the city server's record of this device");
    Ok(())
}

/// Pending mutations (not yet answered by the city server) in sequence order.
pub async fn pending<C: ConnectionTrait>(c: &C) -> Result<Vec<outbox::Model>> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Status.eq("pending"))
        .order_by_asc(outbox::Column::Seq)
        .all(c)
        .await?)
}

/// Tag the rows the capture triggers just queued with the local mutation that wrote them (the
/// device's journal).
pub async fn journal<C: ConnectionTrait>(c: &C, mutation_id: &str) -> Result<()> {
    crate::sql::exec(
        c,
        "UPDATE change_queue SET mutation_id = ? WHERE mutation_id IS NULL",
        vec![mutation_id.into()],
    )
    .await?;
    Ok(())
}
