//! Property tests.
//!
//! 1. Random sequences of operations on a SQLite device (gifts within and outside families,
//!    service credits through the whole order lifecycle with random durations and confirmation
//!    methods, disputes, reversals of random earlier transfers, approvals of held minutes, and
//!    refused operations mixed in) keep the ledger's invariants after every operation: each
//!    transfer sums to zero, all entries sum to zero, every balance equals the sum of its
//!    entries, entries are never changed or removed (every earlier snapshot is a prefix of the
//!    later ones), a refused operation writes no entry, and there is at most one credit per
//!    credit key (one service credit per visit and volunteer).
//! 2. The order state machine only ever makes the transitions of the lifecycle in product.md,
//!    written out below as a table.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use proptest::prelude::*;
use sea_orm::DatabaseConnection;
use timebank_core::domain::{ConfirmMethod, OrderEvent, OrderStatus, Relation, Rules};
use timebank_core::service::command::Command;
use timebank_core::sql;

// ---------------------------------------------------------------------------------------------
// 1. The ledger under random operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// A gift between two of Ma Jun, Liu Haiyan and their mother 马秀英 (by index). Between the
    /// two volunteers (not family), to oneself, of 0 minutes or more than the balance or over
    /// the cap it is refused.
    Gift {
        from: usize,
        to: usize,
        minutes: i64,
    },
    /// An order for Wang served by volunteer `volunteer` (0 Ma Jun, 1 Liu Haiyan) for `minutes`
    /// and confirmed by `how` (0 PIN, 1 the daughter in the app, 2 staff), after a wrong PIN
    /// if `wrong_pin_first`.
    Serve {
        volunteer: usize,
        minutes: i64,
        how: u8,
        wrong_pin_first: bool,
    },
    /// Served, disputed by the daughter, resolved by staff with or without credit.
    Dispute {
        volunteer: usize,
        minutes: i64,
        credit: bool,
        resolved_minutes: Option<i64>,
    },
    /// Staff reverse the n-th transfer so far (refused if it is a reversal or reversed).
    Reverse(usize),
    /// Staff approve the n-th open flag of held minutes, if there is one.
    ApproveHeld(usize),
    /// Refused outright: a gift to 赵小明, who is nobody's family.
    GiftToStranger(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3, 0usize..3, 0i64..150)
            .prop_map(|(from, to, minutes)| Op::Gift { from, to, minutes }),
        4 => (0usize..2, 0i64..300, 0u8..3, proptest::bool::weighted(0.2)).prop_map(
            |(volunteer, minutes, how, wrong_pin_first)| Op::Serve {
                volunteer,
                minutes,
                how,
                wrong_pin_first
            }
        ),
        // A resolution's minutes are whole rounding units (15 minutes): others are refused.
        1 => (0usize..2, 1i64..200, any::<bool>(), proptest::option::of((0i64..14).prop_map(|u| u * 15))).prop_map(
            |(volunteer, minutes, credit, resolved_minutes)| Op::Dispute {
                volunteer,
                minutes,
                credit,
                resolved_minutes
            }
        ),
        2 => (0usize..64).prop_map(Op::Reverse),
        1 => (0usize..8).prop_map(Op::ApproveHeld),
        1 => (1i64..100).prop_map(Op::GiftToStranger),
    ]
}

/// An entry as stored: (id, transfer, account, amount).
type Entry = (String, String, String, i64);

/// Every entry in the order it was written (SQLite's rowid).
async fn entries(db: &DatabaseConnection) -> Vec<Entry> {
    sql::all(
        db,
        "SELECT id, transfer_id, account_id, amount FROM ledger_entries ORDER BY rowid",
        vec![],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get("", "id").unwrap(),
            r.try_get("", "transfer_id").unwrap(),
            r.try_get("", "account_id").unwrap(),
            r.try_get("", "amount").unwrap(),
        )
    })
    .collect()
}

struct Family {
    town: Town,
    p: Cast,
    mother: String,
    rules: Rules,
}

impl Family {
    fn volunteer(&self, i: usize) -> &str {
        [&self.p.majun, &self.p.liu][i % 2]
    }
    fn family(&self, i: usize) -> &str {
        [&self.p.majun, &self.p.liu, &self.mother][i % 3]
    }
}

