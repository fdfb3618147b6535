//! The story of the time bank, on SQLite and on PostgreSQL.
//!
//! Wang Xiuzhi (王秀芝) is in hospital with her mother; her father Wang Deming (王德明, 85)
//! lives alone in 府苑新村. She asks for a meal to be brought to him. Ma Jun (马军), a verified
//! volunteer of the same village, takes the order, checks in, checks out an hour later, and
//! the father confirms with his PIN on Ma Jun's phone. Ma Jun is credited the hour from the
//! programme's issuing account; everyone concerned is told; the audit trail says who acted for
//! whom; the outbox holds one mutation per command. Then the programme's rules block a gift
//! and an order, saying why in plain Chinese, and write nothing.
#![allow(clippy::unwrap_used)]
#[macro_use]
mod common;
use common::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use timebank_core::domain::{Payer, Rules};
use timebank_core::entities::{audit_log, feedback, outbox, visit_attendance};
use timebank_core::service::command::Command;
use timebank_core::{Code, Lang};

both_backends!(
    wang_xiuzhi_asks_for_her_father_and_ma_jun_is_credited_the_hour_he_served,
    a_gift_outside_the_family_and_spending_under_the_minimum_age_are_refused_and_write_nothing,
    the_outbox_clock_keeps_increasing_when_the_wall_clock_goes_back,
);

async fn audit_of(t: &TestDb, entity_id: &str) -> Vec<audit_log::Model> {
    audit_log::Entity::find()
        .filter(audit_log::Column::EntityId.eq(entity_id))
        .order_by_asc(audit_log::Column::At)
        .all(&t.db)
        .await
        .unwrap()
}

