//! Replaying a device's outbox on a copy of its prior state (as the city server does) creates
//! exactly the same rows: ids of everything a mutation creates are derived from its id.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use timebank_core::domain::{ConfirmMethod, Rules};
use timebank_core::service::{command::Command, execute_in, Ctx};
use timebank_core::sql;

async fn dump(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let mut out = Vec::new();
    for (t, key) in [
        ("orders", "id"),
        ("order_visits", "id"),
        ("order_volunteers", "id"),
        ("visit_attendance", "id"),
        ("accounts", "id"),
        ("transfers", "id"),
        ("ledger_entries", "id"),
        ("ledger_flags", "id"),
        ("inbox_messages", "id"),
        ("feedback", "id"),
        ("audit_log", "id"),
    ] {
        for r in sql::all(db, &format!("SELECT * FROM {t} ORDER BY {key}"), vec![])
            .await
            .unwrap()
        {
            let id: String = r.try_get("", key).unwrap();
            out.push(format!("{t}:{id}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_outbox_on_the_prior_state_creates_the_same_rows() {
    let device = sqlite().await;
    let db = &device.db;
    let w = world(
        db,
        Rules {
            max_per_visit: 60,
            ..Rules::default()
        },
    )
    .await;
    // The "server": a copy of the device's state before the story.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("server.db");
    timebank_core::backup::backup(db, &copy).await.unwrap();
    let server = timebank_core::db::connect(&timebank_core::db::sqlite_url(&copy))
        .await
        .unwrap();
    let first_seq = sql::scalar_i64(db, "SELECT COALESCE(MAX(seq), 0) FROM outbox", vec![])
        .await
        .unwrap();

    let at = T0 + 10 * MIN;
    w.exec(db, &w.xiuzhi, at, post("o1", &w.wang, 60))
        .await
        .unwrap();
    w.exec(
        db,
        &w.majun,
        at + MIN,
        Command::AcceptOrder {
            order_id: "o1".into(),
        },
    )
    .await
    .unwrap();
    w.exec(
        db,
        &w.majun,
        at + 2 * MIN,
        Command::CheckIn {
            visit_id: None,
            order_id: "o1".into(),
        },
    )
    .await
    .unwrap();
    w.exec(
        db,
        &w.majun,
        at + 92 * MIN,
        Command::CheckOut {
            order_id: "o1".into(),
            note: None,
            served: None,
        },
    )
    .await
    .unwrap();
    // Over the visit maximum: 60 credited, 30 held (a flag, and staff are told).
    w.exec(
        db,
        &w.wang,
        at + 93 * MIN,
        Command::ConfirmVisit {
            visit_id: None,
            order_id: "o1".into(),
            method: ConfirmMethod::Pin,
            pin: Some("2468".into()),
            confirms: None,
        },
    )
    .await
    .unwrap();
    w.exec(
        db,
        &w.xiuzhi,
        at + 94 * MIN,
        Command::RateService {
            feedback_id: "f1".into(),
            order_id: "o1".into(),
            rating: 5,
            comment: "好".into(),
        },
    )
    .await
    .unwrap();

    // Replay the outbox on the copy, as the server would: same mutation ids, replay mode.
    let rows = sql::all(
        db,
        "SELECT id, name, args, actor_id, created_at FROM outbox WHERE seq > ? ORDER BY seq",
        vec![first_seq.into()],
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 6);
    for r in &rows {
        let name: String = r.try_get("", "name").unwrap();
        let args: serde_json::Value =
            serde_json::from_str(&r.try_get::<String>("", "args").unwrap()).unwrap();
        let cmd = Command::from_parts(&name, args).unwrap();
        let ctx = Ctx::replaying(
            &r.try_get::<String>("", "actor_id").unwrap(),
            &w.boot.device_id,
            r.try_get("", "created_at").unwrap(),
            &r.try_get::<String>("", "id").unwrap(),
        );
        execute_in(&server, &ctx, &cmd).await.unwrap();
    }
    let (a, b) = (dump(db).await, dump(&server).await);
    assert!(a.len() > 20);
    assert_eq!(a, b, "the same rows with the same ids");
    assert_eq!(
        w.balance(db, &w.majun).await,
        w.balance(&server, &w.majun).await
    );
    device.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_edit_carries_the_values_the_editor_saw_into_the_outbox() {
    let device = sqlite().await;
    let db = &device.db;
    let w = world(db, Rules::default()).await;
    let before: String = sql::all(
        db,
        "SELECT address FROM members WHERE id = ?",
        vec![w.wang.clone().into()],
    )
    .await
    .unwrap()[0]
        .try_get("", "address")
        .unwrap();
    w.exec(
        db,
        &w.staff,
        T0 + MIN,
        Command::UpdateMember(timebank_core::service::command::UpdateMember {
            member_id: w.wang.clone(),
            address: Some("府苑新村12幢2单元302室".into()),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let args: String = sql::all(
        db,
        "SELECT args FROM outbox WHERE name = 'update_member' ORDER BY seq DESC LIMIT 1",
        vec![],
    )
    .await
    .unwrap()[0]
        .try_get("", "args")
        .unwrap();
    let args: serde_json::Value = serde_json::from_str(&args).unwrap();
    // The city server compares these with its current values to find concurrent edits.
    assert_eq!(args["seen"]["address"], serde_json::json!(before));
    assert_eq!(args["address"], "府苑新村12幢2单元302室");
}

/// On the city server, a confirmation that says whose service it confirmed is refused when
/// none of those volunteers' service waits on the visit and none of their help is held: it
/// never confirms (or credits) another volunteer's visit. One that names the volunteer who
/// waits confirms as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_confirmation_of_someone_elses_service_is_refused_not_put_on_the_visit_here() {
    let device = sqlite().await;
    let db = &device.db;
    let w = world(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    w.exec(db, &w.xiuzhi, at, post("o1", &w.wang, 60))
        .await
        .unwrap();
    for (i, cmd) in [
        Command::AcceptOrder {
            order_id: "o1".into(),
        },
        Command::CheckIn {
            visit_id: None,
            order_id: "o1".into(),
        },
        Command::CheckOut {
            order_id: "o1".into(),
            note: None,
            served: None,
        },
    ]
    .into_iter()
    .enumerate()
    {
        w.exec(db, &w.majun, at + (i as i64 + 1) * 30 * MIN, cmd)
            .await
            .unwrap();
    }
    let confirm = |who: &str| Command::ConfirmVisit {
        visit_id: None,
        order_id: "o1".into(),
        method: ConfirmMethod::Staff,
        pin: None,
        confirms: Some(vec![who.to_owned()]),
    };
    let replayed = |n: u128| {
        Ctx::replaying(
            &w.staff,
            &w.boot.device_id,
            at + 120 * MIN,
            &uuid::Uuid::from_u128(n).to_string(),
        )
    };
    let status = "SELECT status AS s FROM visit_attendance WHERE id LIKE 'o1%'";
    let e = execute_in(db, &replayed(1), &confirm(&w.zhao))
        .await
        .unwrap_err();
    assert!(
        e.message(timebank_core::Lang::En)
            .contains("not the one waiting for confirmation"),
        "{e:?}"
    );
    let s: String = sql::all(db, status, vec![]).await.unwrap()[0]
        .try_get("", "s")
        .unwrap();
    assert_eq!(s, "awaiting_confirmation", "马军's visit is untouched");
    execute_in(db, &replayed(2), &confirm(&w.majun))
        .await
        .unwrap();
    let s: String = sql::all(db, status, vec![]).await.unwrap()[0]
        .try_get("", "s")
        .unwrap();
    assert_eq!(s, "confirmed");
    device.cleanup().await;
}
