//! Every refusal of the core with its code, and the rules that hold hours instead of losing
//! them; on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use sea_orm::ConnectionTrait;
use timebank_core::domain::{ConfirmMethod, Relation, Role, Rules, Vetting};
use timebank_core::service::command::*;
use timebank_core::{sql, Code};

fn o(id: &str) -> String {
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_refusals_name_what_is_wrong() {
    for t in backends().await {
        let db = &t.db;
        let w = world(db, Rules::default()).await;
        let at = T0 + 10 * MIN;
        w.exec(db, &w.xiuzhi, at, post("o1", &w.wang, 60))
            .await
            .unwrap();
        let code =
            |r: Result<timebank_core::Outcome, timebank_core::CoreError>| r.unwrap_err().code;
        // Someone who is neither the resident, nor family, nor staff cannot ask for him.
        assert_eq!(
            code(w.exec(db, &w.zhao, at, post("o2", &w.wang, 60)).await),
            Code::Forbidden
        );
        // Bad input.
        assert_eq!(
            code(w.exec(db, &w.xiuzhi, at, post("o3", &w.wang, 2)).await),
            Code::InvalidInput
        );
        // A volunteer not yet verified, one from another community, one not accepted.
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.unverified_vol,
                    at,
                    Command::AcceptOrder { order_id: o("o1") }
                )
                .await
            ),
            Code::VolunteerNotVerified
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.neighbour_vol,
                    at,
                    Command::AcceptOrder { order_id: o("o1") }
                )
                .await
            ),
            Code::OutOfScope
        );
        assert_eq!(
            code(
                w.exec(db, &w.zhao, at, Command::AcceptOrder { order_id: o("o1") })
                    .await
            ),
            Code::NotAVolunteer
        );
        assert_eq!(
            code(
                w.exec(db, &w.majun, at, Command::CheckIn { order_id: o("o1") })
                    .await
            ),
            Code::NotAccepted
        );
        w.exec(db, &w.majun, at, Command::AcceptOrder { order_id: o("o1") })
            .await
            .unwrap();
        assert_eq!(
            code(
                w.exec(db, &w.majun, at, Command::AcceptOrder { order_id: o("o1") })
                    .await
            ),
            Code::AlreadyAccepted
        );
        // One volunteer needed: the second is told who took it.
        w.exec(
            db,
            &w.staff,
            at,
            Command::SetVetting {
                member_id: w.unverified_vol.clone(),
                vetting: Vetting::Verified,
            },
        )
        .await
        .unwrap();
        let e = w
            .exec(
                db,
                &w.unverified_vol,
                at,
                Command::AcceptOrder { order_id: o("o1") },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::OrderFull);
        assert_eq!(
            e.message(timebank_core::Lang::Zh),
            "这个订单已被马军接单，人数已满。"
        );
        // Check-out before check-in; release after check-in; cancel after check-in.
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    at,
                    Command::CheckOut {
                        order_id: o("o1"),
                        note: None
                    }
                )
                .await
            ),
            Code::NotCheckedIn
        );
        w.exec(
            db,
            &w.majun,
            at + MIN,
            Command::CheckIn { order_id: o("o1") },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    at + MIN,
                    Command::CheckIn { order_id: o("o1") }
                )
                .await
            ),
            Code::AlreadyCheckedIn
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    at + 2 * MIN,
                    Command::ReleaseOrder { order_id: o("o1") }
                )
                .await
            ),
            Code::IllegalTransition
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.xiuzhi,
                    at + 2 * MIN,
                    Command::CancelOrder {
                        order_id: o("o1"),
                        reason: "不需要了".into()
                    }
                )
                .await
            ),
            Code::IllegalTransition
        );
        w.exec(
            db,
            &w.majun,
            at + 62 * MIN,
            Command::CheckOut {
                order_id: o("o1"),
                note: None,
            },
        )
        .await
        .unwrap();
        // A wrong PIN; a stranger confirming in the app; a volunteer confirming as staff.
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    at + 63 * MIN,
                    Command::ConfirmVisit {
                        order_id: o("o1"),
                        method: ConfirmMethod::Pin,
                        pin: Some("1111".into())
                    }
                )
                .await
            ),
            Code::PinIncorrect
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.zhao,
                    at + 63 * MIN,
                    Command::ConfirmVisit {
                        order_id: o("o1"),
                        method: ConfirmMethod::App,
                        pin: None
                    }
                )
                .await
            ),
            Code::Forbidden
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    at + 63 * MIN,
                    Command::ConfirmVisit {
                        order_id: o("o1"),
                        method: ConfirmMethod::Staff,
                        pin: None
                    }
                )
                .await
            ),
            Code::Forbidden
        );
        // The daughter confirms in the app; confirming again is an illegal transition.
        w.exec(
            db,
            &w.xiuzhi,
            at + 64 * MIN,
            Command::ConfirmVisit {
                order_id: o("o1"),
                method: ConfirmMethod::App,
                pin: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.xiuzhi,
                    at + 65 * MIN,
                    Command::ConfirmVisit {
                        order_id: o("o1"),
                        method: ConfirmMethod::App,
                        pin: None
                    }
                )
                .await
            ),
            Code::IllegalTransition
        );
        assert_eq!(w.balance(db, &w.majun).await, 60 + 60);
        // Rated once only.
        w.exec(
            db,
            &w.xiuzhi,
            at + 70 * MIN,
            Command::RateService {
                feedback_id: o("f1"),
                order_id: o("o1"),
                rating: 4,
                comment: String::new(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.wang,
                    at + 71 * MIN,
                    Command::RateService {
                        feedback_id: o("f2"),
                        order_id: o("o1"),
                        rating: 5,
                        comment: String::new()
                    }
                )
                .await
            ),
            Code::AlreadyRated
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.wang,
                    at + 71 * MIN,
                    Command::RateService {
                        feedback_id: o("f3"),
                        order_id: o("o1"),
                        rating: 9,
                        comment: String::new()
                    }
                )
                .await
            ),
            Code::InvalidInput
        );
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_checked_in_the_core() {
    for t in backends().await {
        let db = &t.db;
        let w = world(db, Rules::default()).await;
        let code =
            |r: Result<timebank_core::Outcome, timebank_core::CoreError>| r.unwrap_err().code;
        // Only administrators change rules or the catalogue, or grant staff roles.
        assert_eq!(
            code(
                w.exec(db, &w.staff, T0, Command::SetRules(Rules::default()))
                    .await
            ),
            Code::Forbidden
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    T0,
                    Command::UpsertService {
                        code: "x".into(),
                        field_code: "health".into(),
                        name_zh: "x".into(),
                        name_en: "x".into(),
                        active: true
                    }
                )
                .await
            ),
            Code::Forbidden
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    T0,
                    reg(
                        "s2",
                        "某某",
                        "13711112222",
                        (1980, 1, 1),
                        vec![Role::Staff],
                        w.fuyuan(),
                        false
                    )
                )
                .await
            ),
            Code::InvalidInput
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    T0,
                    reg(
                        "r2",
                        "某某",
                        "13711112222",
                        (1980, 1, 1),
                        vec![Role::Resident],
                        w.fuyuan(),
                        false
                    )
                )
                .await
            ),
            Code::Forbidden
        );
        // Bad rules are refused with the field named.
        let e = w
            .exec(
                db,
                &w.admin,
                T0,
                Command::SetRules(Rules {
                    rounding_minutes: 0,
                    ..Rules::default()
                }),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.detail["field"].as_str()),
            (Code::InvalidInput, "rounding_minutes")
        );
        // Phones: duplicates and nonsense.
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    T0,
                    reg(
                        "r3",
                        "某某",
                        "13700000001",
                        (1980, 1, 1),
                        vec![Role::Resident],
                        w.fuyuan(),
                        false
                    )
                )
                .await
            ),
            Code::DuplicatePhone
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    T0,
                    reg(
                        "r4",
                        "某某",
                        "12345",
                        (1980, 1, 1),
                        vec![Role::Resident],
                        w.fuyuan(),
                        false
                    )
                )
                .await
            ),
            Code::InvalidInput
        );
        // Safeguarding: anyone may report; only staff may read.
        w.exec(
            db,
            &w.majun,
            T0,
            Command::FileSafeguarding(FileSafeguarding {
                report_id: o("sg1"),
                subject_member_id: Some(w.wang.clone()),
                order_id: None,
                category: "neglect".into(),
                details: "几天没见老人出门".into(),
            }),
        )
        .await
        .unwrap();
        let vol = timebank_core::service::load_actor(db, &w.majun)
            .await
            .unwrap();
        assert_eq!(
            timebank_core::read::safeguarding(db, &vol)
                .await
                .unwrap_err()
                .code,
            Code::Forbidden
        );
        let staff = timebank_core::service::load_actor(db, &w.staff)
            .await
            .unwrap();
        assert_eq!(
            timebank_core::read::safeguarding(db, &staff)
                .await
                .unwrap()
                .len(),
            1
        );
        // Personal data: a volunteer cannot list residents nor see another's account.
        assert_eq!(
            timebank_core::read::members_of(db, &vol, w.fuyuan(), T0)
                .await
                .unwrap_err()
                .code,
            Code::Forbidden
        );
        assert_eq!(
            timebank_core::read::balance(db, &vol, &w.wang, 10)
                .await
                .unwrap_err()
                .code,
            Code::Forbidden
        );
        // The daughter may see her father's account.
        let daughter = timebank_core::service::load_actor(db, &w.xiuzhi)
            .await
            .unwrap();
        assert!(timebank_core::read::balance(db, &daughter, &w.wang, 10)
            .await
            .is_ok());
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_hours_for_staff_instead_of_losing_them() {
    for t in backends().await {
        let db = &t.db;
        let w = world(
            db,
            Rules {
                max_per_visit: 60,
                max_per_day: 120,
                ..Rules::default()
            },
        )
        .await;
        let at = T0 + 10 * MIN;
        w.exec(db, &w.xiuzhi, at, post("o1", &w.wang, 120))
            .await
            .unwrap();
        w.exec(db, &w.majun, at, Command::AcceptOrder { order_id: o("o1") })
            .await
            .unwrap();
        w.exec(
            db,
            &w.majun,
            at + MIN,
            Command::CheckIn { order_id: o("o1") },
        )
        .await
        .unwrap();
        w.exec(
            db,
            &w.majun,
            at + 121 * MIN,
            Command::CheckOut {
                order_id: o("o1"),
                note: None,
            },
        )
        .await
        .unwrap();
        let out = w
            .exec(
                db,
                &w.staff,
                at + 122 * MIN,
                Command::ConfirmVisit {
                    order_id: o("o1"),
                    method: ConfirmMethod::Staff,
                    pin: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(out.detail["credited"][0]["credited"], 60);
        assert_eq!(out.detail["credited"][0]["held"], 60);
        assert_eq!(w.balance(db, &w.majun).await, 60 + 60);
        let flag = sql::one(
            db,
            "SELECT id, held_minutes, kind FROM ledger_flags WHERE status = 'open'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        let flag_id: String = flag.try_get("", "id").unwrap();
        assert_eq!(flag.try_get::<i64>("", "held_minutes").unwrap(), 60);
        assert_eq!(flag.try_get::<String>("", "kind").unwrap(), "max_per_visit");
        // Staff are told, and approve: the held hour is credited once.
        let told = sql::scalar_i64(
            db,
            "SELECT COUNT(*) FROM inbox_messages WHERE member_id = ? AND kind = 'ledger_flag'",
            vec![w.staff.clone().into()],
        )
        .await
        .unwrap();
        assert_eq!(told, 1);
        assert_eq!(
            w.exec(
                db,
                &w.majun,
                at + 130 * MIN,
                Command::ApproveHeld {
                    flag_id: flag_id.clone(),
                    transfer_id: o("t-approve"),
                    note: String::new()
                }
            )
            .await
            .unwrap_err()
            .code,
            Code::Forbidden
        );
        w.exec(
            db,
            &w.staff,
            at + 130 * MIN,
            Command::ApproveHeld {
                flag_id: flag_id.clone(),
                transfer_id: o("t-approve"),
                note: "确认服务两小时".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(w.balance(db, &w.majun).await, 60 + 120);
        assert_eq!(
            w.exec(
                db,
                &w.staff,
                at + 131 * MIN,
                Command::ApproveHeld {
                    flag_id,
                    transfer_id: o("t-approve-2"),
                    note: String::new()
                }
            )
            .await
            .unwrap_err()
            .code,
            Code::IllegalTransition
        );
        assert!(timebank_core::read::verify(db, &|_, _| {})
            .await
            .unwrap()
            .ok());
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_gifts_caps_and_reversals() {
    for t in backends().await {
        let db = &t.db;
        let w = world(
            db,
            Rules {
                balance_cap: 90,
                ..Rules::default()
            },
        )
        .await;
        let code =
            |r: Result<timebank_core::Outcome, timebank_core::CoreError>| r.unwrap_err().code;
        // Ma Jun links his mother (Wang's daughter is not his family; use 赵小明 as his parent).
        w.exec(
            db,
            &w.staff,
            T0,
            Command::LinkFamily {
                member_id: w.majun.clone(),
                relative_id: w.zhao.clone(),
                relation: Relation::Parent,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    T0,
                    Command::Gift {
                        transfer_id: o("g0"),
                        to_member_id: w.zhao.clone(),
                        minutes: 61,
                        note: String::new()
                    }
                )
                .await
            ),
            Code::InsufficientBalance
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    T0,
                    Command::Gift {
                        transfer_id: o("g0"),
                        to_member_id: w.zhao.clone(),
                        minutes: 0,
                        note: String::new()
                    }
                )
                .await
            ),
            Code::InvalidInput
        );
        w.exec(
            db,
            &w.majun,
            T0,
            Command::Gift {
                transfer_id: o("g1"),
                to_member_id: w.zhao.clone(),
                minutes: 45,
                note: "给妈妈".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (w.balance(db, &w.majun).await, w.balance(db, &w.zhao).await),
            (15, 45)
        );
        // The cap of the receiving account.
        w.exec(
            db,
            &w.staff,
            T0,
            Command::LinkFamily {
                member_id: w.neighbour_vol.clone(),
                relative_id: w.zhao.clone(),
                relation: Relation::Spouse,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.neighbour_vol,
                    T0,
                    Command::Gift {
                        transfer_id: o("g2"),
                        to_member_id: w.zhao.clone(),
                        minutes: 60,
                        note: String::new()
                    }
                )
                .await
            ),
            Code::BalanceCapExceeded
        );
        // A reversal moves it back, once; only staff reverse; a reversal is not reversed.
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    T0,
                    Command::ReverseTransfer {
                        transfer_id: o("r0"),
                        reverses_id: o("g1"),
                        reason: "误操作".into()
                    }
                )
                .await
            ),
            Code::Forbidden
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    T0,
                    Command::ReverseTransfer {
                        transfer_id: o("r0"),
                        reverses_id: o("g1"),
                        reason: " ".into()
                    }
                )
                .await
            ),
            Code::InvalidInput
        );
        w.exec(
            db,
            &w.staff,
            T0,
            Command::ReverseTransfer {
                transfer_id: o("r1"),
                reverses_id: o("g1"),
                reason: "误操作".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (w.balance(db, &w.majun).await, w.balance(db, &w.zhao).await),
            (60, 0)
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    T0,
                    Command::ReverseTransfer {
                        transfer_id: o("r2"),
                        reverses_id: o("g1"),
                        reason: "again".into()
                    }
                )
                .await
            ),
            Code::AlreadyReversed
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    T0,
                    Command::ReverseTransfer {
                        transfer_id: o("r3"),
                        reverses_id: o("r1"),
                        reason: "again".into()
                    }
                )
                .await
            ),
            Code::InvalidInput
        );
        let r1 = sql::one(
            db,
            "SELECT reason, approved_by FROM transfers WHERE id = 'r1'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            r1.try_get::<Option<String>>("", "approved_by")
                .unwrap()
                .as_deref(),
            Some(w.staff.as_str())
        );
        // The database itself refuses to edit or delete ledger rows.
        for stmt in [
            "UPDATE ledger_entries SET amount = 0",
            "DELETE FROM ledger_entries",
            "UPDATE transfers SET memo = 'x'",
            "DELETE FROM transfers",
        ] {
            let err = db.execute_unprepared(stmt).await.unwrap_err();
            assert!(
                err.to_string().contains("ledger_append_only"),
                "{}: {stmt}: {err}",
                t.backend
            );
        }
        assert!(timebank_core::read::verify(db, &|_, _| {})
            .await
            .unwrap()
            .ok());
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_confirms_expires_and_escalates() {
    for t in backends().await {
        let db = &t.db;
        let w = world(
            db,
            Rules {
                auto_confirm_minutes: 60,
                urgent_escalation_minutes: 30,
                ..Rules::default()
            },
        )
        .await;
        let at = T0 + 10 * MIN;
        // A served visit nobody confirms; an order whose window passes; an urgent order nobody takes.
        w.exec(db, &w.xiuzhi, at, post("served", &w.wang, 60))
            .await
            .unwrap();
        w.exec(
            db,
            &w.majun,
            at,
            Command::AcceptOrder {
                order_id: o("served"),
            },
        )
        .await
        .unwrap();
        w.exec(
            db,
            &w.majun,
            at,
            Command::CheckIn {
                order_id: o("served"),
            },
        )
        .await
        .unwrap();
        w.exec(
            db,
            &w.majun,
            at + 30 * MIN,
            Command::CheckOut {
                order_id: o("served"),
                note: None,
            },
        )
        .await
        .unwrap();
        let mut late = match post("late", &w.wang, 30) {
            Command::PostOrder(p) => p,
            _ => unreachable!(),
        };
        late.window_start = Some(at + 60 * MIN);
        late.window_end = Some(at + 120 * MIN);
        w.exec(db, &w.xiuzhi, at, Command::PostOrder(late))
            .await
            .unwrap();
        let mut urgent = match post("urgent", &w.wang, 30) {
            Command::PostOrder(p) => p,
            _ => unreachable!(),
        };
        urgent.urgent = true;
        w.exec(db, &w.xiuzhi, at, Command::PostOrder(urgent))
            .await
            .unwrap();
        // A volunteer cannot run the scheduler.
        assert_eq!(
            w.exec(db, &w.majun, at, Command::Tick)
                .await
                .unwrap_err()
                .code,
            Code::Forbidden
        );
        let out = w
            .exec(db, &w.staff, at + 200 * MIN, Command::Tick)
            .await
            .unwrap();
        assert_eq!(
            out.detail,
            serde_json::json!({"auto_confirmed": 1, "expired": 1, "escalated": 1})
        );
        let st = |id: &str| {
            let id = id.to_owned();
            async move {
                sql::one(
                    db,
                    "SELECT status, escalated FROM orders WHERE id = ?",
                    vec![id.into()],
                )
                .await
                .unwrap()
                .unwrap()
            }
        };
        assert_eq!(
            st("served").await.try_get::<String>("", "status").unwrap(),
            "completed"
        );
        assert_eq!(
            st("late").await.try_get::<String>("", "status").unwrap(),
            "expired"
        );
        assert!(st("urgent").await.try_get::<bool>("", "escalated").unwrap());
        assert_eq!(w.balance(db, &w.majun).await, 60 + 30);
        // The urgent order is widened: the volunteer next door is told and may now take it.
        let told = sql::scalar_i64(
            db,
            "SELECT COUNT(*) FROM inbox_messages WHERE member_id = ? AND kind = 'urgent_order'",
            vec![w.neighbour_vol.clone().into()],
        )
        .await
        .unwrap();
        assert_eq!(told, 1);
        let chen = timebank_core::service::load_actor(db, &w.neighbour_vol)
            .await
            .unwrap();
        let board = timebank_core::read::board(db, &chen, &Default::default())
            .await
            .unwrap();
        assert!(
            board.iter().any(|b| b.id == "urgent" && b.escalated),
            "{board:?}"
        );
        w.exec(
            db,
            &w.neighbour_vol,
            at + 201 * MIN,
            Command::AcceptOrder {
                order_id: o("urgent"),
            },
        )
        .await
        .unwrap();
        // Running the clock again changes nothing more.
        let again = w
            .exec(db, &w.staff, at + 202 * MIN, Command::Tick)
            .await
            .unwrap();
        assert_eq!(
            again.detail,
            serde_json::json!({"auto_confirmed": 0, "expired": 0, "escalated": 0})
        );
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurring_orders_disputes_and_activities() {
    for t in backends().await {
        let db = &t.db;
        let w = world(db, Rules::default()).await;
        let at = T0 + 10 * MIN;
        let code =
            |r: Result<timebank_core::Outcome, timebank_core::CoreError>| r.unwrap_err().code;
        // "Every evening for three days": one order, three visits.
        let mut p = match post("rec", &w.wang, 60) {
            Command::PostOrder(p) => p,
            _ => unreachable!(),
        };
        p.visits = vec![at + 60 * MIN, at + 1500 * MIN, at + 2940 * MIN];
        w.exec(db, &w.xiuzhi, at, Command::PostOrder(p))
            .await
            .unwrap();
        w.exec(
            db,
            &w.majun,
            at,
            Command::AcceptOrder { order_id: o("rec") },
        )
        .await
        .unwrap();
        for visit in 0..3 {
            let base = at + visit * 1440 * MIN;
            w.exec(
                db,
                &w.majun,
                base + 60 * MIN,
                Command::CheckIn { order_id: o("rec") },
            )
            .await
            .unwrap();
            w.exec(
                db,
                &w.majun,
                base + 120 * MIN,
                Command::CheckOut {
                    order_id: o("rec"),
                    note: None,
                },
            )
            .await
            .unwrap();
            if visit == 1 {
                // The daughter disputes the second visit; staff resolve it with 30 minutes.
                w.exec(
                    db,
                    &w.xiuzhi,
                    base + 121 * MIN,
                    Command::DisputeVisit {
                        order_id: o("rec"),
                        reason: "只待了半小时".into(),
                    },
                )
                .await
                .unwrap();
                assert_eq!(
                    code(
                        w.exec(
                            db,
                            &w.xiuzhi,
                            base + 122 * MIN,
                            Command::ConfirmVisit {
                                order_id: o("rec"),
                                method: ConfirmMethod::App,
                                pin: None
                            }
                        )
                        .await
                    ),
                    Code::IllegalTransition
                );
                w.exec(
                    db,
                    &w.staff,
                    base + 130 * MIN,
                    Command::ResolveDispute {
                        order_id: o("rec"),
                        credit: true,
                        minutes: Some(30),
                        note: "电话核实".into(),
                    },
                )
                .await
                .unwrap();
            } else {
                w.exec(
                    db,
                    &w.wang,
                    base + 121 * MIN,
                    Command::ConfirmVisit {
                        order_id: o("rec"),
                        method: ConfirmMethod::Pin,
                        pin: Some("2468".into()),
                    },
                )
                .await
                .unwrap();
            }
            let status = sql::one(db, "SELECT status FROM orders WHERE id = 'rec'", vec![])
                .await
                .unwrap()
                .unwrap()
                .try_get::<String>("", "status")
                .unwrap();
            assert_eq!(
                status,
                if visit < 2 { "accepted" } else { "completed" },
                "after visit {visit}"
            );
        }
        assert_eq!(w.balance(db, &w.majun).await, 60 + 60 + 30 + 60);
        let credits = sql::scalar_i64(
            db,
            "SELECT COUNT(*) FROM transfers WHERE order_id = 'rec' AND kind = 'service_credit'",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(credits, 3, "one credit per visit");

        // An activity with two places: sign-up, full, attendance credited once.
        w.exec(
            db,
            &w.staff,
            at,
            Command::CreateActivity(CreateActivity {
                activity_id: o("act"),
                community_id: w.fuyuan().into(),
                title: "重阳节包饺子".into(),
                description: String::new(),
                field_code: None,
                starts_at: at + 1000 * MIN,
                credit_minutes: 90,
                capacity: 2,
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    at,
                    Command::CreateActivity(CreateActivity {
                        activity_id: o("act2"),
                        community_id: w.fuyuan().into(),
                        title: "x".into(),
                        description: String::new(),
                        field_code: None,
                        starts_at: at,
                        credit_minutes: 60,
                        capacity: 5
                    })
                )
                .await
            ),
            Code::Forbidden
        );
        w.exec(
            db,
            &w.majun,
            at,
            Command::SignUpActivity {
                activity_id: o("act"),
                member_id: w.majun.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.majun,
                    at,
                    Command::SignUpActivity {
                        activity_id: o("act"),
                        member_id: w.majun.clone()
                    }
                )
                .await
            ),
            Code::AlreadySignedUp
        );
        w.exec(
            db,
            &w.zhao,
            at,
            Command::SignUpActivity {
                activity_id: o("act"),
                member_id: w.zhao.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.xiuzhi,
                    at,
                    Command::SignUpActivity {
                        activity_id: o("act"),
                        member_id: w.xiuzhi.clone()
                    }
                )
                .await
            ),
            Code::ActivityFull
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    at,
                    Command::RecordAttendance {
                        activity_id: o("act"),
                        member_ids: vec![w.xiuzhi.clone()]
                    }
                )
                .await
            ),
            Code::NotSignedUp
        );
        let before = w.balance(db, &w.majun).await;
        w.exec(
            db,
            &w.staff,
            at + 1100 * MIN,
            Command::RecordAttendance {
                activity_id: o("act"),
                member_ids: vec![w.majun.clone(), w.zhao.clone()],
            },
        )
        .await
        .unwrap();
        assert_eq!(
            w.balance(db, &w.majun).await,
            before + 90,
            "the volunteer is credited"
        );
        assert_eq!(
            w.balance(db, &w.zhao).await,
            0,
            "a resident who is not a volunteer attends without credit"
        );
        assert_eq!(
            code(
                w.exec(
                    db,
                    &w.staff,
                    at + 1101 * MIN,
                    Command::RecordAttendance {
                        activity_id: o("act"),
                        member_ids: vec![w.majun.clone()]
                    }
                )
                .await
            ),
            Code::IllegalTransition
        );
        assert!(timebank_core::read::verify(db, &|_, _| {})
            .await
            .unwrap()
            .ok());
        t.cleanup().await;
    }
}