/// Post an order for Wang and have volunteer `v` take it and serve `minutes`.
async fn served(db: &DatabaseConnection, w: &Family, id: &str, v: &str, at: i64, minutes: i64) {
    let (town, p) = (&w.town, &w.p);
    town.ok(db, &p.xiuzhi, at, post(id, &p.wang, 60)).await;
    town.ok(db, v, at, accept(id)).await;
    town.ok(db, v, at, check_in(id)).await;
    let out = town.ok(db, v, at + minutes * MIN, check_out(id)).await;
    assert_eq!(out.detail["minutes"], minutes);
}

/// Check what a confirmation credited against the rules: the rounded minutes are all there,
/// credited or held, and no more than the visit maximum is credited.
fn check_credit(rules: &Rules, served: i64, out: &timebank_core::Outcome) {
    let credited = out.detail["credited"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (c, h) = credited.first().map_or((0, 0), |x| {
        (x["credited"].as_i64().unwrap(), x["held"].as_i64().unwrap())
    });
    assert_eq!(
        c + h,
        rules.round(served),
        "credited + held = rounded minutes"
    );
    assert!(
        c <= rules.max_per_visit,
        "at most the visit maximum is credited"
    );
}

/// Run one operation; returns whether it was entirely refused (and so must write nothing).
async fn apply(db: &DatabaseConnection, w: &Family, i: usize, at: i64, op: &Op) -> bool {
    let (town, p) = (&w.town, &w.p);
    match op {
        Op::Gift { from, to, minutes } => town
            .exec(
                db,
                w.family(*from),
                at,
                gift(&format!("g{i}"), w.family(*to), *minutes),
            )
            .await
            .is_err(),
        Op::GiftToStranger(minutes) => {
            let e = town
                .exec(db, &p.majun, at, gift(&format!("x{i}"), &p.zhao, *minutes))
                .await
                .unwrap_err();
            assert_eq!(e.code, timebank_core::Code::GiftNotAllowed);
            true
        }
        Op::Serve {
            volunteer,
            minutes,
            how,
            wrong_pin_first,
        } => {
            let id = format!("o{i}");
            let v = w.volunteer(*volunteer);
            served(db, w, &id, v, at, *minutes).await;
            let done = at + minutes * MIN;
            if *wrong_pin_first {
                let e = town
                    .exec(db, v, done, confirm_pin(&id, "0000"))
                    .await
                    .unwrap_err();
                assert_eq!(e.code, timebank_core::Code::PinIncorrect);
            }
            let (who, cmd) = match how % 3 {
                0 => (v, confirm_pin(&id, WANG_PIN)),
                1 => (p.xiuzhi.as_str(), confirm_by(&id, ConfirmMethod::App)),
                _ => (p.staff.as_str(), confirm_by(&id, ConfirmMethod::Staff)),
            };
            let out = town.ok(db, who, done, cmd.clone()).await;
            check_credit(&w.rules, *minutes, &out);
            // A second confirmation is refused and credits nothing twice.
            let before = entries(db).await.len();
            assert!(town.exec(db, who, done + MIN, cmd).await.is_err());
            assert_eq!(entries(db).await.len(), before);
            false
        }
        Op::Dispute {
            volunteer,
            minutes,
            credit,
            resolved_minutes,
        } => {
            let id = format!("d{i}");
            served(db, w, &id, w.volunteer(*volunteer), at, *minutes).await;
            let done = at + minutes * MIN;
            town.ok(
                db,
                &p.xiuzhi,
                done,
                Command::DisputeVisit {
                    visit_id: None,
                    order_id: id.clone(),
                    reason: "时间不对".into(),
                },
            )
            .await;
            let out = town
                .ok(
                    db,
                    &p.staff,
                    done + MIN,
                    Command::ResolveDispute {
                        visit_id: None,
                        order_id: id,
                        credit: *credit,
                        minutes: *resolved_minutes,
                        note: "核实".into(),
                    },
                )
                .await;
            if *credit {
                check_credit(&w.rules, resolved_minutes.unwrap_or(*minutes), &out);
            } else {
                assert_eq!(out.detail["credited"], serde_json::json!([]));
            }
            false
        }
        Op::Reverse(n) => {
            let all = transfers(db).await;
            let Some(target) = all.get(n % all.len().max(1)) else {
                return true;
            };
            let r = town
                .exec(
                    db,
                    &p.staff,
                    at,
                    Command::ReverseTransfer {
                        transfer_id: format!("r{i}"),
                        reverses_id: target.id.clone(),
                        reason: "更正".into(),
                    },
                )
                .await;
            let refusal_expected = target.reverses_id.is_some()
                || all
                    .iter()
                    .any(|x| x.reverses_id.as_deref() == Some(&target.id));
            assert_eq!(r.is_err(), refusal_expected, "reverse {target:?}: {r:?}");
            r.is_err()
        }
        Op::ApproveHeld(n) => {
            let open: Vec<_> = flags(db)
                .await
                .into_iter()
                .filter(|f| f.status == "open")
                .collect();
            let Some(f) = open.get(n % open.len().max(1)) else {
                return true;
            };
            let before = town.balance(db, &f.member_id).await;
            town.ok(
                db,
                &p.staff,
                at,
                Command::ApproveHeld {
                    flag_id: f.id.clone(),
                    transfer_id: format!("a{i}"),
                    note: "批准".into(),
                },
            )
            .await;
            assert_eq!(
                town.balance(db, &f.member_id).await,
                before + f.held_minutes
            );
            false
        }
    }
}

async fn check_invariants(db: &DatabaseConnection, seen: &[Entry], now: &[Entry], op: &Op) {
    // Entries are never changed nor removed: what was there is still there, in order.
    assert!(
        now.len() >= seen.len() && now[..seen.len()] == *seen,
        "after {op:?}: an earlier entry changed or disappeared"
    );
    let total: i64 = now.iter().map(|e| e.3).sum();
    assert_eq!(total, 0, "after {op:?}: all entries sum to zero");
    let mut per_transfer: std::collections::BTreeMap<&str, (i64, usize)> = Default::default();
    for e in now {
        let s = per_transfer.entry(&e.1).or_default();
        s.0 += e.3;
        s.1 += 1;
    }
    for (t, (sum, n)) in &per_transfer {
        assert_eq!(*sum, 0, "after {op:?}: transfer {t} sums to {sum}");
        assert!(*n >= 2, "after {op:?}: transfer {t} has {n} entry");
    }
    let mut by_account: std::collections::BTreeMap<&str, i64> = Default::default();
    for e in now {
        *by_account.entry(&e.2).or_default() += e.3;
    }
    for r in sql::all(db, "SELECT id, balance FROM accounts", vec![])
        .await
        .unwrap()
    {
        let id: String = r.try_get("", "id").unwrap();
        let balance: i64 = r.try_get("", "balance").unwrap();
        let sum = by_account.get(id.as_str()).copied().unwrap_or(0);
        assert_eq!(
            balance, sum,
            "after {op:?}: balance of {id} is not the sum of its entries"
        );
    }
    let dup_keys = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT credit_key FROM transfers WHERE credit_key IS NOT NULL \
         GROUP BY credit_key HAVING COUNT(*) > 1) d",
        vec![],
    )
    .await;
    assert_eq!(dup_keys, 0, "after {op:?}: a credit key was credited twice");
    let dup_visits = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT t.visit_id, e.account_id FROM transfers t \
         JOIN ledger_entries e ON e.transfer_id = t.id AND e.amount > 0 \
         WHERE t.credit_key LIKE 'svc:%' GROUP BY t.visit_id, e.account_id HAVING COUNT(*) > 1) d",
        vec![],
    )
    .await;
    assert_eq!(
        dup_visits, 0,
        "after {op:?}: a volunteer was credited twice for one visit"
    );
}

