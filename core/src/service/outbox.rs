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