async fn wang_xiuzhi_asks_for_her_father_and_ma_jun_is_credited_the_hour_he_served(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let b = t.backend;
    // Ma Jun's sign-up bonus (one hour, from the issuing account) is all he has so far.
    assert_eq!(town.balance(db, &p.majun).await, 60, "{b}: sign-up bonus");
    let issuing_before = town.issuing_balance(db).await;
    assert_eq!(
        issuing_before, -180,
        "{b}: three volunteers' bonuses were issued"
    );

    let id = "order-wang-lunch";
    let posted_at = T0 + 10 * MIN;
    town.ok(db, &p.xiuzhi, posted_at, post(id, &p.wang, 60))
        .await;
    assert_eq!(order_status(db, id).await, "open");
    town.ok(db, &p.majun, posted_at + 10 * MIN, accept(id))
        .await;
    assert_eq!(order_status(db, id).await, "accepted");
    let arrived = posted_at + 30 * MIN;
    town.ok(db, &p.majun, arrived, check_in(id)).await;
    assert_eq!(order_status(db, id).await, "in_service");
    let out = town
        .ok(
            db,
            &p.majun,
            arrived + 62 * MIN,
            Command::CheckOut {
                order_id: id.into(),
                note: Some("老人精神不错，饭都吃完了".into()),
                served: None,
            },
        )
        .await;
    assert_eq!(out.detail["minutes"], 62, "{b}: served minutes");
    assert_eq!(order_status(db, id).await, "awaiting_confirmation");
    // The father types his PIN on Ma Jun's phone.
    let out = town
        .ok(db, &p.majun, arrived + 63 * MIN, confirm_pin(id, WANG_PIN))
        .await;
    assert_eq!(
        out.detail["credited"],
        serde_json::json!([{"volunteer": p.majun, "credited": 60, "held": 0}]),
        "{b}: 62 minutes round to 60 (15-minute unit)"
    );

    // The accounts move as the rules say: public-welfare mode, the programme pays.
    assert_eq!(town.balance(db, &p.majun).await, 60 + 60, "{b}");
    assert_eq!(town.issuing_balance(db).await, issuing_before - 60, "{b}");
    assert_eq!(
        town.balance(db, &p.wang).await,
        0,
        "{b}: the father pays nothing"
    );
    assert_eq!(town.balance(db, &p.xiuzhi).await, 0, "{b}");
    let credit: Vec<_> = transfers(db)
        .await
        .into_iter()
        .filter(|x| x.order_id.as_deref() == Some(id))
        .collect();
    assert_eq!(credit.len(), 1, "{b}: one transfer for the visit");
    assert_eq!(credit[0].kind, "service_credit");
    assert_eq!(
        credit[0].credit_key.as_deref(),
        Some(format!("svc:{id}-v1:{}", p.majun).as_str())
    );
    let mut expected = vec![
        (format!("issuing-{}", town.boot.programme_id), -60),
        (format!("acct-{}", p.majun), 60),
    ];
    expected.sort();
    assert_eq!(legs(db, &credit[0].id).await, expected, "{b}");
    let order = order_row(db, id).await;
    assert_eq!(
        (
            order.status.as_str(),
            order.visits_done,
            order.posted_by.as_str()
        ),
        ("completed", 1, p.xiuzhi.as_str())
    );
    let att = visit_attendance::Entity::find()
        .filter(visit_attendance::Column::OrderId.eq(id))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            att.status.as_str(),
            att.minutes,
            att.confirm_method.as_deref()
        ),
        ("confirmed", Some(62), Some("pin"))
    );

    // The daughter rates the service for her father.
    town.ok(
        db,
        &p.xiuzhi,
        arrived + 120 * MIN,
        Command::RateService {
            feedback_id: "fb-wang-lunch".into(),
            order_id: id.into(),
            rating: 5,
            comment: "马军很耐心，谢谢！".into(),
        },
    )
    .await;
    let fb = feedback::Entity::find_by_id("fb-wang-lunch".to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            fb.author_id.as_str(),
            fb.on_behalf_of.as_deref(),
            fb.rating,
            fb.order_id.as_str()
        ),
        (p.xiuzhi.as_str(), Some(p.wang.as_str()), Some(5), id)
    );

    // The audit trail: who acted, for whom, on which device, when.
    let trail = audit_of(t, id).await;
    let row = |action: &str| {
        trail
            .iter()
            .find(|r| r.action == action)
            .unwrap_or_else(|| panic!("{b}: no {action} in the audit trail of {id}: {trail:#?}"))
    };
    let who = |action: &str| {
        let r = row(action);
        (r.actor_id.as_str(), r.on_behalf_of.as_deref(), r.at)
    };
    let wang = Some(p.wang.as_str());
    assert_eq!(
        who("post_order"),
        (p.xiuzhi.as_str(), wang, posted_at),
        "{b}"
    );
    assert_eq!(
        who("accept_order"),
        (p.majun.as_str(), None, posted_at + 10 * MIN),
        "{b}"
    );
    assert_eq!(who("check_in"), (p.majun.as_str(), None, arrived), "{b}");
    assert_eq!(
        who("check_out"),
        (p.majun.as_str(), None, arrived + 62 * MIN),
        "{b}"
    );
    assert_eq!(
        who("confirm_visit"),
        (p.majun.as_str(), wang, arrived + 63 * MIN),
        "{b}: the confirmation is the father's, given on Ma Jun's phone"
    );
    assert_eq!(trail.len(), 5, "{b}: {trail:#?}");
    assert!(trail.iter().all(|r| r.device_id == town.boot.device_id));
    let rating = audit_of(t, "fb-wang-lunch").await;
    assert_eq!(rating.len(), 1);
    assert_eq!(
        (
            rating[0].action.as_str(),
            rating[0].actor_id.as_str(),
            rating[0].on_behalf_of.as_deref()
        ),
        ("rate_service", p.xiuzhi.as_str(), wang)
    );

    // Everyone concerned was told, in the inbox.
    for (member, kind) in [
        (&p.wang, "order_posted_for_you"),
        (&p.majun, "new_order"),
        (&p.xiuzhi, "order_accepted"),
        (&p.wang, "order_accepted"),
        (&p.xiuzhi, "volunteer_arrived"),
        (&p.wang, "volunteer_arrived"),
        (&p.xiuzhi, "visit_complete"),
        (&p.wang, "visit_complete"),
        (&p.wang, "order_completed"),
        (&p.majun, "hours_credited"),
    ] {
        let got = inbox(db, member, kind).await;
        assert_eq!(
            got.len(),
            1,
            "{b}: {member} should have one {kind}: {got:?}"
        );
        if kind != "new_order" && kind != "hours_credited" {
            assert_eq!(got[0]["order_id"], id, "{b}: {kind}");
        }
    }
    assert_eq!(
        inbox(db, &p.xiuzhi, "order_accepted").await[0]["volunteer"],
        "马军"
    );
    let credited = &inbox(db, &p.majun, "hours_credited").await[0];
    assert_eq!(
        (credited["minutes"].as_i64(), credited["order_id"].as_str()),
        (Some(60), Some(id))
    );
    assert!(
        inbox(db, &p.liu, "new_order").await.is_empty(),
        "{b}: an unverified volunteer is not told of orders"
    );
    assert!(
        inbox(db, &p.chen, "new_order").await.is_empty(),
        "{b}: a volunteer of the neighbouring community is not told of a normal order"
    );

    // The outbox: one mutation per command, in order, ready to push.
    let rows = outbox::Entity::find()
        .order_by_asc(outbox::Column::Seq)
        .all(db)
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names, town.commands(), "{b}: one outbox row per command");
    let story: Vec<&str> = names[names.len() - 6..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        story,
        [
            "post_order",
            "accept_order",
            "check_in",
            "check_out",
            "confirm_visit",
            "rate_service"
        ]
    );
    let mut last_hlc = String::new();
    let mut ids = std::collections::BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "{b}: the sequence is gap-free from 1");
        let uuid = uuid::Uuid::parse_str(&r.id).unwrap();
        assert_eq!(uuid.get_version_num(), 7, "{b}: outbox ids are UUIDv7");
        assert!(ids.insert(r.id.clone()), "{b}: outbox ids are unique");
        assert!(
            r.hlc > last_hlc,
            "{b}: the clock must increase: {} after {last_hlc}",
            r.hlc
        );
        last_hlc = r.hlc.clone();
        assert_eq!(r.schema_version, timebank_migrations::SCHEMA_VERSION);
        assert_eq!(r.device_id, town.boot.device_id);
        assert_eq!(r.status, "pending");
        assert!(
            !r.args.contains(WANG_PIN),
            "{b}: the PIN never reaches the outbox"
        );
    }
    let confirm = rows.iter().find(|r| r.name == "confirm_visit").unwrap();
    assert_eq!(confirm.actor_id, p.majun);
    let args: serde_json::Value = serde_json::from_str(&confirm.args).unwrap();
    assert_eq!(
        args,
        serde_json::json!({"order_id": id, "method": "pin", "confirms": [p.majun], "visit_id": format!("{id}-v1")}),
        "{b}: the confirmation names whose service on which visit it confirmed, and carries no PIN"
    );
    let post_row = rows.iter().find(|r| r.name == "post_order").unwrap();
    assert_eq!(post_row.actor_id, p.xiuzhi);
    let args: serde_json::Value = serde_json::from_str(&post_row.args).unwrap();
    assert_eq!(
        (args["order_id"].as_str(), args["beneficiary_id"].as_str()),
        (Some(id), wang)
    );

    assert_ledger_balanced(db, &b.to_string()).await;
}

