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
use timebank_core::sync::{self, http::Http, Transport};

mod common;
use common::{order, register, rows, serve_visit, City, Intercept, Through};

const MIN: i64 = 60_000;

/// The minutes of service credited to member `who` on the city, as one row's text.
async fn credited(city: &DatabaseConnection, who: &str) -> Vec<String> {
    let q = format!(
        "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS c0 FROM ledger_entries e \
         JOIN accounts ac ON ac.id = e.account_id JOIN transfers t ON t.id = e.transfer_id \
         WHERE ac.member_id = '{who}' AND t.kind = 'service_credit'"
    );
    rows(city, &q).await
}

/// `staff_confirm`: at B, staff confirm 李娜's visit at the desk instead of the resident with
/// her PIN on the volunteer's device.
async fn run(postgres: bool, staff_confirm: bool) {
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
    // At B the resident confirms 李娜's visit with her PIN on the volunteer's device, or staff
    // confirm it at the desk.
    let confirm = if staff_confirm {
        (
            on_b(&admin, t1 + 95 * MIN),
            ConfirmMethod::Staff,
            None,
            "staff_confirmed_at",
        )
    } else {
        (
            on_b("v2", t1 + 95 * MIN),
            ConfirmMethod::Pin,
            Some("2468".to_owned()),
            "resident_confirmed_at",
        )
    };
    execute(
        b,
        &confirm.0,
        Command::ConfirmVisit {
            visit_id: None,
            order_id: "o1".into(),
            method: confirm.1,
            pin: confirm.2,
            confirms: None,
        },
    )
    .await
    .unwrap();
    let outboxed = |name: &'static str| async move {
        sql::one(
            b,
            "SELECT args FROM outbox WHERE name = ?",
            vec![name.into()],
        )
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "args")
        .unwrap()
    };
    let args = outboxed("confirm_visit").await;
    assert!(
        args.contains(r#""confirms":["v2"]"#) && !args.contains("2468"),
        "the confirmation says whose service it confirmed, and never carries the PIN: {args}"
    );
    // The check-out went into B's outbox with the visit and check-in time it ends.
    let args = outboxed("check_out").await;
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
        "the confirmation at B did not confirm 马军's visit"
    );
    assert_eq!(credited(city, "v1").await, ["0"], "nor credited 马军");
    let flags = rows(city, "SELECT member_id AS c0, held_minutes AS c1, status AS c2, visit_id AS c3, detail AS c4, id AS c5 FROM ledger_flags WHERE kind = 'contested_completion'").await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert!(flags[0].starts_with("v2|90|open|o1-v1|"), "{flags:?}");
    assert!(
        flags[0].contains(confirm.3) && flags[0].contains("送到了"),
        "staff see the confirmation made at B and the volunteer's note: {flags:?}"
    );
    let flag_id = flags[0].rsplit('|').next().unwrap().to_owned();
    let told = rows(city, "SELECT kind AS c0 FROM inbox_messages WHERE member_id = 'v2' AND kind IN ('completion_contested', 'sync_rejected') ORDER BY kind").await;
    assert_eq!(
        told,
        ["completion_contested", "sync_rejected", "sync_rejected"]
    );
    assert_eq!(
        credited(city, "v2").await,
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
    assert_eq!(credited(city, "v2").await, ["90"]);
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
            visit_id: None,
            order_id: "o1".into(),
            method: ConfirmMethod::Staff,
            pin: None,
            confirms: None,
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
    assert_eq!(credited(city, "v1").await, ["60"]);
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
    run(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_taken_twice_offline_keeps_the_losers_help_for_staff_and_credits_it_once_on_postgres(
) {
    run(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_confirming_the_losers_visit_offline_note_it_on_the_held_help_not_on_the_winners_visit_on_sqlite(
) {
    run(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_confirming_the_losers_visit_offline_note_it_on_the_held_help_not_on_the_winners_visit_on_postgres(
) {
    run(true, true).await;
}

/// An order for two volunteers (with `recurring`, of two visits), both accepted while online;
/// then offline, 李娜 serves at
/// device B while 马军 serves at A, where staff confirm his visit and the order is done. 李娜's
/// acceptance still holds on the server, but the order moved on without her: her check-in is
/// refused there, and her check-out is kept as help held for staff (it was refused as "no
/// open visit", and her 90 minutes were lost), credited once when staff approve; she is told
/// it waits for staff, not that another took the order. Of a recurring order, the next visit is
/// then the current one: her check-in names the first and is refused (it checked her in to the
/// next visit, days early, which then waited on her for ever).
async fn moved_on(postgres: bool, recurring: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Default::default()).await else {
        return;
    };
    let (city, boot) = (&c.db, &c.boot);
    let http = Http::new(&c.base);
    let (a, b) = (c.device("a").await, c.device("b").await);
    let dev_a = outbox::device_id(&a).await.unwrap();
    let dev_b = outbox::device_id(&b).await.unwrap();
    let community = boot.community_ids[0].clone();
    let admin = boot.admin_id.clone();
    let t0 = timebank_core::service::now_ms() - 6 * 60 * MIN;
    let on = |d: &str, who: &str, at: i64| Ctx::new(who, d, at);
    execute(
        &a,
        &on(&dev_a, &admin, t0),
        register("r1", "王秀芝", "13700000001", &community, false),
    )
    .await
    .unwrap();
    for (id, name, phone) in [("v1", "马军", "13800000001"), ("v2", "李娜", "13800000002")] {
        for cmd in [
            register(id, name, phone, &community, true),
            Command::SetVetting {
                member_id: id.into(),
                vetting: Vetting::Verified,
            },
        ] {
            execute(&a, &on(&dev_a, &admin, t0), cmd).await.unwrap();
        }
    }
    let Command::PostOrder(mut two) = order("o1", "r1") else {
        unreachable!("order makes a PostOrder")
    };
    two.volunteers_needed = 2;
    if recurring {
        two.visits = vec![t0 + 10 * MIN, t0 + 24 * 60 * MIN];
    }
    execute(&a, &on(&dev_a, &admin, t0 + MIN), Command::PostOrder(two))
        .await
        .unwrap();
    sync::sync_once(&a, &http).await.unwrap();
    sync::sync_once(&b, &http).await.unwrap();
    let accept = Command::AcceptOrder {
        order_id: "o1".into(),
    };
    execute(&a, &on(&dev_a, "v1", t0 + 2 * MIN), accept.clone())
        .await
        .unwrap();
    execute(&b, &on(&dev_b, "v2", t0 + 2 * MIN), accept)
        .await
        .unwrap();
    for d in [&a, &b, &a] {
        sync::sync_once(d, &http).await.unwrap();
    }

    // Offline: each serves; at A staff confirm 马军's visit.
    let t1 = t0 + 10 * MIN;
    let serve = |d: &str, who: &str, minutes: i64| {
        [
            (
                on(d, who, t1),
                Command::CheckIn {
                    visit_id: None,
                    order_id: "o1".into(),
                },
            ),
            (
                on(d, who, t1 + minutes * MIN),
                Command::CheckOut {
                    order_id: "o1".into(),
                    note: Some("陪她聊了天".into()),
                    served: None,
                },
            ),
        ]
    };
    for (ctx, cmd) in serve(&dev_a, "v1", 60) {
        execute(&a, &ctx, cmd).await.unwrap();
    }
    for (ctx, cmd) in serve(&dev_b, "v2", 90) {
        execute(&b, &ctx, cmd).await.unwrap();
    }
    execute(
        &a,
        &on(&dev_a, &admin, t1 + 61 * MIN),
        Command::ConfirmVisit {
            visit_id: None,
            order_id: "o1".into(),
            method: ConfirmMethod::Staff,
            pin: None,
            confirms: None,
        },
    )
    .await
    .unwrap();

    sync::sync_once(&a, &http).await.unwrap();
    let (status, refused) = if recurring {
        ("accepted", "invalid_input")
    } else {
        ("completed", "illegal_transition")
    };
    assert_eq!(
        rows(city, "SELECT status AS c0 FROM orders WHERE id = 'o1'").await,
        [status]
    );
    let rb = sync::sync_once(&b, &http).await.unwrap();
    let codes: Vec<String> = rb
        .rejections
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(codes, [refused], "only the check-in: {:?}", rb.rejections);
    assert_eq!(
        rows(
            city,
            "SELECT COUNT(*) AS c0 FROM visit_attendance WHERE volunteer_id = 'v2'"
        )
        .await,
        ["0"],
        "李娜 is checked in to no visit on the city"
    );
    let flags = rows(
        city,
        "SELECT member_id AS c0, held_minutes AS c1, status AS c2, id AS c3 FROM ledger_flags \
         WHERE kind = 'contested_completion'",
    )
    .await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert!(flags[0].starts_with("v2|90|open|"), "{flags:?}");
    let told = rows(
        city,
        "SELECT kind AS c0 FROM inbox_messages WHERE member_id = 'v2' \
         AND kind IN ('completion_contested', 'completion_review')",
    )
    .await;
    assert_eq!(told, ["completion_review"]);

    // Staff approve it: her 90 minutes are credited, once.
    let flag_id = flags[0].rsplit('|').next().unwrap().to_owned();
    sync::sync_once(&a, &http).await.unwrap();
    let approve = Command::ApproveHeld {
        flag_id,
        transfer_id: timebank_core::service::new_id(),
        note: "核实过，确实去了".into(),
    };
    execute(&a, &on(&dev_a, &admin, t1 + 3 * 60 * MIN), approve)
        .await
        .unwrap();
    sync::sync_once(&a, &http).await.unwrap();
    assert_eq!(credited(city, "v2").await, ["90"]);
    assert_eq!(credited(city, "v1").await, ["60"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_served_offline_on_an_order_that_moved_on_is_held_for_staff_on_sqlite() {
    moved_on(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_served_offline_on_an_order_that_moved_on_is_held_for_staff_on_postgres() {
    moved_on(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_served_offline_on_a_visit_finished_elsewhere_is_held_and_checks_in_to_no_later_visit_on_sqlite(
) {
    moved_on(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_served_offline_on_a_visit_finished_elsewhere_is_held_and_checks_in_to_no_later_visit_on_postgres(
) {
    moved_on(true, true).await;
}

/// A recurring order (two visits). Staff at the desk confirm visit 1 while offline; meanwhile
/// the resident confirms it at the volunteer's device, and the volunteer serves visit 2. The
/// desk's confirmation names visit 1 and is refused by the city (it was applied to visit 2,
/// crediting its 90 minutes with no one having confirmed them); visit 2 waits for its own
/// confirmation. A dispute made on a device names its visit too.
async fn stale_confirmation(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Default::default()).await else {
        return;
    };
    let (city, boot) = (&c.db, &c.boot);
    let http = Http::new(&c.base);
    let (desk, laptop) = (c.device("desk").await, c.device("laptop").await);
    let dev_desk = outbox::device_id(&desk).await.unwrap();
    let dev_laptop = outbox::device_id(&laptop).await.unwrap();
    let community = boot.community_ids[0].clone();
    let admin = boot.admin_id.clone();
    let t0 = timebank_core::service::now_ms() - 6 * 60 * MIN;
    let on = |d: &str, who: &str, at: i64| Ctx::new(who, d, at);
    for cmd in [
        register("r1", "王秀芝", "13700000001", &community, false),
        Command::SetPin {
            member_id: "r1".into(),
            pin_hash: hash_pin("2468").unwrap(),
        },
        register("v1", "马军", "13800000001", &community, true),
        Command::SetVetting {
            member_id: "v1".into(),
            vetting: Vetting::Verified,
        },
    ] {
        execute(&desk, &on(&dev_desk, &admin, t0), cmd)
            .await
            .unwrap();
    }
    let Command::PostOrder(mut twice) = order("o1", "r1") else {
        unreachable!("order makes a PostOrder")
    };
    twice.visits = vec![t0 + 60 * MIN, t0 + 24 * 60 * MIN];
    execute(&desk, &on(&dev_desk, &admin, t0), Command::PostOrder(twice))
        .await
        .unwrap();
    sync::sync_once(&desk, &http).await.unwrap();
    sync::sync_once(&laptop, &http).await.unwrap();
    let t1 = t0 + 60 * MIN;
    serve_visit(&laptop, &dev_laptop, "v1", "o1", t1, 60, None).await;
    sync::sync_once(&laptop, &http).await.unwrap();
    sync::sync_once(&desk, &http).await.unwrap();

    // Offline: the desk confirms visit 1 as staff.
    let confirm = |method: ConfirmMethod, pin: Option<&str>| Command::ConfirmVisit {
        order_id: "o1".into(),
        method,
        pin: pin.map(str::to_owned),
        confirms: None,
        visit_id: None,
    };
    execute(
        &desk,
        &on(&dev_desk, &admin, t1 + 2 * 60 * MIN),
        confirm(ConfirmMethod::Staff, None),
    )
    .await
    .unwrap();
    // Meanwhile the resident confirms it with her PIN on the laptop, and 马军 serves visit 2.
    execute(
        &laptop,
        &on(&dev_laptop, "v1", t1 + 62 * MIN),
        confirm(ConfirmMethod::Pin, Some("2468")),
    )
    .await
    .unwrap();
    let t2 = t0 + 24 * 60 * MIN;
    for (at, cmd) in [
        (
            t2,
            Command::CheckIn {
                visit_id: None,
                order_id: "o1".into(),
            },
        ),
        (
            t2 + 90 * MIN,
            Command::CheckOut {
                order_id: "o1".into(),
                note: None,
                served: None,
            },
        ),
    ] {
        execute(&laptop, &on(&dev_laptop, "v1", at), cmd)
            .await
            .unwrap();
    }
    sync::sync_once(&laptop, &http).await.unwrap();

    let r = sync::sync_once(&desk, &http).await.unwrap();
    let refused: Vec<(String, String)> = r
        .rejections
        .iter()
        .map(|x| {
            (
                x["error"]["code"].as_str().unwrap_or_default().to_owned(),
                x["error"]["detail"]["visit_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [("invalid_input".to_owned(), "o1-v1".to_owned())],
        "{:?}",
        r.rejections
    );
    assert_eq!(
        rows(
            city,
            "SELECT visit_no AS c0, status AS c1 FROM order_visits WHERE order_id = 'o1' ORDER BY visit_no"
        )
        .await,
        ["1|completed", "2|awaiting_confirmation"]
    );
    assert_eq!(
        credited(city, "v1").await,
        ["60"],
        "visit 1's service alone"
    );

    // A dispute made on a device names the visit it is about.
    execute(
        &desk,
        &on(&dev_desk, &admin, t2 + 100 * MIN),
        Command::DisputeVisit {
            order_id: "o1".into(),
            reason: "只待了半小时".into(),
            visit_id: None,
        },
    )
    .await
    .unwrap();
    let args = rows(
        &desk,
        "SELECT args AS c0 FROM outbox WHERE name = 'dispute_visit'",
    )
    .await;
    assert!(args[0].contains(r#""visit_id":"o1-v2""#), "{args:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_made_offline_for_a_visit_confirmed_elsewhere_is_not_put_on_the_next_visit_on_sqlite(
) {
    stale_confirmation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_made_offline_for_a_visit_confirmed_elsewhere_is_not_put_on_the_next_visit_on_postgres(
) {
    stale_confirmation(true).await;
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
            visit_id: None,
            order_id: "o1".into(),
            method: ConfirmMethod::Staff,
            pin: None,
            confirms: None,
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

/// When the users of an [`Acting`] device act.
#[derive(Clone, Copy, PartialEq)]
enum Moment {
    /// Before the round's first pull page arrives.
    FirstPull,
    /// When the answer to the n-th pushed batch arrives (the batch after it may be on its way
    /// already: the client keeps two batches in flight).
    Push(usize),
}

/// The network of a device whose users act during a sync round: at `when`, what `acts` holds
/// is done at the device.
struct Acting {
    http: Http,
    device: DatabaseConnection,
    acts: std::cell::RefCell<Vec<(Ctx, Command)>>,
    when: Moment,
    /// Batches pushed so far.
    batches: std::cell::Cell<usize>,
    /// Mutations sent in batches the server took (a batch that reached the server before
    /// the one sent before it is answered with nothing taken, and sent again).
    taken: std::cell::Cell<usize>,
    /// The first batch is held up this long on the way, so the second, sent while the first
    /// is still travelling, reaches the server first.
    hold_first: std::time::Duration,
    /// For each batch: (its number, results in the answer, the sequence the server expects
    /// next).
    answers: std::cell::RefCell<Vec<(usize, usize, i64)>>,
    /// The most bytes of mutations a batch may carry (None: the HTTP transport's).
    push_bytes: Option<usize>,
    /// The size of each pushed batch's request body (bytes of JSON).
    sizes: std::cell::RefCell<Vec<usize>>,
    /// A line too slow for larger bodies than this: the request reaches the server, but its
    /// answer does not come back in time (a timeout).
    slow_line: Option<usize>,
    /// A line too slow for pages of more changes than this: asking for one times out.
    slow_pull: Option<i64>,
}

impl Acting {
    fn new(
        base: &str,
        device: &DatabaseConnection,
        when: Moment,
        acts: Vec<(Ctx, Command)>,
    ) -> Self {
        Acting {
            http: Http::new(base),
            device: device.clone(),
            acts: acts.into(),
            when,
            batches: 0.into(),
            taken: 0.into(),
            hold_first: std::time::Duration::ZERO,
            answers: Default::default(),
            push_bytes: None,
            sizes: Default::default(),
            slow_line: None,
            slow_pull: None,
        }
    }

    /// The users act in a task of their own, as in the app (a push future must not use the
    /// device's database itself: see `Transport::pushes_in_flight`); the network waits until
    /// they are done.
    async fn act_if(&self, now: Moment) {
        if now != self.when {
            return;
        }
        let acts = std::mem::take(&mut *self.acts.borrow_mut());
        let device = self.device.clone();
        tokio::spawn(async move {
            for (ctx, cmd) in acts {
                execute(&device, &ctx, cmd).await.unwrap();
            }
        })
        .await
        .unwrap();
    }
}

impl Intercept for Acting {
    fn http(&self) -> &Http {
        &self.http
    }
    async fn push(
        &self,
        token: &str,
        m: &[sync::Mutation],
    ) -> timebank_core::Result<sync::PushResponse> {
        let n = self.batches.get() + 1;
        self.batches.set(n);
        if n == 1 {
            tokio::time::sleep(self.hold_first).await;
        }
        let body = serde_json::to_vec(&serde_json::json!({ "mutations": m })).unwrap();
        self.sizes.borrow_mut().push(body.len());
        if self.slow_line.is_some_and(|most| body.len() > most) {
            let _ = self.http.push(token, m).await;
            return Err(
                timebank_core::CoreError::new(timebank_core::Code::ServerUnreachable)
                    .with("timeout", true),
            );
        }
        let answer = self.http.push(token, m).await;
        if let Ok(a) = &answer {
            if !a.results.is_empty() {
                self.taken.set(self.taken.get() + m.len());
            }
            self.answers
                .borrow_mut()
                .push((n, a.results.len(), a.next_seq));
        }
        self.act_if(Moment::Push(n)).await;
        answer
    }
    fn pushes_in_flight(&self) -> usize {
        self.http.pushes_in_flight()
    }
    fn push_bytes(&self) -> usize {
        self.push_bytes.unwrap_or_else(|| self.http.push_bytes())
    }
    async fn pull(
        &self,
        token: &str,
        p: &str,
        after: i64,
        limit: i64,
    ) -> timebank_core::Result<sync::PullPage> {
        self.act_if(Moment::FirstPull).await;
        if self.slow_pull.is_some_and(|most| limit > most) {
            return Err(
                timebank_core::CoreError::new(timebank_core::Code::ServerUnreachable)
                    .with("timeout", true),
            );
        }
        self.http.pull(token, p, after, limit).await
    }
}

/// What users do at a device while its round pulls is rebased on what the round brings: the
/// pulled rows go in under it and it runs again on top, as the server will run it. So the
/// device shows at once what the server will end with: a cancellation of an order another
/// device's volunteer took tells that volunteer; an edit of one field of a profile keeps the
/// other field another center changed; an acceptance of an order the pulled rows show full
/// leaves the screen (and is refused by the server in the next round, with a message).
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
    let b_id = outbox::device_id(&b).await.unwrap();
    for cmd in [
        register("r1", "王秀芝", "13700000001", &community, false),
        register("v1", "马军", "13800000001", &community, true),
        register("v2", "李娜", "13800000002", &community, true),
    ] {
        execute(&a, &ctx_a, cmd).await.unwrap();
    }
    for v in ["v1", "v2"] {
        let vet = Command::SetVetting {
            member_id: v.into(),
            vetting: Vetting::Verified,
        };
        execute(&a, &ctx_a, vet).await.unwrap();
    }
    for o in ["o2", "o3"] {
        execute(&a, &ctx_a, order(o, "r1")).await.unwrap();
    }
    let http = Http::new(&c.base);
    for d in [&a, &b] {
        sync::sync_once(d, &http).await.unwrap();
    }
    // At A: 马军 takes both orders, and staff write down 王秀芝's new address.
    let ctx_v1 = Ctx::new("v1", outbox::device_id(&a).await.unwrap(), now + MIN);
    for o in ["o2", "o3"] {
        let accept = Command::AcceptOrder { order_id: o.into() };
        execute(&a, &ctx_v1, accept).await.unwrap();
    }
    let moved = Command::UpdateMember(UpdateMember {
        member_id: "r1".into(),
        name: None,
        phone: None,
        address: Some("7幢302".into()),
        seen: None,
    });
    execute(&a, &ctx_a, moved).await.unwrap();
    sync::sync_once(&a, &http).await.unwrap();
    // B syncs; while it pulls, staff at B cancel o2 (the family called) and change
    // 王秀芝's phone, and 李娜 takes o3 (which B still shows open).
    let t = Acting::new(
        &c.base,
        &b,
        Moment::FirstPull,
        vec![
            (
                ctx_b.clone(),
                Command::CancelOrder {
                    order_id: "o2".into(),
                    reason: "家属说不需要了".into(),
                },
            ),
            (
                ctx_b.clone(),
                Command::UpdateMember(UpdateMember {
                    member_id: "r1".into(),
                    name: None,
                    phone: Some("13700000009".into()),
                    address: None,
                    seen: None,
                }),
            ),
            (
                Ctx::new("v2", &b_id, now + 2 * MIN),
                Command::AcceptOrder {
                    order_id: "o3".into(),
                },
            ),
        ],
    );
    sync::sync_once(&b, &Through(&t)).await.unwrap();
    let status = "SELECT id AS c0, status AS c1, accepted_count AS c2 FROM orders ORDER BY id";
    assert_eq!(
        rows(&b, status).await,
        ["o2|cancelled|1", "o3|accepted|1"],
        "B shows its cancellation on top of 马军's acceptance, and o3 as 马军's alone"
    );
    let takers = "SELECT order_id AS c0, volunteer_id AS c1, status AS c2 FROM order_volunteers ORDER BY order_id, volunteer_id";
    assert_eq!(rows(&b, takers).await, ["o2|v1|accepted", "o3|v1|accepted"]);
    let told =
        "SELECT member_id AS c0, kind AS c1 FROM inbox_messages WHERE kind = 'order_cancelled'";
    assert_eq!(
        rows(&b, told).await,
        ["v1|order_cancelled"],
        "the cancellation made during the round tells 马军, whose acceptance the round brought"
    );
    let profile = "SELECT phone AS c0, address AS c1 FROM members WHERE id = 'r1'";
    assert_eq!(
        rows(&b, profile).await,
        ["13700000009|7幢302"],
        "B's new phone on top of the address A changed"
    );
    assert_eq!(sync::status(&b).await.unwrap().pending, 3);
    // The next round sends them: the server agrees with what B showed, refuses 李娜's late
    // acceptance and tells her why; everyone converges.
    let r = sync::sync_once(&b, &http).await.unwrap();
    assert_eq!((r.pushed, r.rejected), (2, 1), "{r:?}");
    let refused =
        "SELECT member_id AS c0, kind AS c1 FROM inbox_messages WHERE kind = 'sync_rejected'";
    assert_eq!(rows(&c.db, refused).await, ["v2|sync_rejected"]);
    sync::sync_once(&a, &http).await.unwrap();
    sync::sync_once(&b, &http).await.unwrap();
    let inbox = "SELECT id AS c0, member_id AS c1, kind AS c2 FROM inbox_messages ORDER BY id";
    let members = "SELECT id AS c0, phone AS c1, address AS c2 FROM members ORDER BY id";
    for q in [status, takers, inbox, members] {
        let server = rows(&c.db, q).await;
        assert_eq!(rows(&a, q).await, server, "A: {q}");
        assert_eq!(rows(&b, q).await, server, "B: {q}");
    }
    assert_eq!(
        rows(&c.db, status).await,
        ["o2|cancelled|1", "o3|accepted|1"]
    );
    assert_eq!(rows(&c.db, profile).await, ["13700000009|7幢302"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_users_do_while_a_round_pulls_is_rebased_on_the_pulled_rows_on_sqlite() {
    acting_during_a_round(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_users_do_while_a_round_pulls_is_rebased_on_the_pulled_rows_on_postgres() {
    acting_during_a_round(true).await;
}

/// A city of one community with one center device, and its administrator acting there now.
async fn one_desk(postgres: bool) -> Option<(City, DatabaseConnection, Ctx)> {
    let c = City::start(postgres, &["府苑新村"], Default::default()).await?;
    let a = c.device("a").await;
    let ctx = Ctx::new(
        &c.boot.admin_id,
        outbox::device_id(&a).await.unwrap(),
        timebank_core::service::now_ms(),
    );
    Some((c, a, ctx))
}

/// Everything `device` did is confirmed and gone from its outbox.
async fn assert_outbox_empty(device: &DatabaseConnection) {
    let waiting = sql::scalar_i64(device, "SELECT COUNT(*) FROM outbox", vec![])
        .await
        .unwrap();
    assert_eq!(waiting, 0, "everything confirmed and gone from the outbox");
}

/// `n` residents of 府苑新村 imported at `device` (one mutation each), phones 136…
async fn import_residents(device: &DatabaseConnection, ctx: &Ctx, n: usize) {
    let mut csv = String::from("name,phone,date_of_birth,community,roles,address,service_fields\n");
    for i in 0..n {
        csv.push_str(&format!(
            "居民{i},136{i:08},1950-01-01,府苑新村,resident,,\n"
        ));
    }
    timebank_core::import::import_members(device, ctx, csv.as_bytes(), &|_, _| {})
        .await
        .unwrap();
}

/// A long outbox goes batch after batch, two on their way at once (the server applies one
/// while the device sends the next and records the answers to the one before), and what a
/// user does while a batch is on the way goes in the same round: nothing is left waiting,
/// nothing is sent twice.
async fn a_long_outbox_and_what_users_do_meanwhile_go_in_one_round(postgres: bool) {
    let Some((c, a, ctx)) = one_desk(postgres).await else {
        return;
    };
    let community = c.boot.community_ids[0].clone();
    let n = 2 * sync::BATCH + 100; // three batches
    import_residents(&a, &ctx, n).await;
    // A registration while the last batch of the import is on the way.
    let net = Acting::new(
        &c.base,
        &a,
        Moment::Push(3),
        vec![(
            ctx.clone(),
            register("late", "晚到的", "13900000099", &community, false),
        )],
    );
    let r = sync::sync_once(&a, &Through(&net)).await.unwrap();
    assert_eq!((r.pushed, r.rejected), (n + 1, 0), "{r:?}");
    assert!(
        net.acts.borrow().is_empty() && net.batches.get() >= 3,
        "the latecomer registered while a batch was on its way"
    );
    assert_eq!(
        net.taken.get(),
        n + 1,
        "each mutation taken in one batch only"
    );
    assert_outbox_empty(&a).await;
    let on_server = sql::scalar_i64(
        &c.db,
        "SELECT COUNT(*) FROM push_results WHERE status = 'applied'",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(on_server, n as i64 + 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outbox_and_what_users_do_meanwhile_go_in_one_round_sqlite() {
    a_long_outbox_and_what_users_do_meanwhile_go_in_one_round(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outbox_and_what_users_do_meanwhile_go_in_one_round_postgres() {
    a_long_outbox_and_what_users_do_meanwhile_go_in_one_round(true).await;
}

/// The server takes a device's batches strictly in sequence: a batch that overtakes the one
/// before it is answered with the sequence the server expects (and changes nothing), and the
/// device sends it again once the batch before is through. Every mutation is applied once, in
/// order, and the outbox ends empty.
async fn a_batch_that_overtakes_the_one_before_is_sent_again(postgres: bool) {
    let Some((c, a, ctx)) = one_desk(postgres).await else {
        return;
    };
    let n = 2 * sync::BATCH + 100; // three batches
    import_residents(&a, &ctx, n).await;
    let net = Acting {
        hold_first: std::time::Duration::from_millis(600),
        ..Acting::new(&c.base, &a, Moment::FirstPull, vec![])
    };
    let r = sync::sync_once(&a, &Through(&net)).await.unwrap();
    assert_eq!((r.pushed, r.rejected), (n, 0), "{r:?}");
    let answers = net.answers.borrow().clone();
    assert!(
        answers.contains(&(2, 0, 1)),
        "the second batch arrived first and was told to start at 1: {answers:?}"
    );
    assert!(
        answers.contains(&(1, sync::BATCH, sync::BATCH as i64 + 1)),
        "the first batch was taken whole: {answers:?}"
    );
    assert_eq!(
        answers.iter().map(|x| x.1).sum::<usize>(),
        n,
        "each mutation answered once: {answers:?}"
    );
    let on_server = sql::all(
        &c.db,
        "SELECT COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM push_results WHERE status = 'applied'",
        vec![],
    )
    .await
    .unwrap();
    let row = &on_server[0];
    let got: (i64, i64, i64) = (
        row.try_get("", "n").unwrap(),
        row.try_get("", "lo").unwrap(),
        row.try_get("", "hi").unwrap(),
    );
    assert_eq!(
        got,
        (n as i64, 1, n as i64),
        "applied once each, in sequence"
    );
    let members = sql::scalar_i64(
        &c.db,
        "SELECT COUNT(*) FROM members WHERE phone LIKE '136%'",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(members, n as i64);
    assert_outbox_empty(&a).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_overtakes_the_one_before_is_sent_again_on_sqlite() {
    a_batch_that_overtakes_the_one_before_is_sent_again(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_overtakes_the_one_before_is_sent_again_on_postgres() {
    a_batch_that_overtakes_the_one_before_is_sent_again(true).await;
}

/// `n` registrations of different sizes at `device`: addresses of 0 to 177 characters.
async fn import_with_addresses(device: &DatabaseConnection, ctx: &Ctx, n: usize) {
    let mut csv = String::from("name,phone,date_of_birth,community,roles,address,service_fields\n");
    for i in 0..n {
        let address = "幸福路".repeat(i % 60);
        csv.push_str(&format!(
            "居民{i},136{i:08},1950-01-01,府苑新村,resident,{address},\n"
        ));
    }
    timebank_core::import::import_members(device, ctx, csv.as_bytes(), &|_, _| {})
        .await
        .unwrap();
}

/// Push results the server applied: how many, the least and the greatest sequence.
async fn applied(city: &DatabaseConnection) -> (i64, i64, i64) {
    let rows = sql::all(
        city,
        "SELECT COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM push_results WHERE status = 'applied'",
        vec![],
    )
    .await
    .unwrap();
    (
        rows[0].try_get("", "n").unwrap(),
        rows[0].try_get("", "lo").unwrap(),
        rows[0].try_get("", "hi").unwrap(),
    )
}

/// A push batch stays within the transport's limit on its size, however many mutations would
/// fit its count (a batch the server refused for its size would hold the outbox back for
/// good): the outbox goes in batches cut by their bytes, each mutation once, in sequence.
async fn batches_are_cut_by_their_size(postgres: bool) {
    let Some((c, a, ctx)) = one_desk(postgres).await else {
        return;
    };
    import_with_addresses(&a, &ctx, 300).await;
    let limit = 20_000;
    let net = Acting {
        push_bytes: Some(limit),
        ..Acting::new(&c.base, &a, Moment::FirstPull, vec![])
    };
    let r = sync::sync_once(&a, &Through(&net)).await.unwrap();
    assert_eq!((r.pushed, r.rejected), (300, 0), "{r:?}");
    let sizes = net.sizes.borrow().clone();
    assert!(
        sizes.iter().all(|&s| s <= limit),
        "every batch within {limit} bytes: {sizes:?}"
    );
    assert!(
        sizes.len() >= 5 && sizes.iter().any(|&s| s > limit * 3 / 4),
        "the batches were cut by their size, and filled: {sizes:?}"
    );
    assert_eq!(
        net.taken.get(),
        300,
        "each mutation taken in one batch only"
    );
    assert_eq!(
        applied(&c.db).await,
        (300, 1, 300),
        "applied once each, in sequence"
    );
    assert_outbox_empty(&a).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_cut_by_their_size_on_sqlite() {
    batches_are_cut_by_their_size(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_cut_by_their_size_on_postgres() {
    batches_are_cut_by_their_size(true).await;
}

/// The device's own limit `key` on what goes over its line (`sync::K_PUSH_BYTES`,
/// `sync::K_PULL_PAGE`), when it has one.
async fn own_limit(device: &DatabaseConnection, key: &str) -> Option<u64> {
    outbox::get_setting(device, key)
        .await
        .unwrap()
        .map(|v| v.parse().unwrap())
}

/// Rounds of `device` over `net` until one ends well, each failing one timed out (at most
/// nine): that round's report, how many failed, and the device's own limit `key` the round
/// that got through started with.
async fn until_through(
    device: &DatabaseConnection,
    net: &Acting,
    key: &str,
) -> (sync::SyncReport, usize, Option<u64>) {
    let mut failed = 0;
    loop {
        let before = own_limit(device, key).await;
        match sync::sync_once(device, &Through(net)).await {
            Ok(r) => return (r, failed, before),
            Err(e) => {
                assert_eq!(e.code, timebank_core::Code::ServerUnreachable, "{e:?}");
                failed += 1;
                assert!(failed < 10, "still timing out after {failed} rounds");
            }
        }
    }
}

/// A line too slow for the batches a device sends (each times out, its answer lost though the
/// server applied it) does not hold the outbox back: after each timeout the device sends
/// batches of half that size, round after round, until they get through; then everything is
/// applied once, the outbox is empty, and the device tries larger batches again (twice the
/// size that got through, remembered for the next round).
async fn a_slow_line_takes_the_outbox_in_smaller_batches(postgres: bool) {
    let Some((c, a, ctx)) = one_desk(postgres).await else {
        return;
    };
    import_with_addresses(&a, &ctx, 300).await;
    let line = 8_000;
    let net = Acting {
        slow_line: Some(line),
        ..Acting::new(&c.base, &a, Moment::FirstPull, vec![])
    };
    let (report, failed, before) = until_through(&a, &net, sync::K_PUSH_BYTES).await;
    assert!(failed >= 1, "the first batch timed out");
    let sizes = net.sizes.borrow().clone();
    assert!(
        sizes.windows(2).any(|w| w[1] < w[0]),
        "the batches got smaller: {sizes:?}"
    );
    assert!(
        sizes.last().is_some_and(|&s| s <= line),
        "the last batch came through the line: {sizes:?}"
    );
    assert_eq!(report.rejected, 0, "{report:?}");
    assert_eq!(
        applied(&c.db).await,
        (300, 1, 300),
        "applied once each, in sequence, however many times sent"
    );
    assert_outbox_empty(&a).await;
    let through = before.expect("the round that got through went with the device's own limit");
    assert!(through <= line as u64, "{through}");
    assert_eq!(
        own_limit(&a, sync::K_PUSH_BYTES).await,
        Some(2 * through),
        "twice what got through, to be tried in the next round"
    );
    c.stop().await;
}

/// A line too slow for the pages a device asks for (each times out) does not keep it from
/// pulling: after each timeout the device asks for pages of half as many changes, round after
/// round, until they come through; then it has every row, and tries pages twice that size in
/// the next round.
async fn a_slow_line_pulls_in_smaller_pages(postgres: bool) {
    let Some((c, a, ctx)) = one_desk(postgres).await else {
        return;
    };
    let b = c.device("b").await;
    import_residents(&a, &ctx, 300).await;
    sync::sync_once(&a, &Http::new(&c.base)).await.unwrap();
    let line = 100;
    let net = Acting {
        slow_pull: Some(line),
        ..Acting::new(&c.base, &b, Moment::Push(0), vec![])
    };
    let (report, failed, before) = until_through(&b, &net, sync::K_PULL_PAGE).await;
    assert!(failed >= 1, "the first page timed out");
    let through = before.expect("the round that got through asked for the device's own size");
    assert!(through <= line as u64, "{through}");
    assert!(report.pulled >= 300, "{report:?}");
    let residents = sql::scalar_i64(
        &b,
        "SELECT COUNT(*) FROM members WHERE phone LIKE '136%'",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(residents, 300, "every resident A registered is at B");
    assert_eq!(
        own_limit(&b, sync::K_PULL_PAGE).await,
        Some(2 * through),
        "twice what got through, to be tried in the next round"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_line_pulls_in_smaller_pages_on_sqlite() {
    a_slow_line_pulls_in_smaller_pages(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_line_pulls_in_smaller_pages_on_postgres() {
    a_slow_line_pulls_in_smaller_pages(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_line_takes_the_outbox_in_smaller_batches_on_sqlite() {
    a_slow_line_takes_the_outbox_in_smaller_batches(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_line_takes_the_outbox_in_smaller_batches_on_postgres() {
    a_slow_line_takes_the_outbox_in_smaller_batches(true).await;
}

/// The outbox of `device` as the push request it sends.
async fn outbox_request(device: &DatabaseConnection) -> timebank_server::push::PushRequest {
    let rows = sql::all(device, "SELECT id, seq, name, args, hlc, schema_version, actor_id, created_at FROM outbox ORDER BY seq", vec![]).await.unwrap();
    let mutations = rows
        .iter()
        .map(|r| timebank_server::push::PushMutation {
            id: r.try_get("", "id").unwrap(),
            seq: r.try_get("", "seq").unwrap(),
            name: r.try_get("", "name").unwrap(),
            args: serde_json::from_str(&r.try_get::<String>("", "args").unwrap()).unwrap(),
            hlc: r.try_get("", "hlc").unwrap(),
            schema_version: r.try_get("", "schema_version").unwrap(),
            actor_id: r.try_get("", "actor_id").unwrap(),
            at: Some(r.try_get("", "created_at").unwrap()),
        })
        .collect();
    timebank_server::push::PushRequest { mutations }
}

/// Waiting for the next group of batches to be applied does not hold back the answer of a
/// batch already applied: a device keeps two batches on their way, and it must hear of the
/// first while the server applies the second (else it sends nothing meanwhile and the server
/// waits for it after each pair). On PostgreSQL, where a test can hold a device's turn (its
/// advisory lock) to keep a group in the middle of being applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_batch_is_answered_while_the_next_group_is_applied() {
    use sea_orm::TransactionTrait;
    let Some(c) = City::start(true, &["府苑新村"], Default::default()).await else {
        return;
    };
    let mut scopes = Vec::new();
    for (name, prefix) in [("a", "137"), ("b", "138")] {
        let d = c.device(name).await;
        let id = outbox::device_id(&d).await.unwrap();
        let ctx = Ctx::new(&c.boot.admin_id, &id, timebank_core::service::now_ms());
        let mut csv =
            String::from("name,phone,date_of_birth,community,roles,address,service_fields\n");
        for i in 0..3 {
            csv.push_str(&format!(
                "居民{name}{i},{prefix}{i:08},1950-01-01,府苑新村,resident,,\n"
            ));
        }
        timebank_core::import::import_members(&d, &ctx, csv.as_bytes(), &|_, _| {})
            .await
            .unwrap();
        let device = timebank_server::auth::Device {
            id,
            center_id: c.boot.center_id.clone(),
            role: "center".into(),
            communities: c.boot.community_ids.clone(),
        };
        scopes.push((device, outbox_request(&d).await));
    }
    // Both devices' turns held, as by a push of each on its way in another process.
    let mut holds = Vec::new();
    for (device, _) in &scopes {
        let hold = c.db.begin().await.unwrap();
        sql::exec(
            &hold,
            "SELECT pg_advisory_xact_lock(727275, hashtext(?))",
            vec![device.id.clone().into()],
        )
        .await
        .unwrap();
        holds.push(hold);
    }
    let blocked = || async {
        sql::scalar_i64(
            &c.db,
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            vec![],
        )
        .await
        .unwrap()
    };
    // Each wait below gives up (failing the test) after 30 s.
    let until = |what: &'static str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        move |done: bool| {
            assert!(done || std::time::Instant::now() < deadline, "{what}");
            !done
        }
    };
    let combiner = std::sync::Arc::new(timebank_server::push::Combiner::new(1));
    let metrics = std::sync::Arc::new(timebank_server::Metrics::default());
    let push = |i: usize| {
        let (combiner, metrics, db) = (combiner.clone(), metrics.clone(), c.db.clone());
        let (device, req) = scopes[i].clone();
        tokio::spawn(async move {
            combiner
                .push(&db, &metrics, &device, req, timebank_core::Lang::Zh)
                .await
        })
    };
    // A's batch has its turn and waits for A's lock; B's waits for the turn after it.
    let first = push(0);
    let wait = until("A's group never reached the database");
    while wait(blocked().await == 1) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = push(1);
    let wait = until("B's batch never queued for its turn");
    while wait(combiner.waiting() == 1) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A's group goes through; B's group then takes the turn and waits for B's lock.
    let hold_b = holds.pop().unwrap();
    holds.pop().unwrap().commit().await.unwrap();
    let answered = tokio::time::timeout(std::time::Duration::from_secs(30), first)
        .await
        .expect("A's answer waited for B's group to be applied")
        .unwrap()
        .unwrap();
    assert_eq!(
        answered
            .results
            .iter()
            .filter(|r| r.status == "applied")
            .count(),
        3,
        "{answered:?}"
    );
    assert_eq!(answered.next_seq, 4);
    let wait = until("B's group never reached the database");
    while wait(blocked().await == 1) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!second.is_finished(), "B's group is still being applied");
    hold_b.commit().await.unwrap();
    let b = second.await.unwrap().unwrap();
    assert_eq!(
        (b.results.len(), b.next_seq),
        (3, 4),
        "B's batch applied after its turn came: {b:?}"
    );
    let members = sql::scalar_i64(
        &c.db,
        "SELECT COUNT(*) FROM members WHERE phone LIKE '137%' OR phone LIKE '138%'",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(members, 6, "both batches applied once");
    c.stop().await;
}

/// The members of `d` with `phone`, as `id|phone` (phones may carry a mark after a `#`).
async fn holders(d: &DatabaseConnection, phone: &str) -> Vec<String> {
    rows(
        d,
        &format!(
            "SELECT id AS c0, phone AS c1 FROM members WHERE phone LIKE '{phone}%' ORDER BY id"
        ),
    )
    .await
}

/// A phone number belongs to one member at a time, on the server and on a device; a device
/// must still take the server's rows when a row of its own holds the number meanwhile:
/// - two desks register one person offline under the same phone: the second desk's
///   registration is refused (its staff are told), and its round still pulls the first
///   desk's member instead of failing on that phone for ever;
/// - a member gives up a number and another member of another community takes it: a desk of
///   both communities may pull the new holder before the old holder's change (partition by
///   partition), and still ends with each member's phone as the server has it.
async fn phone_taken(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村", "蒋村花园"], Default::default()).await
    else {
        return;
    };
    let http = Http::new(&c.base);
    let (a, b) = (c.device("a").await, c.device("b").await);
    let ctx = |d: String| Ctx::new(&c.boot.admin_id, &d, timebank_core::service::now_ms());
    let (ca, cb) = (
        ctx(outbox::device_id(&a).await.unwrap()),
        ctx(outbox::device_id(&b).await.unwrap()),
    );
    let (c1, c2) = (&c.boot.community_ids[0], &c.boot.community_ids[1]);

    // Both desks offline: 王秀芝 registered twice under 13900000055.
    execute(
        &a,
        &ca,
        register("wang-a", "王秀芝", "13900000055", c1, false),
    )
    .await
    .unwrap();
    execute(
        &b,
        &cb,
        register("wang-b", "王秀芝", "13900000055", c1, false),
    )
    .await
    .unwrap();
    sync::sync_once(&b, &http).await.unwrap();
    let r = sync::sync_once(&a, &http)
        .await
        .expect("a's round goes through");
    assert_eq!(r.rejected, 1, "{r:?}");
    assert_eq!(holders(&a, "13900000055").await, ["wang-b|13900000055"]);
    assert_eq!(sync::status(&a).await.unwrap().pending, 0);
    let told = rows(
        &a,
        &format!(
            "SELECT params AS c0 FROM inbox_messages WHERE member_id = '{}' AND kind = 'sync_rejected'",
            c.boot.admin_id
        ),
    )
    .await;
    assert!(
        told.len() == 1 && told[0].contains("duplicate_phone"),
        "the refusal is in the inbox of who registered her: {told:?}"
    );

    // Two members give their numbers to a member of the other community (so that, whichever
    // partition a desk pulls first, one new holder comes before the old holder's change):
    // 李建国 (first community) to 赵梅 (second), 孙丽 (second) to 钱伟 (first).
    let people = [
        ("li", "李建国", c1, "13900000061", "13900000081"),
        ("zhao", "赵梅", c2, "13900000071", "13900000061"),
        ("sun", "孙丽", c2, "13900000062", "13900000082"),
        ("qian", "钱伟", c1, "13900000072", "13900000062"),
    ];
    for (id, name, community, phone, _) in people {
        execute(&b, &cb, register(id, name, phone, community, false))
            .await
            .unwrap();
    }
    sync::sync_once(&b, &http).await.unwrap();
    sync::sync_once(&a, &http).await.unwrap();
    assert_eq!(holders(&a, "13900000061").await, ["li|13900000061"]);
    // The givers first (a number is free before it is taken), in one round of desk B.
    for (id, _, _, _, phone) in people {
        let edit = Command::UpdateMember(UpdateMember {
            member_id: id.into(),
            name: None,
            phone: Some(phone.into()),
            address: None,
            seen: None,
        });
        execute(&b, &cb, edit).await.unwrap();
    }
    sync::sync_once(&b, &http).await.unwrap();
    let r = sync::sync_once(&a, &http)
        .await
        .expect("a's round goes through");
    assert_eq!(r.rejected, 0, "{r:?}");
    for (id, _, _, _, phone) in people {
        assert_eq!(holders(&a, phone).await, [format!("{id}|{phone}")]);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_number_taken_elsewhere_does_not_stop_a_desk_from_pulling_on_sqlite() {
    phone_taken(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_number_taken_elsewhere_does_not_stop_a_desk_from_pulling_on_postgres() {
    phone_taken(true).await;
}
