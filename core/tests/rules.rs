//! Every refusal of the core that a user can meet, with its code (and message where the words
//! matter), and the rules that hold, escalate, expire and credit; on SQLite and PostgreSQL.
//! A refused command must write nothing: the tests compare row counts around refusals.
#![allow(clippy::unwrap_used)]
#[macro_use]
mod common;
use common::*;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use timebank_core::domain::{ConfirmMethod, Payer, Relation, Rules};
use timebank_core::entities::{
    activities, ledger_flags, members, order_visits, order_volunteers, programmes,
    safeguarding_reports, transfers as transfer_e, visit_attendance,
};
use timebank_core::service::command::*;
use timebank_core::service::load_actor;
use timebank_core::{read, Code, CoreError, Lang};

both_backends!(
    a_wrong_pin_is_refused_and_the_right_pin_confirms,
    a_resident_without_a_pin_cannot_confirm_by_pin,
    an_unverified_volunteer_cannot_accept_until_staff_verify_them,
    a_volunteer_of_another_community_is_out_of_scope,
    a_second_volunteer_is_told_the_order_is_full_and_who_took_it,
    checking_in_before_accepting_is_refused_as_not_accepted,
    cancelling_after_check_in_is_an_illegal_transition,
    releasing_reopens_the_order_before_check_in_but_is_refused_after,
    staff_of_another_center_are_out_of_scope,
    a_device_lets_its_users_act_only_as_its_enrolment_grants,
    only_an_administrator_may_change_the_programme_rules,
    a_gift_larger_than_the_balance_is_refused,
    a_gift_that_would_take_the_recipient_over_the_balance_cap_is_refused,
    a_transfer_is_reversed_once_and_a_second_reversal_is_refused,
    minutes_over_the_visit_maximum_are_held_and_approved_at_most_once,
    a_recurring_order_returns_to_accepted_after_each_visit_until_the_last,
    the_clock_confirms_a_visit_nobody_confirmed_after_the_auto_confirm_time,
    an_urgent_order_nobody_takes_is_widened_to_the_neighbouring_community,
    the_clock_expires_open_orders_whose_window_has_passed,
    an_activity_refuses_sign_ups_beyond_capacity_and_credits_attending_volunteers,
    a_volunteer_named_twice_in_an_activitys_attendance_is_credited_once,
    a_volunteer_files_a_safeguarding_report_that_only_staff_see,
    a_disputed_visit_is_credited_only_as_staff_resolve_it,
    a_phone_number_already_registered_is_refused,
    a_malformed_phone_number_is_invalid_input,
    the_database_refuses_to_update_or_delete_ledger_rows,
    the_daily_maximum_also_holds_when_the_beneficiary_pays,
    a_landline_already_registered_without_its_dash_is_refused,
    refusal_messages_are_written_in_one_language_and_name_places_by_name,
    a_transfer_to_an_account_that_does_not_exist_is_refused_as_not_found,
);

fn code(r: Result<timebank_core::Outcome, CoreError>) -> Code {
    match r {
        Ok(o) => panic!("expected a refusal, got {o:?}"),
        Err(e) => e.code,
    }
}

/// Post an order for Wang (by his daughter), accepted by Ma Jun; returns its id.
async fn accepted_order(t: &TestDb, town: &Town, p: &Cast, id: &str, at: i64) -> String {
    town.ok(&t.db, &p.xiuzhi, at, post(id, &p.wang, 60)).await;
    town.ok(&t.db, &p.majun, at, accept(id)).await;
    id.to_owned()
}

/// Serve an accepted order: Ma Jun checks in at `at` and out `minutes` later.
async fn serve(t: &TestDb, town: &Town, p: &Cast, id: &str, at: i64, minutes: i64) {
    town.ok(&t.db, &p.majun, at, check_in(id)).await;
    town.ok(&t.db, &p.majun, at + minutes * MIN, check_out(id))
        .await;
}

async fn a_wrong_pin_is_refused_and_the_right_pin_confirms(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    let id = accepted_order(t, &town, &p, "o-pin", at).await;
    serve(t, &town, &p, &id, at, 60).await;
    let before = counts(db).await;
    let e = town
        .refused(db, &p.majun, at + 61 * MIN, confirm_pin(&id, "1357"))
        .await;
    assert_eq!(e.code, Code::PinIncorrect, "{}", t.backend);
    assert_eq!(e.message(Lang::Zh), "密码不正确，请老人再输入一次。");
    let e = town
        .refused(
            db,
            &p.majun,
            at + 61 * MIN,
            Command::ConfirmVisit {
                visit_id: None,
                order_id: id.clone(),
                method: ConfirmMethod::Pin,
                pin: None,
                confirms: None,
            },
        )
        .await;
    assert_eq!(e.code, Code::PinIncorrect, "no PIN given");
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(order_status(db, &id).await, "awaiting_confirmation");
    assert_eq!(town.balance(db, &p.majun).await, 60);
    town.ok(db, &p.majun, at + 62 * MIN, confirm_pin(&id, WANG_PIN))
        .await;
    assert_eq!(order_status(db, &id).await, "completed");
    assert_eq!(town.balance(db, &p.majun).await, 60 + 60);
}

async fn a_resident_without_a_pin_cannot_confirm_by_pin(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    town.ok(db, &p.zhao, at, post("o-zhao", &p.zhao, 30)).await;
    town.ok(db, &p.majun, at, accept("o-zhao")).await;
    serve(t, &town, &p, "o-zhao", at, 30).await;
    let e = town
        .refused(db, &p.majun, at + 31 * MIN, confirm_pin("o-zhao", "1234"))
        .await;
    assert_eq!(e.code, Code::PinNotSet, "{}", t.backend);
    // He confirms in the app himself instead.
    town.ok(
        db,
        &p.zhao,
        at + 32 * MIN,
        confirm_by("o-zhao", ConfirmMethod::App),
    )
    .await;
    assert_eq!(order_status(db, "o-zhao").await, "completed");
}

