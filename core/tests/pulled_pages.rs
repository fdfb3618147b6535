//! Applying a pulled page on a device: the page's changes come in log order (each mutation's
//! rows one after the other, a row again when it changed again); the device applies them table
//! by table in few statements, and must end with exactly the rows the server has.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::{json, Value};
use timebank_core::domain::Rules;
use timebank_core::entities::{
    accounts, ledger_entries, member_roles, members, transfers, volunteer_profiles,
};
use timebank_core::sql;
use timebank_core::sync::{apply_page, checksum, Change, PullPage};

/// Every row of the tables a registration writes, as (table, pk, row), in a stable order.
async fn rows(db: &DatabaseConnection) -> Vec<(String, String, Value)> {
    fn json<M: serde::Serialize>(t: &str, pk: &[&str], ms: Vec<M>) -> Vec<(String, String, Value)> {
        let mut out: Vec<(String, String, Value)> = ms
            .into_iter()
            .map(|m| {
                let v = serde_json::to_value(m).unwrap();
                let key = pk
                    .iter()
                    .map(|k| v[*k].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join("|");
                (t.to_owned(), key, v)
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }
    let mut out = json(
        "members",
        &["id"],
        members::Entity::find().all(db).await.unwrap(),
    );
    out.extend(json(
        "member_roles",
        &["member_id", "role"],
        member_roles::Entity::find().all(db).await.unwrap(),
    ));
    out.extend(json(
        "volunteer_profiles",
        &["member_id"],
        volunteer_profiles::Entity::find().all(db).await.unwrap(),
    ));
    out.extend(json(
        "accounts",
        &["id"],
        accounts::Entity::find().all(db).await.unwrap(),
    ));
    out.extend(json(
        "transfers",
        &["id"],
        transfers::Entity::find().all(db).await.unwrap(),
    ));
    out.extend(json(
        "ledger_entries",
        &["id"],
        ledger_entries::Entity::find().all(db).await.unwrap(),
    ));
    out
}

fn page(changes: Vec<(&str, &str, &str, Value)>) -> PullPage {
    let changes: Vec<Change> = changes
        .into_iter()
        .enumerate()
        .map(|(i, (table, pk, op, row))| Change {
            seq: i as i64 + 1,
            table: table.into(),
            pk: pk.into(),
            op: op.into(),
            row,
        })
        .collect();
    let n = changes.len() as i64;
    PullPage {
        community: "c".into(),
        checksum: checksum(&changes),
        changes,
        next_after: n,
        head: n,
    }
}

/// A server with a town and new members, and a device holding the town only (a copy taken
/// before the members were registered).
async fn server_and_device() -> (TestDb, DatabaseConnection, tempfile::TempDir, Vec<String>) {
    let server = sqlite().await;
    let db = &server.db;
    let w = world(db, Rules::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("device.db");
    timebank_core::backup::backup(db, &copy).await.unwrap();
    let device = timebank_core::db::connect(&timebank_core::db::sqlite_url(&copy))
        .await
        .unwrap();
    let fuyuan = w.town.fuyuan.clone();
    let mut ids = Vec::new();
    for (id, name) in [("m-a", "陈阿姨"), ("m-b", "刘大爷"), ("m-c", "孙师傅")] {
        w.town
            .volunteer(db, id, name, date(1960, 3, 1), &fuyuan, false)
            .await;
        ids.push(id.to_owned());
    }
    (server, device, dir, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_in_log_order_ends_with_the_servers_rows_whatever_the_order_of_its_tables() {
    let (server, device, _dir, ids) = server_and_device().await;
    let want = rows(&server.db).await;
    let before = rows(&device).await;
    let new: Vec<&(String, String, Value)> = want.iter().filter(|r| !before.contains(r)).collect();
    assert!(
        new.iter().any(|r| r.0 == "ledger_entries") && new.iter().any(|r| r.0 == "members"),
        "the registrations wrote members and ledger entries: {new:?}"
    );

    // Log order: member by member, each member's rows children first (the foreign keys are
    // checked at commit, not row by row).
    let mut changes: Vec<(&str, &str, &str, Value)> = Vec::new();
    let owner = |r: &(String, String, Value)| {
        let text = r.2.to_string();
        ids.iter().position(|id| text.contains(id.as_str()))
    };
    for i in 0..ids.len() {
        for r in new.iter().rev().filter(|r| owner(r) == Some(i)) {
            changes.push((r.0.as_str(), r.1.as_str(), "upsert", r.2.clone()));
        }
    }
    // Rows of no one member (the issuing account's side of the bonuses) come last.
    for r in new.iter().filter(|r| owner(r).is_none()) {
        changes.push((r.0.as_str(), r.1.as_str(), "upsert", r.2.clone()));
    }
    // A member renamed, then renamed back: the later version wins.
    let first = new.iter().find(|r| r.0 == "members").unwrap();
    let mut renamed = first.2.clone();
    renamed["name"] = json!("旧名字");
    renamed["hardship"] = json!(true);
    changes.insert(0, ("members", first.1.as_str(), "upsert", renamed));
    // A role removed and given again: it exists; a role given then removed: it does not.
    let role = new.iter().find(|r| r.0 == "member_roles").unwrap();
    changes.insert(1, ("member_roles", role.1.as_str(), "delete", Value::Null));
    let extra = json!({"member_id": ids[2], "role": "family"});
    let extra_pk = format!("{}|family", ids[2]);
    changes.push(("member_roles", extra_pk.as_str(), "upsert", extra));
    changes.push(("member_roles", extra_pk.as_str(), "delete", Value::Null));
    changes.push(("member_roles", role.1.as_str(), "upsert", role.2.clone()));
    let p = page(changes);

    let n = apply_page(&device, "c", &p).await.unwrap();
    assert_eq!(n, p.changes.len());
    let got = rows(&device).await;
    let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).collect();
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "the device has exactly the server's rows; not the server's: {extra:?}; missing: {missing:?}"
    );
    // Booleans, dates and NULLs arrive as the server wrote them.
    let m = members::Entity::find_by_id(first.1.clone())
        .one(&device)
        .await
        .unwrap()
        .unwrap();
    assert!(!m.hardship && m.active && m.pin_hash.is_none());
    server.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_a_column_name_that_is_not_one_changes_nothing() {
    let (server, device, _dir, _ids) = server_and_device().await;
    let before = rows(&device).await;
    let want = rows(&server.db).await;
    let good = want
        .iter()
        .find(|r| r.0 == "members" && !before.contains(r))
        .unwrap();
    let mut bad = good.2.clone();
    bad["name = 'x'; --"] = json!("x");
    let p = page(vec![
        ("members", good.1.as_str(), "upsert", good.2.clone()),
        ("members", "m-zzz", "upsert", bad),
    ]);
    let e = apply_page(&device, "c", &p).await.unwrap_err();
    assert_eq!(e.code, timebank_core::Code::InvalidInput, "{e:?}");
    assert_eq!(rows(&device).await, before, "nothing of the page was kept");
    let cursor = sql::one(
        &device,
        "SELECT value FROM device_settings WHERE key = 'sync_cursor:c'",
        vec![],
    )
    .await
    .unwrap();
    assert!(cursor.is_none(), "the cursor did not move");
    server.cleanup().await;
}

/// The page checksum is part of the protocol: SHA-256 in hex over one `seq|table|pk|op|row`
/// line per change, the row as compact JSON. Devices of the previous version compute it so,
/// and rows with escapes, Chinese text, nesting, numbers and nulls must give the same digest.
#[test]
fn the_page_checksum_is_sha256_over_one_line_per_change_with_the_row_as_compact_json() {
    use sha2::{Digest, Sha256};
    let changes = vec![
        Change {
            seq: 7,
            table: "members".into(),
            pk: "m-1".into(),
            op: "upsert".into(),
            row: json!({"id": "m-1", "name": "张\"阿姨\"\n", "minutes": -90, "rate": 1.5, "vetted": true, "note": null, "tags": ["a", {"b": [1, 2]}]}),
        },
        Change {
            seq: 8,
            table: "member_roles".into(),
            pk: "m-1|volunteer".into(),
            op: "delete".into(),
            row: Value::Null,
        },
    ];
    let text: String = changes
        .iter()
        .map(|c| format!("{}|{}|{}|{}|{}\n", c.seq, c.table, c.pk, c.op, c.row))
        .collect();
    let expected: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(checksum(&changes), expected);
    // One changed character anywhere changes it.
    let mut other = changes.clone();
    other[0].row["name"] = json!("张\"阿姨\" ");
    assert_ne!(checksum(&other), expected);
}
