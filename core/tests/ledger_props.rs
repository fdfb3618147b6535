//! Property tests: random sequences of operations keep the ledger's invariants, and the
//! order state machine only ever makes the transitions of the lifecycle in product.md.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use proptest::prelude::*;
use timebank_core::domain::{ConfirmMethod, OrderEvent, OrderStatus, Relation, Rules};
use timebank_core::service::command::Command;
use timebank_core::sql;

#[derive(Debug, Clone)]
enum Op {
    /// Serve an order for the father: served minutes (may be over the visit maximum).
    Serve(i64),
    /// A gift between family members (may be refused for lack of balance).
    Gift(bool, i64),
    /// Reverse the n-th transfer so far (may be refused: already reversed, a reversal).
    Reverse(usize),
    /// Something refused: a gift to a stranger.
    Refused(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..400).prop_map(Op::Serve),
        (any::<bool>(), 1i64..200).prop_map(|(d, m)| Op::Gift(d, m)),
        (0usize..40).prop_map(Op::Reverse),
        (1i64..100).prop_map(Op::Refused),
    ]
}

async fn entries(db: &sea_orm::DatabaseConnection) -> Vec<(String, String, String, i64)> {
    sql::all(
        db,
        "SELECT id, transfer_id, account_id, amount FROM ledger_entries ORDER BY id",
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

async fn run(ops: Vec<Op>) {
    let t = sqlite().await;
    let db = &t.db;
    let w = world(
        db,
        Rules {
            max_per_visit: 180,
            max_per_day: 300,
            ..Rules::default()
        },
    )
    .await;
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
    let mut seen: std::collections::BTreeMap<String, (String, String, i64)> = Default::default();
    let mut at = T0 + MIN;
    for (i, op) in ops.into_iter().enumerate() {
        at += 600 * MIN;
        match op {
            Op::Serve(minutes) => {
                let id = format!("o{i}");
                w.exec(db, &w.xiuzhi, at, post(&id, &w.wang, 60))
                    .await
                    .unwrap();
                w.exec(
                    db,
                    &w.majun,
                    at,
                    Command::AcceptOrder {
                        order_id: id.clone(),
                    },
                )
                .await
                .unwrap();
                w.exec(
                    db,
                    &w.majun,
                    at,
                    Command::CheckIn {
                        order_id: id.clone(),
                    },
                )
                .await
                .unwrap();
                w.exec(
                    db,
                    &w.majun,
                    at + minutes * MIN,
                    Command::CheckOut {
                        order_id: id.clone(),
                        note: None,
                    },
                )
                .await
                .unwrap();
                w.exec(
                    db,
                    &w.wang,
                    at + minutes * MIN,
                    Command::ConfirmVisit {
                        order_id: id.clone(),
                        method: ConfirmMethod::Pin,
                        pin: Some("2468".into()),
                    },
                )
                .await
                .unwrap();
                // Confirming again is refused and credits nothing twice.
                assert!(w
                    .exec(
                        db,
                        &w.wang,
                        at + minutes * MIN,
                        Command::ConfirmVisit {
                            order_id: id,
                            method: ConfirmMethod::Pin,
                            pin: Some("2468".into())
                        }
                    )
                    .await
                    .is_err());
            }
            Op::Gift(forward, minutes) => {
                let (from, to) = if forward {
                    (&w.majun, &w.zhao)
                } else {
                    (&w.zhao, &w.majun)
                };
                let _ = w
                    .exec(
                        db,
                        from,
                        at,
                        Command::Gift {
                            transfer_id: format!("g{i}"),
                            to_member_id: to.clone(),
                            minutes,
                            note: String::new(),
                        },
                    )
                    .await;
            }
            Op::Reverse(n) => {
                let ids: Vec<String> = sql::all(
                    db,
                    "SELECT id FROM transfers ORDER BY created_at, id",
                    vec![],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get("", "id").unwrap())
                .collect();
                if let Some(target) = ids.get(n % ids.len().max(1)) {
                    let _ = w
                        .exec(
                            db,
                            &w.staff,
                            at,
                            Command::ReverseTransfer {
                                transfer_id: format!("r{i}"),
                                reverses_id: target.clone(),
                                reason: "更正".into(),
                            },
                        )
                        .await;
                }
            }
            Op::Refused(minutes) => {
                let before = entries(db).await.len();
                assert!(w
                    .exec(
                        db,
                        &w.majun,
                        at,
                        Command::Gift {
                            transfer_id: format!("x{i}"),
                            to_member_id: w.xiuzhi.clone(),
                            minutes,
                            note: String::new()
                        }
                    )
                    .await
                    .is_err());
                assert_eq!(entries(db).await.len(), before);
            }
        }
        // Invariants after every operation.
        let now = entries(db).await;
        for (id, (tr, acct, amount)) in &seen {
            let e = now
                .iter()
                .find(|e| &e.0 == id)
                .unwrap_or_else(|| panic!("entry {id} disappeared"));
            assert_eq!((&e.1, &e.2, e.3), (tr, acct, *amount), "entry {id} changed");
        }
        for e in &now {
            seen.insert(e.0.clone(), (e.1.clone(), e.2.clone(), e.3));
        }
        let total: i64 = now.iter().map(|e| e.3).sum();
        assert_eq!(total, 0, "all entries sum to zero");
        let mut per_transfer: std::collections::HashMap<&str, i64> = Default::default();
        for e in &now {
            *per_transfer.entry(&e.1).or_default() += e.3;
        }
        assert!(
            per_transfer.values().all(|s| *s == 0),
            "each transfer sums to zero"
        );
        let report = timebank_core::read::verify(db, &|_, _| {}).await.unwrap();
        assert!(
            report.ok(),
            "balances equal the sums of their entries: {report:?}"
        );
        let dup = sql::scalar_i64(db, "SELECT COUNT(*) FROM (SELECT visit_id FROM transfers WHERE kind = 'service_credit' AND visit_id IS NOT NULL AND credit_key LIKE 'svc:%' GROUP BY visit_id HAVING COUNT(*) > 1) d", vec![]).await.unwrap();
        assert_eq!(dup, 0, "at most one credit per visit and volunteer");
    }
    t.cleanup().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn random_operations_keep_the_ledger_invariants(ops in proptest::collection::vec(op(), 1..14)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}

/// The legal transitions of the lifecycle, written out from product.md.
fn legal(from: OrderStatus, e: OrderEvent) -> Option<OrderStatus> {
    use OrderEvent as E;
    use OrderStatus as S;
    let table: &[(S, &str, S)] = &[
        (S::Open, "accept", S::Accepted),
        (S::Accepted, "accept", S::Accepted),
        (S::Accepted, "release_last", S::Open),
        (S::Accepted, "release_some", S::Accepted),
        (S::Accepted, "check_in", S::InService),
        (S::InService, "check_in", S::InService),
        (S::InService, "check_out_some", S::InService),
        (S::InService, "check_out_all", S::AwaitingConfirmation),
        (S::AwaitingConfirmation, "confirm_last", S::Completed),
        (S::AwaitingConfirmation, "confirm_more", S::Accepted),
        (S::AwaitingConfirmation, "dispute", S::Disputed),
        (S::Disputed, "resolve_last", S::Completed),
        (S::Disputed, "resolve_more", S::Accepted),
        (S::Open, "cancel", S::Cancelled),
        (S::Accepted, "cancel", S::Cancelled),
        (S::Open, "expire", S::Expired),
    ];
    let name = match e {
        E::Accept => "accept",
        E::Release { remaining: 0 } => "release_last",
        E::Release { .. } => "release_some",
        E::CheckIn => "check_in",
        E::CheckOut { all_out: true } => "check_out_all",
        E::CheckOut { all_out: false } => "check_out_some",
        E::Confirm { last_visit: true } => "confirm_last",
        E::Confirm { last_visit: false } => "confirm_more",
        E::Dispute => "dispute",
        E::Resolve { last_visit: true } => "resolve_last",
        E::Resolve { last_visit: false } => "resolve_more",
        E::Cancel => "cancel",
        E::Expire => "expire",
    };
    table
        .iter()
        .find(|(f, n, _)| *f == from && *n == name)
        .map(|(_, _, to)| *to)
}

fn event() -> impl Strategy<Value = OrderEvent> {
    prop_oneof![
        Just(OrderEvent::Accept),
        (0u32..3).prop_map(|r| OrderEvent::Release { remaining: r }),
        Just(OrderEvent::CheckIn),
        any::<bool>().prop_map(|a| OrderEvent::CheckOut { all_out: a }),
        any::<bool>().prop_map(|l| OrderEvent::Confirm { last_visit: l }),
        Just(OrderEvent::Dispute),
        any::<bool>().prop_map(|l| OrderEvent::Resolve { last_visit: l }),
        Just(OrderEvent::Cancel),
        Just(OrderEvent::Expire),
    ]
}

proptest! {
    #[test]
    fn orders_only_make_the_transitions_of_the_lifecycle(events in proptest::collection::vec(event(), 1..60)) {
        let mut s = OrderStatus::Open;
        for e in events {
            let got = s.apply(e);
            prop_assert_eq!(got, legal(s, e), "{:?} + {:?}", s, e);
            if let Some(next) = got {
                s = next;
            }
        }
    }
}
