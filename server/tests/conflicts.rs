//! The order conflict of sync.md through the real sync client and server (SQLite and
//! PostgreSQL): two center devices, offline, let two volunteers accept the same order and
//! both serve it. The first acceptance the server commits wins; the other volunteer is told
//! who took it, and the help they gave is held for staff as a contested completion: credited
//! only when staff approve, and once, however many devices approve it.
#![allow(clippy::unwrap_used)]
use sea_orm::DatabaseConnection;
use timebank_core::domain::{ConfirmMethod, Vetting};
use timebank_core::service::command::*;
use timebank_core::service::members::hash_pin;
use timebank_core::service::{execute, outbox, Ctx};
use timebank_core::sql;
use timebank_core::sync::{self, http::Http};

mod common;
use common::{order, register, rows, serve_visit, City};

const MIN: i64 = 60_000;

async fn run(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Default::default()).await else {
        return;
    };
    let (city, boot, base) = (&c.db, &c.boot, &c.base);
    let now = timebank_core::service::now_ms();
    let http = Http::new(base);
    let devices = [c.device("a").await, c.device("b").await];
    let (a, b) = (&devices[0], &devices[1]);
    let dev_a = outbox::device_id(a).await.unwrap();
    let dev_b = outbox::device_id(b).await.unwrap();
    let community = boot.community_ids[0].clone();
    let admin = boot.admin_id.clone();
    let t0 = now - 6 * 60 * MIN;
    let on_a = |who: &str, at: i64| Ctx::new(who, &dev_a, at);
    let on_b = |who: &str, at: i64| Ctx::new(who, &dev_b, at);

    // The resident (with a PIN) and two vetted volunteers, registered at device A.
    execute(
        a,
        &on_a(&admin, t0),
        register("r1", "王秀芝", "13700000001", &community, false),
    )
    .await
    .unwrap();
    execute(
        a,
        &on_a(&admin, t0),
        Command::SetPin {
            member_id: "r1".into(),
            pin_hash: hash_pin("2468").unwrap(),
        },
    )
    .await
    .unwrap();
    for (id, name, phone) in [("v1", "马军", "13800000001"), ("v2", "李娜", "13800000002")] {
        execute(
            a,
            &on_a(&admin, t0),
            register(id, name, phone, &community, true),
        )
        .await
        .unwrap();
        execute(
            a,
            &on_a(&admin, t0),
            Command::SetVetting {
                member_id: id.into(),
                vetting: Vetting::Verified,
            },
        )
        .await
        .unwrap();
    }
    execute(a, &on_a(&admin, t0 + MIN), order("o1", "r1"))
        .await
        .unwrap();
    for d in [a, b, a, b] {
        sync::sync_once(d, &http).await.unwrap();
    }

    // The typhoon: both centers offline. 马军 takes the order at A, 李娜 at B; both serve.
    let t1 = t0 + 10 * MIN;
    serve_visit(a, &dev_a, "v1", "o1", t1, 60, Some("送到了")).await;
    serve_visit(b, &dev_b, "v2", "o1", t1 + 2 * MIN, 90, Some("送到了")).await;
    // At B the resident confirms 李娜's visit with her PIN on the volunteer's device.
    execute(
        b,
        &on_b("v2", t1 + 95 * MIN),
        Command::ConfirmVisit {
            order_id: "o1".into(),
            method: ConfirmMethod::Pin,
            pin: Some("2468".into()),
        },
    )
    .await
    .unwrap();
    // The check-out went into B's outbox with the visit and check-in time it ends.
    let args = sql::one(
        b,
        "SELECT args FROM outbox WHERE name = 'check_out'",
        vec![],
    )
    .await
    .unwrap()
    .unwrap()
    .try_get::<String>("", "args")
    .unwrap();
    assert!(
        args.contains("\"served\"") && args.contains("o1-v1"),
        "{args}"
    );

    // Back online: A first, so 马军's acceptance is the one the server commits first.
    sync::sync_once(a, &http).await.unwrap();
    let rb = sync::sync_once(b, &http).await.unwrap();
    let codes: Vec<String> = rb
        .rejections
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(codes, ["order_full", "not_accepted"], "{:?}", rb.rejections);
    assert!(
        rb.rejections[0].to_string().contains("马军"),
        "the other volunteer is told who took the order: {:?}",
        rb.rejections[0]
    );

    // On the server: 马军's visit waits for its own confirmation; 李娜's 90 minutes are held.
    assert_eq!(
        rows(
            city,
            "SELECT status AS c0, accepted_count AS c1 FROM orders WHERE id = 'o1'"
        )
        .await,
        ["awaiting_confirmation|1"],
        "the resident's PIN at B did not confirm 马军's visit"
    );
    let flags = rows(city, "SELECT member_id AS c0, held_minutes AS c1, status AS c2, visit_id AS c3, detail AS c4, id AS c5 FROM ledger_flags WHERE kind = 'contested_completion'").await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert!(flags[0].starts_with("v2|90|open|o1-v1|"), "{flags:?}");
    assert!(
        flags[0].contains("resident_confirmed_at") && flags[0].contains("送到了"),
        "staff see the resident's confirmation and the volunteer's note: {flags:?}"
    );
    let flag_id = flags[0].rsplit('|').next().unwrap().to_owned();
    let told = rows(city, "SELECT kind AS c0 FROM inbox_messages WHERE member_id = 'v2' AND kind IN ('completion_contested', 'sync_rejected') ORDER BY kind").await;
    assert_eq!(
        told,
        ["completion_contested", "sync_rejected", "sync_rejected"]
    );
    let v2_credits = "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS c0 FROM ledger_entries e JOIN accounts ac ON ac.id = e.account_id JOIN transfers t ON t.id = e.transfer_id WHERE ac.member_id = 'v2' AND t.kind = 'service_credit'";
    assert_eq!(
        rows(city, v2_credits).await,
        ["0"],
        "nothing credited before staff decide"
    );

    // Staff approve the held help at both centers, offline again: it is credited once.
    for d in [a, b] {
        sync::sync_once(d, &http).await.unwrap();
    }
    for (d, ctx) in [
        (a, on_a(&admin, t1 + 200 * MIN)),
        (b, on_b(&admin, t1 + 201 * MIN)),
    ] {
        execute(
            d,
            &ctx,
            Command::ApproveHeld {
                flag_id: flag_id.clone(),
                transfer_id: timebank_core::service::new_id(),
                note: "两位志愿者都去了，居民已确认".into(),
            },
        )
        .await
        .unwrap();
    }
    sync::sync_once(a, &http).await.unwrap();
    let second = sync::sync_once(b, &http).await.unwrap();
    assert_eq!(
        second.rejected, 1,
        "the second approval is refused: {second:?}"
    );
    assert_eq!(rows(city, v2_credits).await, ["90"]);
    assert_eq!(
        rows(
            city,
            &format!("SELECT COUNT(*) AS c0 FROM transfers WHERE credit_key = 'flag:{flag_id}'")
        )
        .await,
        ["1"]
    );

    // 马军's visit is confirmed as usual; everyone converges on the server's state.
    execute(
        a,
        &on_a(&admin, t1 + 210 * MIN),
        Command::ConfirmVisit {
            order_id: "o1".into(),
            method: ConfirmMethod::Staff,
            pin: None,
        },
    )
    .await
    .unwrap();
    for d in [a, b, a, b] {
        sync::sync_once(d, &http).await.unwrap();
    }
    for q in [
        "SELECT id AS c0, status AS c1, accepted_count AS c2, visits_done AS c3 FROM orders ORDER BY id",
        "SELECT id AS c0, volunteer_id AS c1, status AS c2 FROM order_volunteers ORDER BY id",
        "SELECT id AS c0, status AS c1, minutes AS c2 FROM visit_attendance ORDER BY id",
        "SELECT id AS c0, status AS c1, held_minutes AS c2, transfer_id AS c3 FROM ledger_flags ORDER BY id",
        "SELECT id AS c0, balance AS c1 FROM accounts ORDER BY id",
        "SELECT id AS c0, transfer_id AS c1, amount AS c2 FROM ledger_entries ORDER BY id",
    ] {
        let server = rows(city, q).await;
        assert_eq!(rows(a, q).await, server, "device A differs: {q}");
        assert_eq!(rows(b, q).await, server, "device B differs: {q}");
    }
    assert_eq!(
        rows(city, "SELECT status AS c0 FROM orders WHERE id = 'o1'").await,
        ["completed"]
    );
    let v1_credits = v2_credits.replace("'v2'", "'v1'");
    assert_eq!(rows(city, &v1_credits).await, ["60"]);
    for d in [city, a, b] {
        assert!(timebank_core::read::verify(d, &|_, _| {})
            .await
            .unwrap()
            .ok());
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_taken_twice_offline_keeps_the_losers_help_for_staff_and_credits_it_once_on_sqlite(
) {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_taken_twice_offline_keeps_the_losers_help_for_staff_and_credits_it_once_on_postgres(
) {
    run(true).await;
}

/// A center whose clock runs three days ahead: the server clamps its times to its own clock,
/// yet the 90 minutes served (measured on that one clock) are credited in full.
async fn clock_ahead(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Default::default()).await else {
        return;
    };
    let d = c.device("fast").await;
    let dev = outbox::device_id(&d).await.unwrap();
    let community = c.boot.community_ids[0].clone();
    let admin = c.boot.admin_id.clone();
    let ahead = timebank_core::service::now_ms() + 3 * 24 * 60 * MIN;
    let run = |who: &str, at: i64, cmd: Command| {
        let (d, ctx) = (d.clone(), Ctx::new(who, &dev, at));
        async move { execute(&d, &ctx, cmd).await.unwrap() }
    };
    run(
        &admin,
        ahead,
        register("r1", "王秀芝", "13700000001", &community, false),
    )
    .await;
    run(
        &admin,
        ahead,
        register("v1", "马军", "13800000001", &community, true),
    )
    .await;
    run(
        &admin,
        ahead,
        Command::SetVetting {
            member_id: "v1".into(),
            vetting: Vetting::Verified,
        },
    )
    .await;
    run(&admin, ahead + MIN, order("o1", "r1")).await;
    serve_visit(&d, &dev, "v1", "o1", ahead + 2 * MIN, 90, None).await;
    run(
        &admin,
        ahead + 94 * MIN,
        Command::ConfirmVisit {
            order_id: "o1".into(),
            method: ConfirmMethod::Staff,
            pin: None,
        },
    )
    .await;
    let http = Http::new(&c.base);
    let r = sync::sync_once(&d, &http).await.unwrap();
    assert_eq!(r.rejected, 0, "{:?}", r.rejections);
    sync::sync_once(&d, &http).await.unwrap();
    let server_now = timebank_core::service::now_ms();
    let att = rows(
        &c.db,
        "SELECT minutes AS c0, checked_in_at AS c1 FROM visit_attendance WHERE order_id = 'o1'",
    )
    .await;
    let (minutes, checked_in) = att[0].split_once('|').unwrap();
    assert_eq!(minutes, "90", "{att:?}");
    assert!(
        checked_in.parse::<i64>().unwrap() <= server_now,
        "the server's record is on its own clock"
    );
    let credited = "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS c0 FROM ledger_entries e JOIN accounts ac ON ac.id = e.account_id JOIN transfers t ON t.id = e.transfer_id WHERE ac.member_id = 'v1' AND t.kind = 'service_credit' AND t.order_id = 'o1'";
    assert_eq!(rows(&c.db, credited).await, ["90"]);
    assert_eq!(rows(&d, credited).await, ["90"], "the device converges");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_center_clock_three_days_ahead_is_clamped_and_the_service_still_counts_in_full_on_sqlite()
{
    clock_ahead(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_center_clock_three_days_ahead_is_clamped_and_the_service_still_counts_in_full_on_postgres(
) {
    clock_ahead(true).await;
}

/// The network of a device whose user acts while a round is pulling: before the first page
/// arrives, staff at the device cancel an order.
struct ActsDuringPull {
    http: Http,
    device: DatabaseConnection,
    act: std::cell::Cell<Option<(Ctx, Command)>>,
}

impl sync::Transport for ActsDuringPull {
    async fn push(
        &self,
        token: &str,
        m: &[sync::Mutation],
    ) -> timebank_core::Result<sync::PushResponse> {
        self.http.push(token, m).await
    }
    async fn pull(
        &self,
        token: &str,
        p: &str,
        after: i64,
        limit: i64,
    ) -> timebank_core::Result<sync::PullPage> {
        if let Some((ctx, cmd)) = self.act.take() {
            execute(&self.device, &ctx, cmd).await.unwrap();
        }
        self.http.pull(token, p, after, limit).await
    }
    async fn rows(
        &self,
        token: &str,
        keys: &[(String, String)],
    ) -> timebank_core::Result<Vec<sync::RowState>> {
        self.http.rows(token, keys).await
    }
}

/// What the user did while a round ran stays on screen although the round pulls an older
/// decision of the server about the same row; the next round sends it, and all converge.
async fn acting_during_a_round(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Default::default()).await else {
        return;
    };
    let (a, b) = (c.device("a").await, c.device("b").await);
    let community = c.boot.community_ids[0].clone();
    let admin = c.boot.admin_id.clone();
    let now = timebank_core::service::now_ms();
    let ctx_a = Ctx::new(&admin, outbox::device_id(&a).await.unwrap(), now);
    let ctx_b = Ctx::new(&admin, outbox::device_id(&b).await.unwrap(), now);
    execute(
        &a,
        &ctx_a,
        register("r1", "王秀芝", "13700000001", &community, false),
    )
    .await
    .unwrap();
    execute(
        &a,
        &ctx_a,
        register("v1", "马军", "13800000001", &community, true),
    )
    .await
    .unwrap();
    execute(
        &a,
        &ctx_a,
        Command::SetVetting {
            member_id: "v1".into(),
            vetting: Vetting::Verified,
        },
    )
    .await
    .unwrap();
    execute(&a, &ctx_a, order("o2", "r1")).await.unwrap();
    let http = Http::new(&c.base);
    for d in [&a, &b] {
        sync::sync_once(d, &http).await.unwrap();
    }
    // 马军 takes the order at A; the server has it as accepted.
    execute(
        &a,
        &Ctx::new("v1", outbox::device_id(&a).await.unwrap(), now + MIN),
        Command::AcceptOrder {
            order_id: "o2".into(),
        },
    )
    .await
    .unwrap();
    sync::sync_once(&a, &http).await.unwrap();
    // B syncs; while it pulls, staff at B cancel the order (the family called).
    let t = ActsDuringPull {
        http: Http::new(&c.base),
        device: b.clone(),
        act: std::cell::Cell::new(Some((
            ctx_b.clone(),
            Command::CancelOrder {
                order_id: "o2".into(),
                reason: "家属说不需要了".into(),
            },
        ))),
    };
    sync::sync_once(&b, &t).await.unwrap();
    let status = "SELECT status AS c0 FROM orders WHERE id = 'o2'";
    assert_eq!(
        rows(&b, status).await,
        ["cancelled"],
        "the cancellation made during the round is still what B shows"
    );
    assert_eq!(sync::status(&b).await.unwrap().pending, 1);
    // The next round sends it; the server cancels the accepted order; everyone agrees.
    let r = sync::sync_once(&b, &http).await.unwrap();
    assert_eq!((r.pushed, r.rejected), (1, 0), "{r:?}");
    sync::sync_once(&a, &http).await.unwrap();
    for d in [&c.db, &a, &b] {
        assert_eq!(rows(d, status).await, ["cancelled"]);
    }
    let q = "SELECT id AS c0, status AS c1, accepted_count AS c2 FROM orders ORDER BY id";
    assert_eq!(rows(&a, q).await, rows(&c.db, q).await);
    assert_eq!(rows(&b, q).await, rows(&c.db, q).await);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_staff_do_while_a_round_pulls_stays_until_the_server_decides_on_sqlite() {
    acting_during_a_round(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_staff_do_while_a_round_pulls_stays_until_the_server_decides_on_postgres() {
    acting_during_a_round(true).await;
}