async fn run(ops: Vec<Op>) {
    let t = TestDb::sqlite().await;
    let db = &t.db;
    let rules = Rules {
        max_per_visit: 120,
        max_per_day: 300,
        balance_cap: 600,
        ..Rules::default()
    };
    let (town, p) = cast(db, rules.clone()).await;
    town.verify(db, &p.liu).await;
    let mother = town
        .resident(db, "ma-mother", "马秀英", date(1955, 3, 3), None)
        .await;
    town.link(db, &mother, &p.majun, Relation::Child).await;
    town.link(db, &mother, &p.liu, Relation::Child).await;
    let w = Family {
        town,
        p,
        mother,
        rules,
    };
    let mut seen = entries(db).await;
    let mut at = T0 + 10 * MIN;
    for (i, op) in ops.iter().enumerate() {
        at += 500 * MIN;
        let refused = apply(db, &w, i, at, op).await;
        let now = entries(db).await;
        if refused {
            assert_eq!(now, seen, "the refused {op:?} wrote ledger entries");
        }
        check_invariants(db, &seen, &now, op).await;
        seen = now;
    }
    t.cleanup().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]
    #[test]
    fn random_operations_keep_the_ledger_invariants(ops in proptest::collection::vec(op(), 1..=30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The order lifecycle
// ---------------------------------------------------------------------------------------------

/// The lifecycle of product.md: open, accepted, in service (checked in), awaiting confirmation
/// (checked out), completed; or cancelled, expired, disputed. A volunteer may release an
/// accepted order before check-in; more volunteers may accept or check in while places remain;
/// a recurring order goes back to accepted until its last visit; only open orders expire;
/// an order can be cancelled until service starts; a dispute is resolved by staff.
const LIFECYCLE: &[(OrderStatus, &str, OrderStatus)] = {
    use OrderStatus::*;
    &[
        (Open, "accept", Accepted),
        (Accepted, "accept", Accepted),
        (Accepted, "release, nobody left", Open),
        (Accepted, "release, others remain", Accepted),
        (Accepted, "check in", InService),
        (InService, "check in", InService),
        (InService, "check out, others still in", InService),
        (InService, "check out, all out", AwaitingConfirmation),
        (AwaitingConfirmation, "confirm, last visit", Completed),
        (AwaitingConfirmation, "confirm, more visits", Accepted),
        (AwaitingConfirmation, "dispute", Disputed),
        (Disputed, "resolve, last visit", Completed),
        (Disputed, "resolve, more visits", Accepted),
        (Open, "cancel", Cancelled),
        (Accepted, "cancel", Cancelled),
        (Open, "expire", Expired),
    ]
};

fn name(e: OrderEvent) -> &'static str {
    use OrderEvent as E;
    match e {
        E::Accept => "accept",
        E::Release { remaining: 0 } => "release, nobody left",
        E::Release { .. } => "release, others remain",
        E::CheckIn => "check in",
        E::CheckOut { all_out: false } => "check out, others still in",
        E::CheckOut { all_out: true } => "check out, all out",
        E::Confirm { last_visit: true } => "confirm, last visit",
        E::Confirm { last_visit: false } => "confirm, more visits",
        E::Dispute => "dispute",
        E::Resolve { last_visit: true } => "resolve, last visit",
        E::Resolve { last_visit: false } => "resolve, more visits",
        E::Cancel => "cancel",
        E::Expire => "expire",
    }
}

fn legal(from: OrderStatus, e: OrderEvent) -> Option<OrderStatus> {
    LIFECYCLE
        .iter()
        .find(|(f, n, _)| *f == from && *n == name(e))
        .map(|(_, _, to)| *to)
}

fn every_event() -> Vec<OrderEvent> {
    use OrderEvent as E;
    let mut v = vec![E::Accept, E::CheckIn, E::Dispute, E::Cancel, E::Expire];
    for r in 0..3 {
        v.push(E::Release { remaining: r });
    }
    for b in [false, true] {
        v.push(E::CheckOut { all_out: b });
        v.push(E::Confirm { last_visit: b });
        v.push(E::Resolve { last_visit: b });
    }
    v
}

fn event() -> impl Strategy<Value = OrderEvent> {
    proptest::sample::select(every_event())
}

proptest! {
    #[test]
    fn random_event_sequences_only_make_transitions_of_the_lifecycle(
        events in proptest::collection::vec(event(), 1..80)
    ) {
        let mut s = OrderStatus::Open;
        for e in events {
            match s.apply(e) {
                Some(to) => {
                    prop_assert_eq!(
                        legal(s, e), Some(to),
                        "{:?} --{}--> {:?} is not in the lifecycle", s, name(e), to
                    );
                    s = to;
                }
                None => prop_assert_eq!(
                    legal(s, e), None,
                    "{:?} --{}--> refused, but the lifecycle allows it", s, name(e)
                ),
            }
        }
    }
}

#[test]
fn the_state_machine_is_exactly_the_lifecycle_table() {
    for s in OrderStatus::ALL {
        for e in every_event() {
            assert_eq!(s.apply(e), legal(s, e), "{s:?} --{}-->", name(e));
        }
    }
}

#[test]
fn every_status_is_reachable_from_open_and_final_statuses_are_final() {
    let mut reached = vec![OrderStatus::Open];
    let mut i = 0;
    while i < reached.len() {
        for (f, _, to) in LIFECYCLE {
            if *f == reached[i] && !reached.contains(to) {
                reached.push(*to);
            }
        }
        i += 1;
    }
    assert_eq!(reached.len(), OrderStatus::ALL.len(), "{reached:?}");
    for s in OrderStatus::ALL.into_iter().filter(|s| s.is_final()) {
        assert!(
            every_event().into_iter().all(|e| s.apply(e).is_none()),
            "{s:?} is final"
        );
    }
}