async fn a_gift_outside_the_family_and_spending_under_the_minimum_age_are_refused_and_write_nothing(
    t: &TestDb,
) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let b = t.backend;
    let before = counts(db).await;

    // Ma Jun wants to give half an hour of his bonus to 赵小明, who is not his family.
    let e = town
        .refused(db, &p.majun, T0 + 5 * MIN, gift("gift-zhao", &p.zhao, 30))
        .await;
    assert_eq!(e.code, Code::GiftNotAllowed, "{b}");
    assert_eq!(
        e.message(Lang::Zh),
        "按照本项目规则，时间只能赠送给配偶和直系亲属；赵小明不在此范围内。"
    );
    assert_eq!(
        e.message(Lang::En),
        "Under this programme's rules hours may only be given to a spouse or direct relatives; 赵小明 is not."
    );
    assert_eq!(
        counts(db).await,
        before,
        "{b}: a refused gift writes nothing"
    );
    assert_eq!(town.balance(db, &p.majun).await, 60);
    assert_eq!(town.balance(db, &p.zhao).await, 0);

    // The administrator switches to classic reciprocal time banking: the beneficiary pays.
    town.ok(
        db,
        &town.admin,
        T0 + 6 * MIN,
        Command::SetRules(Rules {
            payer: Payer::Beneficiary,
            ..Rules::default()
        }),
    )
    .await;
    let before = counts(db).await;
    // 赵小明 is 45: too young to spend hours.
    let e = town
        .refused(db, &p.zhao, T0 + 7 * MIN, post("order-zhao", &p.zhao, 30))
        .await;
    assert_eq!(e.code, Code::UnderMinSpendAge, "{b}");
    assert_eq!(
        e.message(Lang::Zh),
        "按照本项目规则，年满60周岁才能使用时间兑换服务（当前45周岁）。如有特殊困难，请工作人员登记困难情况。"
    );
    assert_eq!(
        e.message(Lang::En),
        "Under this programme's rules hours can be spent from age 60 (this member is 45). Staff can record a hardship exception."
    );
    // Staff posting for him are refused the same way.
    let e = town
        .refused(db, &p.staff, T0 + 7 * MIN, post("order-zhao", &p.zhao, 30))
        .await;
    assert_eq!(e.code, Code::UnderMinSpendAge, "{b}");
    assert_eq!(
        counts(db).await,
        before,
        "{b}: a refused order writes nothing"
    );

    // The outbox goes on without a gap after the refusals.
    town.ok(db, &p.staff, T0 + 8 * MIN, Command::Tick).await;
    let seqs: Vec<i64> = outbox::Entity::find()
        .order_by_asc(outbox::Column::Seq)
        .all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=town.commands().len() as i64).collect::<Vec<_>>(),
        "{b}"
    );
}

async fn the_outbox_clock_keeps_increasing_when_the_wall_clock_goes_back(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    // The workstation's clock is set back by a day between two commands.
    town.ok(db, &p.xiuzhi, T0 + 60 * MIN, post("o-late", &p.wang, 30))
        .await;
    town.ok(db, &p.xiuzhi, T0 - 1440 * MIN, post("o-early", &p.wang, 30))
        .await;
    town.ok(db, &p.xiuzhi, T0 - 1440 * MIN, post("o-same", &p.wang, 30))
        .await;
    let rows = outbox::Entity::find()
        .order_by_asc(outbox::Column::Seq)
        .all(db)
        .await
        .unwrap();
    let n = rows.len();
    let last: Vec<&str> = rows[n - 3..].iter().map(|r| r.hlc.as_str()).collect();
    assert!(
        last[0] < last[1] && last[1] < last[2],
        "{}: {last:?}",
        t.backend
    );
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>());
}
