//! The story of the time bank, on SQLite and on PostgreSQL: Wang Xiuzhi asks for help for her
//! father, Ma Jun serves, the father confirms with his PIN, the hours move as the rules say,
//! the audit trail and the outbox record it all; then the rules that block.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use timebank_core::domain::{ConfirmMethod, Payer, Rules};
use timebank_core::service::command::Command;
use timebank_core::{read, sql, Code, Lang};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wang_xiuzhi_asks_for_help_for_her_father_and_ma_jun_is_credited() {
    for t in backends().await {
        let db = &t.db;
        let w = world(db, Rules::default()).await;
        let before_issuing = sql::scalar_i64(
            db,
            "SELECT balance FROM accounts WHERE kind = 'issuing'",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(
            w.balance(db, &w.majun).await,
            60,
            "{}: sign-up bonus",
            t.backend
        );

        w.exec(db, &w.xiuzhi, T0 + 10 * MIN, post("order-1", &w.wang, 60))
            .await
            .unwrap();
        w.exec(
            db,
            &w.majun,
            T0 + 20 * MIN,
            Command::AcceptOrder {
                order_id: "order-1".into(),
            },
        )
        .await
        .unwrap();
        w.exec(
            db,
            &w.majun,
            T0 + 60 * MIN,
            Command::CheckIn {
                order_id: "order-1".into(),
            },
        )
        .await
        .unwrap();
        let out = w
            .exec(
                db,
                &w.majun,
                T0 + 112 * MIN,
                Command::CheckOut {
                    order_id: "order-1".into(),
                    note: Some("老人精神不错".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.detail["minutes"], 52);
        w.exec(
            db,
            &w.majun,
            T0 + 113 * MIN,
            Command::ConfirmVisit {
                order_id: "order-1".into(),
                method: ConfirmMethod::Pin,
                pin: Some("2468".into()),
            },
        )
        .await
        .unwrap();

        // 52 minutes round to 45 (15-minute unit); paid by the programme's issuing account.
        assert_eq!(w.balance(db, &w.majun).await, 60 + 45, "{}", t.backend);
        let issuing = sql::scalar_i64(
            db,
            "SELECT balance FROM accounts WHERE kind = 'issuing'",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(issuing, before_issuing - 45);
        assert_eq!(
            w.balance(db, &w.wang).await,
            0,
            "public-welfare mode: the father pays nothing"
        );
        let status = sql::one(db, "SELECT status FROM orders WHERE id = 'order-1'", vec![])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.try_get::<String>("", "status").unwrap(), "completed");

        // The audit trail: who did what, on whose behalf, on which device.
        let staff = timebank_core::service::load_actor(db, &w.staff)
            .await
            .unwrap();
        let trail = read::audit(db, &staff, Some("order-1"), 50).await.unwrap();
        let find = |action: &str| {
            trail
                .iter()
                .find(|r| r.action == action)
                .unwrap_or_else(|| panic!("no {action} in {trail:?}"))
        };
        assert_eq!(find("post_order").actor, "王秀芝");
        assert_eq!(find("post_order").on_behalf_of.as_deref(), Some("王德明"));
        assert_eq!(find("accept_order").actor, "马军");
        assert_eq!(
            find("confirm_visit").on_behalf_of.as_deref(),
            Some("王德明")
        );
        assert!(trail.iter().all(|r| r.device_id == w.boot.device_id));

        // A rating, and the dashboard counts it all.
        w.exec(
            db,
            &w.xiuzhi,
            T0 + 200 * MIN,
            Command::RateService {
                feedback_id: "fb-1".into(),
                order_id: "order-1".into(),
                rating: 5,
                comment: "马军很耐心".into(),
            },
        )
        .await
        .unwrap();
        let d = read::dashboard(db, Some(&w.boot.community_ids), T0 + 300 * MIN)
            .await
            .unwrap();
        assert_eq!(d.orders_completed_month, 1);
        assert_eq!(d.minutes_deposited, 45);
        assert_eq!(d.satisfaction_avg, Some(5.0));
        assert_eq!(d.median_minutes_to_accept, Some(10));
        assert_eq!(
            d.by_field
                .iter()
                .find(|c| c.key == "daily_living")
                .unwrap()
                .minutes_credited,
            45
        );

        // Everyone concerned was told, in the inbox.
        for (who, kind) in [
            (&w.xiuzhi, "order_accepted"),
            (&w.xiuzhi, "volunteer_arrived"),
            (&w.wang, "visit_complete"),
            (&w.majun, "hours_credited"),
            (&w.majun, "new_order"),
        ] {
            let n = sql::scalar_i64(
                db,
                "SELECT COUNT(*) FROM inbox_messages WHERE member_id = ? AND kind = ?",
                vec![who.clone().into(), kind.into()],
            )
            .await
            .unwrap();
            assert!(n >= 1, "{who} should have {kind}");
        }

        // The outbox: one mutation per command, gap-free sequence, time-ordered ids and clock.
        let rows = sql::all(
            db,
            "SELECT id, seq, name, hlc, schema_version, args FROM outbox ORDER BY seq",
            vec![],
        )
        .await
        .unwrap();
        let audits = count(db, "audit_log").await;
        assert_eq!(
            rows.len() as i64,
            audits - 1,
            "every command but the bootstrap is in the outbox"
        );
        let mut last_hlc = String::new();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.try_get::<i64>("", "seq").unwrap(), i as i64 + 1);
            let id: String = r.try_get("", "id").unwrap();
            assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
            let hlc: String = r.try_get("", "hlc").unwrap();
            assert!(hlc > last_hlc, "hlc must increase: {hlc} after {last_hlc}");
            last_hlc = hlc;
            assert_eq!(
                r.try_get::<i32>("", "schema_version").unwrap(),
                timebank_migrations::SCHEMA_VERSION
            );
            assert!(
                !r.try_get::<String>("", "args").unwrap().contains("2468"),
                "the PIN never reaches the outbox"
            );
        }
        assert!(rows
            .iter()
            .any(|r| r.try_get::<String>("", "name").unwrap() == "confirm_visit"));
        assert!(read::verify(db, &|_, _| {}).await.unwrap().ok());
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_that_block_say_exactly_why_and_write_nothing() {
    for t in backends().await {
        let db = &t.db;
        let w = world(db, Rules::default()).await;
        let before = counts(db).await;

        // A gift to someone who is not family.
        let e = w
            .exec(
                db,
                &w.majun,
                T0 + 5 * MIN,
                Command::Gift {
                    transfer_id: "g1".into(),
                    to_member_id: w.zhao.clone(),
                    minutes: 30,
                    note: String::new(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::GiftNotAllowed);
        assert_eq!(
            e.message(Lang::Zh),
            "按照本项目规则，时间只能赠送给配偶和直系亲属；赵小明不在此范围内。"
        );
        assert_eq!(e.message(Lang::En), "Under this programme's rules hours may only be given to a spouse or direct relatives; 赵小明 is not.");
        assert_eq!(
            counts(db).await,
            before,
            "{}: a refused gift writes nothing",
            t.backend
        );

        // Spending under the minimum age, in reciprocal (beneficiary-pays) mode.
        w.exec(
            db,
            &w.admin,
            T0 + 6 * MIN,
            Command::SetRules(Rules {
                payer: Payer::Beneficiary,
                ..Rules::default()
            }),
        )
        .await
        .unwrap();
        let before = counts(db).await;
        let e = w
            .exec(db, &w.zhao, T0 + 7 * MIN, post("o-zhao", &w.zhao, 30))
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::UnderMinSpendAge);
        assert_eq!(e.message(Lang::Zh), "按照本项目规则，年满60周岁才能使用时间兑换服务（当前45周岁）。如有特殊困难，请工作人员登记困难情况。");
        assert_eq!(
            counts(db).await,
            before,
            "{}: a refused order writes nothing",
            t.backend
        );

        // With a hardship exception recorded by staff it goes through (and is paid from his
        // account: he has no balance, so the overdraft limit then refuses it).
        w.exec(
            db,
            &w.staff,
            T0 + 8 * MIN,
            Command::SetHardship {
                member_id: w.zhao.clone(),
                hardship: true,
            },
        )
        .await
        .unwrap();
        let e = w
            .exec(db, &w.zhao, T0 + 9 * MIN, post("o-zhao", &w.zhao, 30))
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::OverdraftLimit);
        t.cleanup().await;
    }
}