async fn an_unverified_volunteer_cannot_accept_until_staff_verify_them(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    town.ok(db, &p.xiuzhi, at, post("o1", &p.wang, 60)).await;
    let before = counts(db).await;
    let e = town.refused(db, &p.liu, at, accept("o1")).await;
    assert_eq!(e.code, Code::VolunteerNotVerified, "{}", t.backend);
    assert_eq!(
        e.message(Lang::Zh),
        "您的志愿者身份尚未经工作人员审核，审核通过后才能接单。"
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(order_row(db, "o1").await.accepted_count, 0);
    // A resident who is no volunteer at all.
    assert_eq!(
        code(town.exec(db, &p.zhao, at, accept("o1")).await),
        Code::NotAVolunteer
    );
    // Once verified by staff, she can.
    town.ok(
        db,
        &p.staff,
        at + MIN,
        Command::SetVetting {
            member_id: p.liu.clone(),
            vetting: timebank_core::domain::Vetting::Verified,
        },
    )
    .await;
    town.ok(db, &p.liu, at + 2 * MIN, accept("o1")).await;
    assert_eq!(order_status(db, "o1").await, "accepted");
}

async fn a_volunteer_of_another_community_is_out_of_scope(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    town.ok(db, &p.xiuzhi, at, post("o1", &p.wang, 60)).await;
    let before = counts(db).await;
    let e = town.refused(db, &p.chen, at, accept("o1")).await;
    assert_eq!(e.code, Code::OutOfScope, "{}", t.backend);
    assert_eq!(e.detail["community"], town.fuyuan);
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(order_status(db, "o1").await, "open");
}

async fn a_second_volunteer_is_told_the_order_is_full_and_who_took_it(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    town.verify(db, &p.liu).await;
    let at = T0 + 10 * MIN;
    accepted_order(t, &town, &p, "o1", at).await;
    let before = counts(db).await;
    let e = town.refused(db, &p.liu, at + MIN, accept("o1")).await;
    assert_eq!(e.code, Code::OrderFull, "{}", t.backend);
    assert_eq!(e.message(Lang::Zh), "这个订单已被马军接单，人数已满。");
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    let o = order_row(db, "o1").await;
    assert_eq!((o.accepted_count, o.status.as_str()), (1, "accepted"));
    // Ma Jun accepting again is a different refusal.
    assert_eq!(
        code(town.exec(db, &p.majun, at + MIN, accept("o1")).await),
        Code::AlreadyAccepted
    );
    // Two volunteers needed: the third is told both names, in the order they accepted.
    let third = town
        .volunteer(db, "third", "孙丽", date(1979, 4, 4), &town.fuyuan, true)
        .await;
    let mut two = order("o2", &p.wang, 60);
    two.volunteers_needed = 2;
    town.ok(db, &p.xiuzhi, at, Command::PostOrder(two)).await;
    town.ok(db, &p.majun, at + MIN, accept("o2")).await;
    assert_eq!(order_status(db, "o2").await, "accepted");
    town.ok(db, &p.liu, at + 2 * MIN, accept("o2")).await;
    let e = town.refused(db, &third, at + 3 * MIN, accept("o2")).await;
    assert_eq!(
        e.message(Lang::Zh),
        "这个订单已被马军、刘海燕接单，人数已满。"
    );
    let on_it = order_volunteers::Entity::find()
        .filter(order_volunteers::Column::OrderId.eq("o2"))
        .all(db)
        .await
        .unwrap()
        .len();
    assert_eq!(on_it, 2, "{}: at most the number needed", t.backend);
}

async fn checking_in_before_accepting_is_refused_as_not_accepted(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    town.ok(db, &p.xiuzhi, at, post("o1", &p.wang, 60)).await;
    let before = counts(db).await;
    let e = town.refused(db, &p.majun, at, check_in("o1")).await;
    assert_eq!(e.code, Code::NotAccepted, "{}", t.backend);
    assert_eq!(e.message(Lang::Zh), "您没有接这个订单，不能执行此操作。");
    // Nor may he check out of a visit he never checked in to.
    assert_eq!(
        code(town.exec(db, &p.majun, at, check_out("o1")).await),
        Code::NotCheckedIn
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(order_status(db, "o1").await, "open");
    // After accepting: checking in twice is refused too.
    town.ok(db, &p.majun, at + MIN, accept("o1")).await;
    town.ok(db, &p.majun, at + 2 * MIN, check_in("o1")).await;
    assert_eq!(
        code(town.exec(db, &p.majun, at + 3 * MIN, check_in("o1")).await),
        Code::AlreadyCheckedIn
    );
}

async fn cancelling_after_check_in_is_an_illegal_transition(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    accepted_order(t, &town, &p, "o1", at).await;
    town.ok(db, &p.majun, at + MIN, check_in("o1")).await;
    let before = counts(db).await;
    let e = town
        .refused(
            db,
            &p.xiuzhi,
            at + 2 * MIN,
            Command::CancelOrder {
                order_id: "o1".into(),
                reason: "父亲说不用了".into(),
            },
        )
        .await;
    assert_eq!(e.code, Code::IllegalTransition, "{}", t.backend);
    assert_eq!(e.detail["status"], "in_service");
    assert!(
        e.message(Lang::Zh).contains("服务中"),
        "{}",
        e.message(Lang::Zh)
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(order_status(db, "o1").await, "in_service");
    // Before check-in a cancellation goes through and the volunteer is told.
    accepted_order(t, &town, &p, "o2", at).await;
    town.ok(
        db,
        &p.xiuzhi,
        at + 3 * MIN,
        Command::CancelOrder {
            order_id: "o2".into(),
            reason: "父亲说不用了".into(),
        },
    )
    .await;
    assert_eq!(order_status(db, "o2").await, "cancelled");
    assert_eq!(inbox(db, &p.majun, "order_cancelled").await.len(), 1);
    assert_eq!(
        code(town.exec(db, &p.majun, at + 4 * MIN, check_in("o2")).await),
        Code::IllegalTransition,
        "a cancelled order cannot be served"
    );
}

async fn releasing_reopens_the_order_before_check_in_but_is_refused_after(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    town.verify(db, &p.liu).await;
    let at = T0 + 10 * MIN;
    accepted_order(t, &town, &p, "o1", at).await;
    town.ok(
        db,
        &p.majun,
        at + MIN,
        Command::ReleaseOrder {
            order_id: "o1".into(),
        },
    )
    .await;
    let o = order_row(db, "o1").await;
    assert_eq!(
        (o.status.as_str(), o.accepted_count),
        ("open", 0),
        "{}",
        t.backend
    );
    assert_eq!(inbox(db, &p.wang, "order_released").await.len(), 1);
    // Someone else takes it, checks in, and can no longer release it.
    town.ok(db, &p.liu, at + 2 * MIN, accept("o1")).await;
    town.ok(db, &p.liu, at + 3 * MIN, check_in("o1")).await;
    let before = counts(db).await;
    let e = town
        .refused(
            db,
            &p.liu,
            at + 4 * MIN,
            Command::ReleaseOrder {
                order_id: "o1".into(),
            },
        )
        .await;
    assert_eq!(e.code, Code::IllegalTransition, "{}", t.backend);
    assert_eq!(e.detail["status"], "in_service");
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    let o = order_row(db, "o1").await;
    assert_eq!((o.status.as_str(), o.accepted_count), ("in_service", 1));
    // Ma Jun, who released it, cannot release it again.
    assert_eq!(
        code(
            town.exec(
                db,
                &p.majun,
                at + 4 * MIN,
                Command::ReleaseOrder {
                    order_id: "o1".into()
                }
            )
            .await
        ),
        Code::NotAccepted
    );
}

async fn staff_of_another_center_are_out_of_scope(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let (center, community) = town.second_center(db).await;
    let other = town.staff(db, "staff-wending", "吴敏", Some(&center)).await;
    // A resident of the second center's community.
    town.register(
        db,
        "wending-1",
        "钱伯",
        date(1948, 6, 6),
        &community,
        vec![timebank_core::domain::Role::Resident],
        None,
    )
    .await;
    let at = T0 + 10 * MIN;
    town.ok(db, &p.xiuzhi, at, post("o1", &p.wang, 60)).await;
    let fuyuan = town.fuyuan.clone();
    let before = counts(db).await;
    let refusals = [
        // Linked as family, their resident could act for 王 (post orders he pays for, confirm
        // visits with his hours): both members' staff must agree.
        Command::LinkFamily {
            member_id: "wending-1".into(),
            relative_id: p.wang.clone(),
            relation: Relation::Child,
        },
        Command::AssignVolunteer {
            order_id: "o1".into(),
            volunteer_id: p.majun.clone(),
        },
        Command::SetVetting {
            member_id: p.liu.clone(),
            vetting: timebank_core::domain::Vetting::Verified,
        },
        Command::SetHardship {
            member_id: p.zhao.clone(),
            hardship: true,
        },
        Command::ReverseTransfer {
            transfer_id: "r1".into(),
            reverses_id: format!("bonus-{}", p.majun),
            reason: "误操作".into(),
        },
        Command::CreateActivity(CreateActivity {
            activity_id: "a1".into(),
            community_id: fuyuan.clone(),
            title: "包饺子".into(),
            description: String::new(),
            field_code: None,
            starts_at: at,
            credit_minutes: 60,
            capacity: 10,
        }),
        Command::RegisterMember(RegisterMember {
            member_id: "new".into(),
            name: "新居民".into(),
            phone: "13611112222".into(),
            date_of_birth: date(1950, 1, 1),
            home_community_id: fuyuan.clone(),
            address: None,
            roles: vec![timebank_core::domain::Role::Resident],
            hardship: false,
            center_id: None,
            volunteer: None,
        }),
    ];
    for cmd in refusals {
        let what = cmd.name();
        let e = town.refused(db, &other, at, cmd).await;
        assert_eq!(e.code, Code::OutOfScope, "{}: {what}: {e:?}", t.backend);
        assert_eq!(e.detail["community"], fuyuan, "{what}");
    }
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    // The clock run by them leaves 府苑新村's orders alone.
    let mut urgent = order("o-urgent", &p.wang, 30);
    urgent.urgent = true;
    town.ok(db, &p.xiuzhi, at, Command::PostOrder(urgent)).await;
    let out = town.ok(db, &other, at + 24 * 60 * MIN, Command::Tick).await;
    assert_eq!(
        out.detail,
        serde_json::json!({"auto_confirmed": 0, "expired": 0, "escalated": 0})
    );
    assert!(!order_row(db, "o-urgent").await.escalated);
    // The center's own staff may assign.
    town.ok(
        db,
        &p.staff,
        at + MIN,
        Command::AssignVolunteer {
            order_id: "o1".into(),
            volunteer_id: p.majun.clone(),
        },
    )
    .await;
    assert_eq!(order_status(db, "o1").await, "accepted");
    assert_eq!(inbox(db, &p.majun, "order_assigned").await.len(), 1);
}

/// Enrol this database as a device of `role` for `communities` (the settings an enrolment
/// stores; nothing else of it matters here).
async fn enrol_here(db: &DatabaseConnection, role: &str, communities: &[&str]) {
    use timebank_core::service::outbox::set_setting;
    set_setting(db, timebank_core::sync::K_ROLE, role)
        .await
        .unwrap();
    let parts: Vec<&str> = std::iter::once("*")
        .chain(communities.iter().copied())
        .collect();
    set_setting(
        db,
        timebank_core::sync::K_PARTITIONS,
        &serde_json::to_string(&parts).unwrap(),
    )
    .await
    .unwrap();
}

async fn a_device_lets_its_users_act_only_as_its_enrolment_grants(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    let (fuyuan, neighbour) = (town.fuyuan.clone(), town.neighbour.clone());
    let verify = |who: &str| Command::SetVetting {
        member_id: who.into(),
        vetting: timebank_core::domain::Vetting::Verified,
    };
    let me = |who: String| async move { timebank_core::session::me(db, &who).await.unwrap() };
    let pin = timebank_core::service::members::hash_pin("135790").unwrap();
    let set_pin = |who: &str| Command::SetPin {
        member_id: who.into(),
        pin_hash: pin.clone(),
    };
    town.ok(db, &town.admin, at, set_pin(&p.staff)).await;
    // A volunteer's laptop: staff and the administrator act there as anyone else, and do not
    // sign in there at all.
    enrol_here(db, "volunteer", &[&fuyuan, &neighbour]).await;
    let e = timebank_core::session::sign_in(db, &p.staff, "135790")
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::Forbidden, "{}: {e:?}", t.backend);
    let before = counts(db).await;
    for who in [&p.staff, &town.admin] {
        let e = town.refused(db, who, at, verify(&p.liu)).await;
        assert_eq!(e.code, Code::Forbidden, "{}: {who}: {e:?}", t.backend);
        assert!(!me(who.clone()).await.is_staff, "{who} is no staff here");
    }
    let e = town.refused(db, &p.staff, at, set_pin(&p.staff)).await;
    assert_eq!(e.code, Code::Forbidden, "{}: {e:?}", t.backend);
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    // A volunteer changes their own PIN there, and signs in with it.
    town.ok(db, &p.majun, at, set_pin(&p.majun)).await;
    timebank_core::session::sign_in(db, &p.majun, "135790")
        .await
        .unwrap();
    // A center's workstation for the neighbouring community only: staff powers end there.
    enrol_here(db, "center", &[&neighbour]).await;
    for who in [&p.staff, &town.admin] {
        let e = town.refused(db, who, at, verify(&p.liu)).await;
        assert_eq!(e.code, Code::OutOfScope, "{}: {who}: {e:?}", t.backend);
        let ids: Vec<String> = me(who.clone())
            .await
            .staff_communities
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, std::slice::from_ref(&neighbour), "{who}");
    }
    // Enrolled for both, the center's staff sign in and verify the volunteer.
    enrol_here(db, "center", &[&fuyuan, &neighbour]).await;
    timebank_core::session::sign_in(db, &p.staff, "135790")
        .await
        .unwrap();
    town.ok(db, &p.staff, at, verify(&p.liu)).await;
}

async fn only_an_administrator_may_change_the_programme_rules(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let stricter = Rules {
        rounding_minutes: 30,
        balance_cap: 600 * 60,
        ..Rules::default()
    };
    let programme = || async {
        programmes::Entity::find_by_id(town.boot.programme_id.clone())
            .one(db)
            .await
            .unwrap()
            .unwrap()
    };
    let before = counts(db).await;
    let original = programme().await;
    for who in [&p.staff, &p.majun, &p.wang] {
        let e = town
            .refused(db, who, T0, Command::SetRules(stricter.clone()))
            .await;
        assert_eq!(e.code, Code::Forbidden, "{}: {who}", t.backend);
    }
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(programme().await, original);
    // Nonsense rules are refused even for the administrator, naming the field.
    let e = town
        .refused(
            db,
            &town.admin,
            T0,
            Command::SetRules(Rules {
                max_per_visit: 600,
                max_per_day: 300,
                ..Rules::default()
            }),
        )
        .await;
    assert_eq!(
        (e.code, e.detail["field"].as_str()),
        (Code::InvalidInput, "max_per_visit")
    );
    town.ok(db, &town.admin, T0 + MIN, Command::SetRules(stricter))
        .await;
    let now = programme().await;
    assert_eq!((now.rounding_minutes, now.balance_cap), (30, 600 * 60));
}

async fn a_gift_larger_than_the_balance_is_refused(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let mother = town
        .resident(db, "ma-mother", "马秀英", date(1955, 3, 3), None)
        .await;
    town.link(db, &mother, &p.majun, Relation::Child).await;
    let before = counts(db).await;
    let e = town
        .refused(db, &p.majun, T0 + 5 * MIN, gift("g1", &mother, 61))
        .await;
    assert_eq!(e.code, Code::InsufficientBalance, "{}", t.backend);
    assert_eq!(
        e.message(Lang::Zh),
        "余额不足：当前余额1小时，需要1小时1分。"
    );
    assert_eq!(
        code(
            town.exec(db, &p.majun, T0 + 5 * MIN, gift("g1", &mother, 0))
                .await
        ),
        Code::InvalidInput
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    // All of it may be given.
    town.ok(db, &p.majun, T0 + 6 * MIN, gift("g1", &mother, 60))
        .await;
    assert_eq!(
        (
            town.balance(db, &p.majun).await,
            town.balance(db, &mother).await
        ),
        (0, 60)
    );
    assert_eq!(inbox(db, &mother, "hours_gifted").await.len(), 1);
}

async fn a_gift_that_would_take_the_recipient_over_the_balance_cap_is_refused(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(
        db,
        Rules {
            balance_cap: 90,
            ..Rules::default()
        },
    )
    .await;
    // 马秀英's two children, Ma Jun and Liu Haiyan, each have their one-hour bonus.
    let mother = town
        .resident(db, "ma-mother", "马秀英", date(1955, 3, 3), None)
        .await;
    town.link(db, &mother, &p.majun, Relation::Child).await;
    town.link(db, &mother, &p.liu, Relation::Child).await;
    town.ok(db, &p.majun, T0 + 5 * MIN, gift("g1", &mother, 60))
        .await;
    let before = counts(db).await;
    let e = town
        .refused(db, &p.liu, T0 + 6 * MIN, gift("g2", &mother, 60))
        .await;
    assert_eq!(e.code, Code::BalanceCapExceeded, "{}", t.backend);
    assert_eq!(
        e.message(Lang::Zh),
        "对方账户余额将超过上限1小时30分，无法转入。"
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(town.balance(db, &p.liu).await, 60);
    // Up to the cap exactly is fine.
    town.ok(db, &p.liu, T0 + 7 * MIN, gift("g3", &mother, 30))
        .await;
    assert_eq!(town.balance(db, &mother).await, 90);
}

async fn a_transfer_is_reversed_once_and_a_second_reversal_is_refused(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let mother = town
        .resident(db, "ma-mother", "马秀英", date(1955, 3, 3), None)
        .await;
    town.link(db, &mother, &p.majun, Relation::Child).await;
    town.ok(db, &p.majun, T0 + 5 * MIN, gift("g1", &mother, 45))
        .await;
    let reverse = |id: &str, of: &str| Command::ReverseTransfer {
        transfer_id: id.into(),
        reverses_id: of.into(),
        reason: "误操作，应赠送给母亲15分钟".into(),
    };
    // Volunteers do not correct the ledger.
    assert_eq!(
        code(
            town.exec(db, &p.majun, T0 + 6 * MIN, reverse("r0", "g1"))
                .await
        ),
        Code::Forbidden
    );
    town.ok(db, &p.staff, T0 + 7 * MIN, reverse("r1", "g1"))
        .await;
    assert_eq!(
        (
            town.balance(db, &p.majun).await,
            town.balance(db, &mother).await
        ),
        (60, 0),
        "{}",
        t.backend
    );
    let r1 = transfer_e::Entity::find_by_id("r1".to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            r1.kind.as_str(),
            r1.reverses_id.as_deref(),
            r1.approved_by.as_deref(),
            r1.reason.is_some()
        ),
        ("correction", Some("g1"), Some(p.staff.as_str()), true)
    );
    let mut opposite: Vec<(String, i64)> = legs(db, "g1")
        .await
        .into_iter()
        .map(|(a, m)| (a, -m))
        .collect();
    opposite.sort();
    assert_eq!(legs(db, "r1").await, opposite);
    // The original entries are still there, unchanged.
    let mut g1 = vec![
        (format!("acct-{}", p.majun), -45),
        (format!("acct-{mother}"), 45),
    ];
    g1.sort();
    assert_eq!(legs(db, "g1").await, g1);

    let before = counts(db).await;
    let e = town
        .refused(db, &p.staff, T0 + 8 * MIN, reverse("r2", "g1"))
        .await;
    assert_eq!(e.code, Code::AlreadyReversed, "{}", t.backend);
    assert_eq!(e.message(Lang::Zh), "这笔记录已经冲正过了，不能重复冲正。");
    let e = town
        .refused(db, &p.staff, T0 + 8 * MIN, reverse("r3", "r1"))
        .await;
    assert_eq!(
        (e.code, e.detail["field"].as_str()),
        (Code::InvalidInput, "reverses_id"),
        "a reversal is not itself reversed"
    );
    assert_eq!(
        code(
            town.exec(db, &p.staff, T0 + 8 * MIN, reverse("r4", "nope"))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_ledger_balanced(db, &t.backend.to_string()).await;
}

async fn minutes_over_the_visit_maximum_are_held_and_approved_at_most_once(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(
        db,
        Rules {
            max_per_visit: 60,
            ..Rules::default()
        },
    )
    .await;
    let at = T0 + 10 * MIN;
    town.ok(db, &p.xiuzhi, at, post("o1", &p.wang, 120)).await;
    town.ok(db, &p.majun, at, accept("o1")).await;
    serve(t, &town, &p, "o1", at + MIN, 120).await;
    let out = town
        .ok(
            db,
            &p.staff,
            at + 122 * MIN,
            confirm_by("o1", ConfirmMethod::Staff),
        )
        .await;
    assert_eq!(
        out.detail["credited"],
        serde_json::json!([{"volunteer": p.majun, "credited": 60, "held": 60}]),
        "{}",
        t.backend
    );
    assert_eq!(town.balance(db, &p.majun).await, 60 + 60);
    let fl = flags(db).await;
    assert_eq!(fl.len(), 1, "{}: {fl:?}", t.backend);
    let flag = &fl[0];
    assert_eq!(
        (
            flag.kind.as_str(),
            flag.member_id.as_str(),
            flag.held_minutes,
            flag.status.as_str(),
            flag.order_id.as_deref(),
            flag.visit_id.as_deref()
        ),
        (
            "max_per_visit",
            p.majun.as_str(),
            60,
            "open",
            Some("o1"),
            Some("o1-v1")
        )
    );
    // Staff are told; only staff decide.
    assert_eq!(inbox(db, &p.staff, "ledger_flag").await.len(), 1);
    let approve = |transfer: &str| Command::ApproveHeld {
        flag_id: flag.id.clone(),
        transfer_id: transfer.into(),
        note: "电话核实服务了两小时".into(),
    };
    assert_eq!(
        code(
            town.exec(db, &p.majun, at + 130 * MIN, approve("t-a0"))
                .await
        ),
        Code::Forbidden
    );
    town.ok(db, &p.staff, at + 130 * MIN, approve("t-a1")).await;
    assert_eq!(town.balance(db, &p.majun).await, 60 + 120, "{}", t.backend);
    let tr = transfer_e::Entity::find_by_id("t-a1".to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            tr.kind.as_str(),
            tr.credit_key,
            tr.approved_by.as_deref(),
            tr.visit_id.as_deref()
        ),
        (
            "service_credit",
            Some(format!("flag:{}", flag.id)),
            Some(p.staff.as_str()),
            Some("o1-v1")
        )
    );
    let decided = &flags(db).await[0];
    assert_eq!(
        (decided.status.as_str(), decided.transfer_id.as_deref()),
        ("approved", Some("t-a1"))
    );
    // At most once: neither approving again nor dismissing after changes anything.
    let before = counts(db).await;
    assert_eq!(
        code(
            town.exec(db, &p.staff, at + 131 * MIN, approve("t-a2"))
                .await
        ),
        Code::IllegalTransition
    );
    assert_eq!(
        code(
            town.exec(
                db,
                &p.staff,
                at + 131 * MIN,
                Command::DismissHeld {
                    flag_id: flag.id.clone(),
                    note: "重复".into()
                }
            )
            .await
        ),
        Code::IllegalTransition
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_eq!(town.balance(db, &p.majun).await, 60 + 120);
    assert_ledger_balanced(db, &t.backend.to_string()).await;
}

async fn a_recurring_order_returns_to_accepted_after_each_visit_until_the_last(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    let day = 1440 * MIN;
    // "Look after him every evening for the next three days": one order, three visits.
    let mut o = order("rec", &p.wang, 60);
    o.visits = vec![
        at + 600 * MIN,
        at + 600 * MIN + day,
        at + 600 * MIN + 2 * day,
    ];
    town.ok(db, &p.xiuzhi, at, Command::PostOrder(o)).await;
    assert_eq!(order_row(db, "rec").await.visits_total, 3);
    town.ok(db, &p.majun, at, accept("rec")).await;
    for visit in 0..3i64 {
        let start = at + 600 * MIN + visit * day;
        serve(t, &town, &p, "rec", start, 45).await;
        assert_eq!(order_status(db, "rec").await, "awaiting_confirmation");
        town.ok(db, &p.majun, start + 46 * MIN, confirm_pin("rec", WANG_PIN))
            .await;
        let o = order_row(db, "rec").await;
        let expected = if visit < 2 { "accepted" } else { "completed" };
        assert_eq!(
            (o.status.as_str(), o.visits_done),
            (expected, visit as i32 + 1),
            "{}: after visit {}",
            t.backend,
            visit + 1
        );
    }
    let visits = order_visits::Entity::find()
        .filter(order_visits::Column::OrderId.eq("rec"))
        .all(db)
        .await
        .unwrap();
    assert!(visits.iter().all(|v| v.status == "completed"), "{visits:?}");
    let mut keys: Vec<String> = transfers(db)
        .await
        .into_iter()
        .filter(|x| x.order_id.as_deref() == Some("rec"))
        .map(|x| x.credit_key.unwrap_or_default())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        (1..=3)
            .map(|n| format!("svc:rec-v{n}:{}", p.majun))
            .collect::<Vec<_>>(),
        "one credit per visit"
    );
    assert_eq!(town.balance(db, &p.majun).await, 60 + 3 * 45);
    assert_eq!(inbox(db, &p.wang, "order_completed").await.len(), 1);
    assert_eq!(
        code(town.exec(db, &p.majun, at + 4 * day, check_in("rec")).await),
        Code::IllegalTransition,
        "no fourth visit"
    );
}

async fn the_clock_confirms_a_visit_nobody_confirmed_after_the_auto_confirm_time(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(
        db,
        Rules {
            auto_confirm_minutes: 60,
            ..Rules::default()
        },
    )
    .await;
    let at = T0 + 10 * MIN;
    accepted_order(t, &town, &p, "o1", at).await;
    serve(t, &town, &p, "o1", at, 30).await;
    let out_at = at + 30 * MIN;
    // Volunteers do not run the clock.
    assert_eq!(
        code(
            town.exec(db, &p.majun, out_at + 60 * MIN, Command::Tick)
                .await
        ),
        Code::Forbidden
    );
    let early = town
        .ok(db, &p.staff, out_at + 59 * MIN, Command::Tick)
        .await;
    assert_eq!(early.detail["auto_confirmed"], 0, "{}", t.backend);
    assert_eq!(order_status(db, "o1").await, "awaiting_confirmation");
    let due = town
        .ok(db, &p.staff, out_at + 60 * MIN, Command::Tick)
        .await;
    assert_eq!(due.detail["auto_confirmed"], 1, "{}", t.backend);
    assert_eq!(order_status(db, "o1").await, "completed");
    let att = visit_attendance::Entity::find()
        .filter(visit_attendance::Column::OrderId.eq("o1"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (att.status.as_str(), att.confirm_method.as_deref()),
        ("confirmed", Some("auto"))
    );
    assert_eq!(town.balance(db, &p.majun).await, 60 + 30);
    let again = town
        .ok(db, &p.staff, out_at + 120 * MIN, Command::Tick)
        .await;
    assert_eq!(again.detail["auto_confirmed"], 0, "confirmed once only");
    assert_eq!(town.balance(db, &p.majun).await, 60 + 30);
}

async fn an_urgent_order_nobody_takes_is_widened_to_the_neighbouring_community(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(
        db,
        Rules {
            urgent_escalation_minutes: 30,
            ..Rules::default()
        },
    )
    .await;
    let at = T0 + 10 * MIN;
    let mut urgent = order("o-typhoon", &p.wang, 30);
    urgent.urgent = true;
    urgent.service_code = "typhoon_check".into();
    town.ok(db, &p.xiuzhi, at, Command::PostOrder(urgent)).await;
    town.ok(db, &p.xiuzhi, at, post("o-normal", &p.wang, 30))
        .await;
    // The neighbour may not take it yet.
    assert_eq!(
        code(town.exec(db, &p.chen, at + MIN, accept("o-typhoon")).await),
        Code::OutOfScope
    );
    let early = town.ok(db, &p.staff, at + 29 * MIN, Command::Tick).await;
    assert_eq!(early.detail["escalated"], 0, "{}", t.backend);
    assert!(inbox(db, &p.chen, "urgent_order").await.is_empty());
    let due = town.ok(db, &p.staff, at + 30 * MIN, Command::Tick).await;
    assert_eq!(due.detail["escalated"], 1, "{}", t.backend);
    assert!(order_row(db, "o-typhoon").await.escalated);
    assert!(
        !order_row(db, "o-normal").await.escalated,
        "only urgent orders widen"
    );
    // Staff are alerted, the neighbouring volunteer is told, and may now take it.
    assert_eq!(inbox(db, &p.staff, "urgent_escalated").await.len(), 1);
    let told = inbox(db, &p.chen, "urgent_order").await;
    assert_eq!(told.len(), 1, "{}", t.backend);
    assert_eq!(
        (told[0]["order_id"].as_str(), told[0]["widened"].as_bool()),
        (Some("o-typhoon"), Some(true))
    );
    assert!(
        inbox(db, &p.liu, "urgent_order").await.is_empty(),
        "unverified volunteers are not told"
    );
    let chen = load_actor(db, &p.chen).await.unwrap();
    let board = read::board(db, &chen, &Default::default()).await.unwrap();
    assert!(
        board.iter().any(|o| o.id == "o-typhoon"),
        "{}: {board:?}",
        t.backend
    );
    assert!(!board.iter().any(|o| o.id == "o-normal"));
    assert_eq!(
        code(
            town.exec(db, &p.chen, at + 31 * MIN, accept("o-normal"))
                .await
        ),
        Code::OutOfScope
    );
    town.ok(db, &p.chen, at + 31 * MIN, accept("o-typhoon"))
        .await;
    assert_eq!(order_status(db, "o-typhoon").await, "accepted");
    let again = town.ok(db, &p.staff, at + 90 * MIN, Command::Tick).await;
    assert_eq!(again.detail["escalated"], 0, "widened once only");
}

async fn the_clock_expires_open_orders_whose_window_has_passed(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    let windowed = |id: &str| {
        let mut o = order(id, &p.wang, 30);
        o.window_start = Some(at + 60 * MIN);
        o.window_end = Some(at + 120 * MIN);
        Command::PostOrder(o)
    };
    town.ok(db, &p.xiuzhi, at, windowed("o-nobody")).await;
    town.ok(db, &p.xiuzhi, at, windowed("o-taken")).await;
    town.ok(db, &p.majun, at + MIN, accept("o-taken")).await;
    let early = town.ok(db, &p.staff, at + 119 * MIN, Command::Tick).await;
    assert_eq!(early.detail["expired"], 0, "{}", t.backend);
    let due = town.ok(db, &p.staff, at + 121 * MIN, Command::Tick).await;
    assert_eq!(due.detail["expired"], 1, "{}", t.backend);
    assert_eq!(order_status(db, "o-nobody").await, "expired");
    assert_eq!(
        order_status(db, "o-taken").await,
        "accepted",
        "an order someone took does not expire"
    );
    assert_eq!(
        inbox(db, &p.xiuzhi, "order_expired").await,
        vec![serde_json::json!({"order_id": "o-nobody"})]
    );
    assert_eq!(
        code(
            town.exec(db, &p.majun, at + 122 * MIN, accept("o-nobody"))
                .await
        ),
        Code::IllegalTransition
    );
    // A window already in the past is refused when posting.
    let mut past = order("o-past", &p.wang, 30);
    past.window_end = Some(at - MIN);
    assert_eq!(
        code(town.exec(db, &p.xiuzhi, at, Command::PostOrder(past)).await),
        Code::InvalidInput
    );
}

/// Attendance naming a volunteer twice credits the activity once, also when the credit is held
/// whole (the volunteer is at the balance cap): a held credit posts no transfer whose credit
/// key would stop the second, and each of two flags would be paid when staff approve it.
async fn a_volunteer_named_twice_in_an_activitys_attendance_is_credited_once(t: &TestDb) {
    let db = &t.db;
    // Ma Jun's sign-up bonus (60 minutes) is all the cap allows.
    let rules = Rules {
        balance_cap: 60,
        ..Rules::default()
    };
    let (town, p) = cast(db, rules).await;
    let at = T0 + 10 * MIN;
    town.ok(
        db,
        &p.staff,
        at,
        Command::CreateActivity(CreateActivity {
            activity_id: "act".into(),
            community_id: town.fuyuan.clone(),
            title: "重阳节包饺子".into(),
            description: String::new(),
            field_code: None,
            starts_at: at + 1000 * MIN,
            credit_minutes: 90,
            capacity: 5,
        }),
    )
    .await;
    town.ok(
        db,
        &p.majun,
        at + MIN,
        Command::SignUpActivity {
            activity_id: "act".into(),
            member_id: p.majun.clone(),
        },
    )
    .await;
    let out = town
        .ok(
            db,
            &p.staff,
            at + 1100 * MIN,
            Command::RecordAttendance {
                activity_id: "act".into(),
                member_ids: vec![p.majun.clone(), p.majun.clone()],
            },
        )
        .await;
    assert_eq!(
        out.detail["credited"],
        serde_json::json!([{"member": p.majun, "credited": 0, "held": 90}]),
        "{}",
        t.backend
    );
    let held: Vec<i64> = ledger_flags::Entity::find()
        .filter(ledger_flags::Column::MemberId.eq(p.majun.clone()))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.held_minutes)
        .collect();
    assert_eq!(
        held,
        [90],
        "{}: one flag of the activity's minutes",
        t.backend
    );
}

async fn an_activity_refuses_sign_ups_beyond_capacity_and_credits_attending_volunteers(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    let create = |id: &str, by_capacity: i32| {
        Command::CreateActivity(CreateActivity {
            activity_id: id.into(),
            community_id: town.fuyuan.clone(),
            title: "重阳节包饺子".into(),
            description: "和老人一起包饺子".into(),
            field_code: Some("companionship".into()),
            starts_at: at + 1000 * MIN,
            credit_minutes: 90,
            capacity: by_capacity,
        })
    };
    assert_eq!(
        code(town.exec(db, &p.majun, at, create("a0", 2)).await),
        Code::Forbidden,
        "volunteers do not organise activities"
    );
    // An activity's minutes between the programme's rounding units (15) would be credited as
    // another amount: refused.
    let Command::CreateActivity(mut odd) = create("a-odd", 2) else {
        unreachable!("create makes a CreateActivity")
    };
    odd.credit_minutes = 20;
    let e = town
        .refused(db, &p.staff, at, Command::CreateActivity(odd))
        .await;
    assert_eq!(e.code, Code::InvalidInput, "{}", t.backend);
    assert_eq!(e.detail["field"], "credit_minutes");
    // The city server takes it from a device that accepted it (under older rules, say): a
    // refusal there would refuse every later step of the activity too.
    let Command::CreateActivity(mut odd) = create("a-odd", 2) else {
        unreachable!("create makes a CreateActivity")
    };
    odd.credit_minutes = 20;
    let replay = timebank_core::service::Ctx::replaying(
        &p.staff,
        &town.boot.device_id,
        at,
        &timebank_core::service::new_id(),
    );
    timebank_core::service::execute(db, &replay, Command::CreateActivity(odd))
        .await
        .unwrap();
    town.ok(db, &p.staff, at, create("act", 2)).await;
    let sign_up = |who: &str| Command::SignUpActivity {
        activity_id: "act".into(),
        member_id: who.into(),
    };
    town.ok(db, &p.majun, at + MIN, sign_up(&p.majun)).await;
    assert_eq!(
        code(town.exec(db, &p.majun, at + MIN, sign_up(&p.majun)).await),
        Code::AlreadySignedUp
    );
    town.ok(db, &p.zhao, at + 2 * MIN, sign_up(&p.zhao)).await;
    let before = counts(db).await;
    let e = town
        .refused(db, &p.xiuzhi, at + 3 * MIN, sign_up(&p.xiuzhi))
        .await;
    assert_eq!(e.code, Code::ActivityFull, "{}", t.backend);
    assert_eq!(e.message(Lang::Zh), "活动名额已满（2人）。");
    assert_eq!(
        code(town.exec(db, &p.staff, at + 3 * MIN, sign_up(&p.liu)).await),
        Code::ActivityFull,
        "staff cannot squeeze someone in either"
    );
    assert_eq!(
        code(
            town.exec(
                db,
                &p.staff,
                at + 3 * MIN,
                Command::RecordAttendance {
                    activity_id: "act".into(),
                    member_ids: vec![p.xiuzhi.clone()],
                }
            )
            .await
        ),
        Code::NotSignedUp
    );
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);

    let out = town
        .ok(
            db,
            &p.staff,
            at + 1100 * MIN,
            Command::RecordAttendance {
                activity_id: "act".into(),
                member_ids: vec![p.majun.clone(), p.zhao.clone()],
            },
        )
        .await;
    assert_eq!(
        out.detail["credited"],
        serde_json::json!([{"member": p.majun, "credited": 90, "held": 0}]),
        "{}",
        t.backend
    );
    assert_eq!(town.balance(db, &p.majun).await, 60 + 90);
    assert_eq!(
        town.balance(db, &p.zhao).await,
        0,
        "a resident who is not a volunteer attends without credit"
    );
    let credit: Vec<_> = transfers(db)
        .await
        .into_iter()
        .filter(|x| x.activity_id.as_deref() == Some("act"))
        .collect();
    assert_eq!(credit.len(), 1);
    assert_eq!(
        credit[0].credit_key.as_deref(),
        Some(format!("act:act:{}", p.majun).as_str())
    );
    let act = activities::Entity::find_by_id("act".to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(act.status, "closed");
    // Attendance is taken once.
    assert_eq!(
        code(
            town.exec(
                db,
                &p.staff,
                at + 1101 * MIN,
                Command::RecordAttendance {
                    activity_id: "act".into(),
                    member_ids: vec![p.majun.clone()],
                }
            )
            .await
        ),
        Code::IllegalTransition
    );
    assert_eq!(town.balance(db, &p.majun).await, 60 + 90);
}

async fn a_volunteer_files_a_safeguarding_report_that_only_staff_see(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let details = "三天没见王大爷出门，敲门也没人应";
    let report = |id: &str, category: &str| {
        Command::FileSafeguarding(FileSafeguarding {
            report_id: id.into(),
            subject_member_id: Some(p.wang.clone()),
            order_id: None,
            category: category.into(),
            details: details.into(),
        })
    };
    assert_eq!(
        code(town.exec(db, &p.majun, T0, report("sg0", "gossip")).await),
        Code::InvalidInput
    );
    town.ok(db, &p.majun, T0 + MIN, report("sg1", "neglect"))
        .await;
    let r = safeguarding_reports::Entity::find_by_id("sg1".to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            r.reporter_id.as_str(),
            r.community_id.as_str(),
            r.status.as_str(),
            r.details.as_str()
        ),
        (p.majun.as_str(), town.fuyuan.as_str(), "open", details),
        "{}",
        t.backend
    );
    // It goes to the staff queue, and the notification carries no details.
    let told = inbox(db, &p.staff, "safeguarding_filed").await;
    assert_eq!(told.len(), 1, "{}", t.backend);
    assert!(!told[0].to_string().contains("敲门"), "{told:?}");
    // Never shown to volunteers, nor written into the audit trail.
    let vol = load_actor(db, &p.majun).await.unwrap();
    assert_eq!(
        read::safeguarding(db, &vol).await.unwrap_err().code,
        Code::Forbidden
    );
    let staff = load_actor(db, &p.staff).await.unwrap();
    let queue = read::safeguarding(db, &staff).await.unwrap();
    assert_eq!(
        queue.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["sg1"]
    );
    let audit_details = scalar(
        db,
        "SELECT COUNT(*) FROM audit_log WHERE detail LIKE ?",
        vec!["%敲门%".into()],
    )
    .await;
    assert_eq!(audit_details, 0, "{}", t.backend);
    // Staff take it on.
    town.ok(
        db,
        &p.staff,
        T0 + 2 * MIN,
        Command::UpdateSafeguarding {
            report_id: "sg1".into(),
            status: "in_progress".into(),
            resolution: None,
        },
    )
    .await;
    let r = safeguarding_reports::Entity::find_by_id("sg1".to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.status.as_str(), r.handled_by.as_deref()),
        ("in_progress", Some(p.staff.as_str()))
    );
    assert_eq!(
        code(
            town.exec(
                db,
                &p.majun,
                T0 + 3 * MIN,
                Command::UpdateSafeguarding {
                    report_id: "sg1".into(),
                    status: "closed".into(),
                    resolution: Some("没事".into()),
                }
            )
            .await
        ),
        Code::Forbidden
    );
}

async fn a_disputed_visit_is_credited_only_as_staff_resolve_it(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    for id in ["o-credit", "o-refuse"] {
        accepted_order(t, &town, &p, id, at).await;
        serve(t, &town, &p, id, at, 60).await;
    }
    let dispute = |id: &str| Command::DisputeVisit {
        visit_id: None,
        order_id: id.into(),
        reason: "只待了半小时".into(),
    };
    assert_eq!(
        code(
            town.exec(db, &p.zhao, at + 61 * MIN, dispute("o-credit"))
                .await
        ),
        Code::Forbidden,
        "a stranger cannot dispute"
    );
    town.ok(db, &p.xiuzhi, at + 61 * MIN, dispute("o-credit"))
        .await;
    assert_eq!(order_status(db, "o-credit").await, "disputed");
    assert_eq!(inbox(db, &p.staff, "dispute_filed").await.len(), 1);
    assert_eq!(
        code(
            town.exec(
                db,
                &p.majun,
                at + 62 * MIN,
                confirm_pin("o-credit", WANG_PIN)
            )
            .await
        ),
        Code::IllegalTransition,
        "a disputed visit is not confirmed by PIN"
    );
    let resolve = |id: &str, credit: bool| Command::ResolveDispute {
        visit_id: None,
        order_id: id.into(),
        credit,
        minutes: Some(30),
        note: "电话核实，服务了半小时".into(),
    };
    assert_eq!(
        code(
            town.exec(db, &p.majun, at + 63 * MIN, resolve("o-credit", true))
                .await
        ),
        Code::Forbidden
    );
    assert_eq!(town.balance(db, &p.majun).await, 60, "{}", t.backend);
    // Minutes between the programme's rounding units (15) would be credited as another
    // amount: refused, saying so.
    let e = town
        .refused(
            db,
            &p.staff,
            at + 70 * MIN,
            Command::ResolveDispute {
                visit_id: None,
                order_id: "o-credit".into(),
                credit: true,
                minutes: Some(50),
                note: "电话核实，服务了50分钟".into(),
            },
        )
        .await;
    assert_eq!(e.code, Code::InvalidInput, "{}", t.backend);
    assert!(e.message(Lang::Zh).contains("15分钟的整数倍"), "{e:?}");
    let out = town
        .ok(db, &p.staff, at + 70 * MIN, resolve("o-credit", true))
        .await;
    assert_eq!(
        out.detail["credited"],
        serde_json::json!([{"volunteer": p.majun, "credited": 30, "held": 0}])
    );
    assert_eq!(order_status(db, "o-credit").await, "completed");
    assert_eq!(town.balance(db, &p.majun).await, 60 + 30);
    // Resolved without credit: nothing is credited, the visit is closed as rejected.
    town.ok(db, &p.xiuzhi, at + 61 * MIN, dispute("o-refuse"))
        .await;
    town.ok(db, &p.staff, at + 71 * MIN, resolve("o-refuse", false))
        .await;
    assert_eq!(town.balance(db, &p.majun).await, 60 + 30, "{}", t.backend);
    let att = visit_attendance::Entity::find()
        .filter(visit_attendance::Column::OrderId.eq("o-refuse"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (att.status.as_str(), att.confirm_method.as_deref()),
        ("rejected", Some("resolution"))
    );
    assert!(!transfers(db)
        .await
        .iter()
        .any(|x| x.order_id.as_deref() == Some("o-refuse")));
    // Resolving twice is refused.
    assert_eq!(
        code(
            town.exec(db, &p.staff, at + 72 * MIN, resolve("o-credit", true))
                .await
        ),
        Code::IllegalTransition
    );
    assert_eq!(town.balance(db, &p.majun).await, 60 + 30);
}

async fn phone_of(db: &DatabaseConnection, id: &str) -> String {
    members::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .phone
}

fn resident(id: &str, phone: &str, community: &str) -> Command {
    Command::RegisterMember(RegisterMember {
        member_id: id.into(),
        name: "钱大妈".into(),
        phone: phone.into(),
        date_of_birth: date(1950, 7, 1),
        home_community_id: community.into(),
        address: Some("府苑新村8幢".into()),
        roles: vec![timebank_core::domain::Role::Resident],
        hardship: false,
        center_id: None,
        volunteer: None,
    })
}

async fn a_phone_number_already_registered_is_refused(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let wang_phone = phone_of(db, &p.wang).await;
    let before = counts(db).await;
    let spaced = format!(
        "{} {} {}",
        &wang_phone[..3],
        &wang_phone[3..7],
        &wang_phone[7..]
    );
    for phone in [wang_phone.clone(), spaced] {
        let e = town
            .refused(db, &p.staff, T0, resident("qian", &phone, &town.fuyuan))
            .await;
        assert_eq!(e.code, Code::DuplicatePhone, "{}: {phone}", t.backend);
        assert_eq!(e.message(Lang::Zh), format!("手机号{wang_phone}已被登记。"));
    }
    // Changing someone's phone to a number already registered is refused the same way.
    let e = town
        .refused(
            db,
            &p.staff,
            T0,
            Command::UpdateMember(UpdateMember {
                member_id: p.zhao.clone(),
                phone: Some(wang_phone.clone()),
                ..Default::default()
            }),
        )
        .await;
    assert_eq!(e.code, Code::DuplicatePhone, "{}", t.backend);
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    assert_ne!(phone_of(db, &p.zhao).await, wang_phone);
}

async fn a_malformed_phone_number_is_invalid_input(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let before = counts(db).await;
    for bad in [
        "12345",
        "1380000000a",
        "0571--88886666",
        "138001380001",
        "12800138000",
        "",
    ] {
        let e = town
            .refused(db, &p.staff, T0, resident("qian", bad, &town.fuyuan))
            .await;
        assert_eq!(
            (e.code, e.detail["field"].as_str()),
            (Code::InvalidInput, "phone"),
            "{}: {bad:?}",
            t.backend
        );
    }
    assert_eq!(counts(db).await, before, "{}: nothing written", t.backend);
    // The forms people write are accepted and stored normalised.
    town.ok(
        db,
        &p.staff,
        T0,
        resident("qian", "136 1111 2222", &town.fuyuan),
    )
    .await;
    assert_eq!(phone_of(db, "qian").await, "13611112222");
}

async fn a_transfer_to_an_account_that_does_not_exist_is_refused_as_not_found(t: &TestDb) {
    use sea_orm::TransactionTrait;
    use timebank_core::service::ledger::{issuing_account, post, NewTransfer};
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let issuing = issuing_account(db, &town.boot.programme_id).await.unwrap();
    let (balance, issued) = (town.balance(db, &p.majun).await, issuing.balance);
    let majun = timebank_core::service::ledger::member_account(db, &p.majun)
        .await
        .unwrap();
    let txn = db.begin().await.unwrap();
    let err = post(
        &txn,
        &town.ctx(&town.admin, T0 + MIN),
        NewTransfer {
            id: "t-nowhere".into(),
            programme_id: town.boot.programme_id.clone(),
            legs: vec![
                (issuing.id.clone(), -30),
                (majun.id.clone(), 20),
                ("acct-nobody".into(), 10),
            ],
            memo: "test".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("an account that does not exist");
    txn.rollback().await.unwrap();
    assert_eq!(err.code, Code::NotFound, "{}: {err:?}", t.backend);
    assert!(format!("{err:?}").contains("acct-nobody"), "{err:?}");
    assert_eq!(town.balance(db, &p.majun).await, balance);
    assert_eq!(town.issuing_balance(db).await, issued);
    assert_eq!(
        timebank_core::sql::scalar_i64(
            db,
            "SELECT COUNT(*) FROM transfers WHERE id = 't-nowhere'",
            vec![]
        )
        .await
        .unwrap(),
        0
    );
}

async fn the_database_refuses_to_update_or_delete_ledger_rows(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    accepted_order(t, &town, &p, "o1", at).await;
    serve(t, &town, &p, "o1", at, 60).await;
    town.ok(db, &p.majun, at + 61 * MIN, confirm_pin("o1", WANG_PIN))
        .await;
    let entries = || async {
        timebank_core::sql::all(
            db,
            "SELECT id, transfer_id, account_id, amount FROM ledger_entries ORDER BY id",
            vec![],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "id").unwrap(),
                r.try_get::<String>("", "transfer_id").unwrap(),
                r.try_get::<String>("", "account_id").unwrap(),
                r.try_get::<i64>("", "amount").unwrap(),
            )
        })
        .collect::<Vec<_>>()
    };
    let before = entries().await;
    let n_transfers = count(db, "transfers").await;
    assert!(before.len() >= 8, "{}: {before:?}", t.backend);
    for stmt in [
        "UPDATE ledger_entries SET amount = 0",
        "DELETE FROM transfers",
        "DELETE FROM ledger_entries",
        "UPDATE transfers SET memo = 'edited'",
        "UPDATE ledger_entries SET amount = amount + 1 WHERE amount > 0",
    ] {
        let err = db
            .execute_unprepared(stmt)
            .await
            .map(|r| r.rows_affected())
            .expect_err(stmt);
        assert!(
            err.to_string().contains("ledger_append_only"),
            "{}: {stmt}: {err}",
            t.backend
        );
        assert_eq!(CoreError::from(err).code, Code::LedgerAppendOnly);
    }
    assert_eq!(entries().await, before, "{}: entries unchanged", t.backend);
    assert_eq!(count(db, "transfers").await, n_transfers);
    assert_ledger_balanced(db, &t.backend.to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_the_ledger_is_refused_on_postgresql() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let _ = (&town, &p);
    let n = count(db, "ledger_entries").await;
    assert!(n > 0);
    let result = db.execute_unprepared("TRUNCATE ledger_entries").await;
    let after = count(db, "ledger_entries").await;
    t.cleanup().await;
    assert!(
        result.is_err(),
        "TRUNCATE ledger_entries went through: {n} entries before, {after} after"
    );
}

async fn the_daily_maximum_also_holds_when_the_beneficiary_pays(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(
        db,
        Rules {
            payer: Payer::Beneficiary,
            overdraft_limit: 600,
            max_per_visit: 120,
            max_per_day: 120,
            ..Rules::default()
        },
    )
    .await;
    let at = T0 + 10 * MIN;
    let mut credited = Vec::new();
    for (i, id) in ["o1", "o2"].into_iter().enumerate() {
        let start = at + i as i64 * 120 * MIN;
        accepted_order(t, &town, &p, id, start).await;
        serve(t, &town, &p, id, start, 90).await;
        let out = town
            .ok(db, &p.majun, start + 91 * MIN, confirm_pin(id, WANG_PIN))
            .await;
        credited.push(out.detail["credited"][0].clone());
    }
    // The same volunteer, the same day: 90 + 90 minutes against a daily maximum of 120.
    assert_eq!(
        credited,
        [
            serde_json::json!({"volunteer": p.majun, "credited": 90, "held": 0}),
            serde_json::json!({"volunteer": p.majun, "credited": 30, "held": 60}),
        ],
        "{}",
        t.backend
    );
    assert_eq!(town.balance(db, &p.majun).await, 60 + 120);
}

async fn a_landline_already_registered_without_its_dash_is_refused(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    town.ok(
        db,
        &p.staff,
        T0,
        resident("qian", "0571-88886666", &town.fuyuan),
    )
    .await;
    let before = counts(db).await;
    for same in ["057188886666", "0571 88886666"] {
        let e = town
            .exec(db, &p.staff, T0, resident("sun", same, &town.fuyuan))
            .await;
        let got = e.as_ref().map_err(|e| e.code);
        assert_eq!(
            got.err(),
            Some(Code::DuplicatePhone),
            "{}: {same} is the number 0571-88886666 already registered; got {e:?}",
            t.backend
        );
    }
    assert_eq!(counts(db).await, before);
}

async fn refusal_messages_are_written_in_one_language_and_name_places_by_name(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let at = T0 + 10 * MIN;
    accepted_order(t, &town, &p, "o1", at).await;
    town.ok(db, &p.majun, at + MIN, check_in("o1")).await;
    town.ok(db, &p.xiuzhi, at, post("o2", &p.wang, 60)).await;
    let mother = town
        .resident(db, "ma-mother", "马秀英", date(1955, 3, 3), None)
        .await;
    town.link(db, &mother, &p.majun, Relation::Child).await;
    let refusals = [
        Command::CancelOrder {
            order_id: "o1".into(),
            reason: "不用了".into(),
        },
        Command::SetRules(Rules::default()),
        resident("qian", "12345", &town.fuyuan),
        gift("g1", &mother, 600),
        accept("o2"),
    ];
    let actors = [&p.xiuzhi, &p.staff, &p.staff, &p.majun, &p.chen];
    let mut wrong = Vec::new();
    for (cmd, who) in refusals.into_iter().zip(actors) {
        let e = town.refused(db, who, at + 2 * MIN, cmd).await;
        let zh = e.message(Lang::Zh);
        let en = e.message(Lang::En);
        if zh.chars().any(|c| c.is_ascii_alphabetic()) {
            wrong.push(format!("{:?} zh: {zh}", e.code));
        }
        if en.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
            wrong.push(format!("{:?} en: {en}", e.code));
        }
        if e.code == Code::OutOfScope && !zh.contains("府苑新村") {
            wrong.push(format!("{:?} does not name the community: {zh}", e.code));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}: messages in the wrong language:\n{}",
        t.backend,
        wrong.join("\n")
    );
}

/// Run `cmds` (who, command) all at once, each in its own transaction on the shared pool, as
/// a center's workstation does when several people and the background sync write together.
async fn all_at_once(
    t: &TestDb,
    town: &Town,
    at: i64,
    cmds: Vec<(String, Command)>,
) -> Vec<Result<timebank_core::Outcome, CoreError>> {
    let handles: Vec<_> = cmds
        .into_iter()
        .map(|(who, cmd)| {
            let db = t.db.clone();
            let ctx = town.ctx(&who, at);
            tokio::spawn(async move { timebank_core::execute(&db, &ctx, cmd).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn six_volunteers(t: &TestDb, town: &Town, p: &Cast) -> Vec<String> {
    let mut v = vec![p.majun.clone()];
    for (i, name) in ["孙丽", "周强", "吴芳", "郑伟", "冯敏"].iter().enumerate() {
        let fuyuan = town.fuyuan.clone();
        v.push(
            town.volunteer(
                &t.db,
                &format!("vol-{i}"),
                name,
                date(1980, 1, 1),
                &fuyuan,
                true,
            )
            .await,
        );
    }
    v
}

/// Six volunteers accept the same one-volunteer order at the same moment: one gets it, the
/// others are told it is full and by whom, and only one acceptance is stored.
async fn volunteers_accepting_at_once_get_one_place_and_the_others_are_told_who_took_it(
    t: &TestDb,
) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let vols = six_volunteers(t, &town, &p).await;
    for round in 0..3 {
        let id = format!("o{round}");
        town.ok(db, &p.xiuzhi, T0 + 10 * MIN, post(&id, &p.wang, 60))
            .await;
        let results = all_at_once(
            t,
            &town,
            T0 + 11 * MIN,
            vols.iter().map(|v| (v.clone(), accept(&id))).collect(),
        )
        .await;
        let o = order_row(db, &id).await;
        assert_eq!(o.accepted_count, 1, "{}: round {round}", t.backend);
        let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "{}: round {round}: {results:?}",
            t.backend
        );
        let stored = order_volunteers::Entity::find()
            .filter(order_volunteers::Column::OrderId.eq(id.as_str()))
            .all(db)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "{}", t.backend);
        let winner = members::Entity::find_by_id(stored[0].volunteer_id.clone())
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .name;
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(
                (r.code, r.message(Lang::Zh)),
                (
                    Code::OrderFull,
                    format!("这个订单已被{winner}接单，人数已满。")
                ),
                "{}: round {round}: {r:?}",
                t.backend
            );
        }
    }
    assert_ledger_balanced(db, &t.backend.to_string()).await;
}

/// Six volunteers each take a different order at the same moment: nothing conflicts, so
/// every command goes through.
async fn commands_of_different_people_at_the_same_moment_all_go_through(t: &TestDb) {
    let db = &t.db;
    let (town, p) = cast(db, Rules::default()).await;
    let vols = six_volunteers(t, &town, &p).await;
    for (i, _) in vols.iter().enumerate() {
        town.ok(
            db,
            &p.xiuzhi,
            T0 + 10 * MIN,
            post(&format!("o{i}"), &p.wang, 60),
        )
        .await;
    }
    let results = all_at_once(
        t,
        &town,
        T0 + 11 * MIN,
        vols.iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), accept(&format!("o{i}"))))
            .collect(),
    )
    .await;
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(refused.is_empty(), "{}: {refused:?}", t.backend);
    for i in 0..vols.len() {
        assert_eq!(order_status(db, &format!("o{i}")).await, "accepted");
    }
    // The outbox stays gap-free however the commits interleave.
    let seqs: Vec<i64> = timebank_core::sql::all(db, "SELECT seq FROM outbox ORDER BY seq", vec![])
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("", "seq").unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "{}",
        t.backend
    );
}

// Written out instead of `both_backends!`: only the SQLite variants fail.
mod volunteers_accepting_at_once_get_one_place_and_the_others_are_told_who_took_it {
    use super::common::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let t = TestDb::sqlite().await;
        super::volunteers_accepting_at_once_get_one_place_and_the_others_are_told_who_took_it(&t)
            .await;
        t.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(t) = TestDb::postgres().await {
            super::volunteers_accepting_at_once_get_one_place_and_the_others_are_told_who_took_it(
                &t,
            )
            .await;
            t.cleanup().await;
        }
    }
}

both_backends!(commands_of_different_people_at_the_same_moment_all_go_through);
