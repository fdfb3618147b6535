//! Device enrolment and authentication. An administrator issues a one-time code for a center;
//! a device exchanges it for a token scoped to the center's communities. Codes and tokens are
//! stored as SHA-256 hashes only, and tokens can be revoked.
use rand_core::{OsRng, RngCore};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sha2::{Digest, Sha256};
use timebank_core::{sql, Code, CoreError};

pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.trim().to_uppercase().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_code() -> String {
    // No 0/O, 1/I/L: the code is read over the phone.
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let mut bytes = [0u8; 12];
    OsRng.fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Issue a one-time enrolment code for `center_id`, valid for `ttl_hours`.
pub async fn issue_code(
    db: &DatabaseConnection,
    center_id: &str,
    role: &str,
    ttl_hours: i64,
    now_ms: i64,
) -> Result<String, CoreError> {
    if !["center", "volunteer"].contains(&role) {
        return Err(CoreError::invalid(
            "role",
            "设备类型须为 center 或 volunteer",
            "role must be center or volunteer",
        ));
    }
    let exists = sql::scalar_i64(
        db,
        "SELECT COUNT(*) FROM centers WHERE id = ?",
        vec![center_id.into()],
    )
    .await?;
    if exists == 0 {
        return Err(CoreError::not_found("center", center_id));
    }
    let code = random_code();
    sql::exec(
        db,
        "INSERT INTO enrolment_codes (code_hash, center_id, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        vec![hash(&code).into(), center_id.into(), role.into(), now_ms.into(), (now_ms + ttl_hours * 3_600_000).into()],
    )
    .await?;
    Ok(code)
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Enrolled {
    pub device_id: String,
    /// Shown once; the server keeps only its hash.
    pub token: String,
    pub center_id: String,
    pub communities: Vec<String>,
    pub role: String,
}

/// Exchange a code for a device token, once.
pub async fn enrol(
    db: &DatabaseConnection,
    code: &str,
    device_name: &str,
    now_ms: i64,
) -> Result<Enrolled, CoreError> {
    let txn = timebank_core::db::begin_write(db).await?;
    let row = sql::one(
        &txn,
        "SELECT center_id, role, expires_at, used_at FROM enrolment_codes WHERE code_hash = ?",
        vec![hash(code).into()],
    )
    .await?
    .ok_or_else(|| {
        CoreError::new(Code::Forbidden).with("action", "enrol with this code (unknown code)")
    })?;
    let used: Option<i64> = row.try_get("", "used_at")?;
    let expires: i64 = row.try_get("", "expires_at")?;
    if used.is_some() || expires < now_ms {
        return Err(
            CoreError::new(Code::Forbidden).with("action", "enrol with a used or expired code")
        );
    }
    let center_id: String = row.try_get("", "center_id")?;
    let role: String = row.try_get("", "role")?;
    let device_id = timebank_core::service::new_id();
    let token = random_token();
    // The conditional update makes a code usable once even under concurrent requests.
    let claimed = sql::exec(&txn, "UPDATE enrolment_codes SET used_at = ?, used_by_device = ? WHERE code_hash = ? AND used_at IS NULL", vec![now_ms.into(), device_id.clone().into(), hash(code).into()]).await?;
    if claimed != 1 {
        return Err(
            CoreError::new(Code::Forbidden).with("action", "enrol with a used or expired code")
        );
    }
    sql::exec(
        &txn,
        "INSERT INTO sync_devices (id, name, center_id, role, token_hash, enrolled_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![device_id.clone().into(), device_name.chars().take(100).collect::<String>().into(), center_id.clone().into(), role.clone().into(), hash(&token).into(), now_ms.into(), now_ms.into()],
    )
    .await?;
    let communities = communities_of(&txn, &center_id).await?;
    txn.commit().await?;
    Ok(Enrolled {
        device_id,
        token,
        center_id,
        communities,
        role,
    })
}

pub async fn communities_of<C: ConnectionTrait>(
    c: &C,
    center_id: &str,
) -> Result<Vec<String>, CoreError> {
    Ok(sql::all(
        c,
        "SELECT community_id FROM center_communities WHERE center_id = ? ORDER BY community_id",
        vec![center_id.into()],
    )
    .await?
    .iter()
    .filter_map(|r| r.try_get::<String>("", "community_id").ok())
    .collect())
}

/// An authenticated device and the communities it may read and write.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub center_id: String,
    pub role: String,
    pub communities: Vec<String>,
}

impl Device {
    /// What its enrolment lets the members acting on it do.
    pub fn grant(&self) -> timebank_core::service::Grant {
        timebank_core::service::Grant::new(&self.role, &self.communities)
    }
}

/// How stale a device's `last_seen_at` may be before a request writes it again.
pub const LAST_SEEN_PRECISION_MS: i64 = 60_000;

pub async fn authenticate(
    db: &DatabaseConnection,
    token: &str,
    now_ms: i64,
) -> Result<Option<Device>, CoreError> {
    let row = sql::one(
        db,
        "SELECT id, center_id, role, last_seen_at FROM sync_devices WHERE token_hash = ? AND revoked_at IS NULL",
        vec![hash(token).into()],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("", "id")?;
    let center_id: String = row.try_get("", "center_id")?;
    // When the device was last seen, to the minute: a write per request would queue every
    // request behind the pushes for the database's write lock (SQLite has one).
    let seen: Option<i64> = row.try_get("", "last_seen_at")?;
    if seen.is_none_or(|s| now_ms - s >= LAST_SEEN_PRECISION_MS || s > now_ms) {
        sql::exec(
            db,
            "UPDATE sync_devices SET last_seen_at = ? WHERE id = ?",
            vec![now_ms.into(), id.clone().into()],
        )
        .await?;
    }
    let communities = communities_of(db, &center_id).await?;
    Ok(Some(Device {
        id,
        center_id,
        role: row.try_get("", "role")?,
        communities,
    }))
}

pub async fn revoke(
    db: &DatabaseConnection,
    device_id: &str,
    now_ms: i64,
) -> Result<bool, CoreError> {
    Ok(sql::exec(
        db,
        "UPDATE sync_devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        vec![now_ms.into(), device_id.into()],
    )
    .await?
        == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_hashes_ignore_case_and_spaces() {
        let c = random_code();
        assert_eq!(c.len(), 14);
        assert!(!c.contains('0') && !c.contains('O') && !c.contains('1'));
        assert_eq!(hash(&c), hash(&format!(" {} ", c.to_lowercase())));
        assert_ne!(random_token(), random_token());
    }
}
