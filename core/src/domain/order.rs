//! The order lifecycle as a pure state machine. Every change of an order's status in the
//! store goes through [`OrderStatus::apply`], so an illegal transition cannot be written.
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Open,
    Accepted,
    InService,
    AwaitingConfirmation,
    Completed,
    Cancelled,
    Expired,
    Disputed,
}

/// What happens to an order. Events carry what the next status depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum OrderEvent {
    /// A volunteer accepted or was assigned (the count after it).
    Accept,
    /// A volunteer released it before check-in; `remaining` volunteers are still on it.
    Release {
        remaining: u32,
    },
    CheckIn,
    /// A volunteer checked out; `all_out` when nobody of this visit is still in service.
    CheckOut {
        all_out: bool,
    },
    /// The visit was confirmed (by PIN, app, staff or automatically).
    Confirm {
        last_visit: bool,
    },
    Dispute,
    /// Staff resolved a dispute.
    Resolve {
        last_visit: bool,
    },
    Cancel,
    Expire,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Open,
        OrderStatus::Accepted,
        OrderStatus::InService,
        OrderStatus::AwaitingConfirmation,
        OrderStatus::Completed,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
        OrderStatus::Disputed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Accepted => "accepted",
            OrderStatus::InService => "in_service",
            OrderStatus::AwaitingConfirmation => "awaiting_confirmation",
            OrderStatus::Completed => "completed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Disputed => "disputed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            OrderStatus::Open => "待接单",
            OrderStatus::Accepted => "已接单",
            OrderStatus::InService => "服务中",
            OrderStatus::AwaitingConfirmation => "待确认",
            OrderStatus::Completed => "已完成",
            OrderStatus::Cancelled => "已取消",
            OrderStatus::Expired => "已过期",
            OrderStatus::Disputed => "有争议",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Completed | OrderStatus::Cancelled | OrderStatus::Expired
        )
    }

    /// The status after `event`, or `None` when the event is not allowed in this status.
    pub fn apply(self, event: OrderEvent) -> Option<OrderStatus> {
        use OrderEvent as E;
        use OrderStatus as S;
        Some(match (self, event) {
            (S::Open | S::Accepted, E::Accept) => S::Accepted,
            (S::Accepted, E::Release { remaining }) => {
                if remaining == 0 {
                    S::Open
                } else {
                    S::Accepted
                }
            }
            (S::Accepted | S::InService, E::CheckIn) => S::InService,
            (S::InService, E::CheckOut { all_out }) => {
                if all_out {
                    S::AwaitingConfirmation
                } else {
                    S::InService
                }
            }
            (S::AwaitingConfirmation, E::Confirm { last_visit })
            | (S::Disputed, E::Resolve { last_visit }) => {
                if last_visit {
                    S::Completed
                } else {
                    S::Accepted
                }
            }
            (S::AwaitingConfirmation, E::Dispute) => S::Disputed,
            (S::Open | S::Accepted, E::Cancel) => S::Cancelled,
            (S::Open, E::Expire) => S::Expired,
            _ => return None,
        })
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl OrderEvent {
    pub fn name(self) -> &'static str {
        match self {
            OrderEvent::Accept => "accept",
            OrderEvent::Release { .. } => "release",
            OrderEvent::CheckIn => "check_in",
            OrderEvent::CheckOut { .. } => "check_out",
            OrderEvent::Confirm { .. } => "confirm",
            OrderEvent::Dispute => "dispute",
            OrderEvent::Resolve { .. } => "resolve",
            OrderEvent::Cancel => "cancel",
            OrderEvent::Expire => "expire",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    #[test]
    fn the_happy_path_goes_from_open_to_completed() {
        let mut s = S::Open;
        for e in [
            E::Accept,
            E::CheckIn,
            E::CheckOut { all_out: true },
            E::Confirm { last_visit: true },
        ] {
            s = s.apply(e).expect("legal");
        }
        assert_eq!(s, S::Completed);
    }

    #[test]
    fn a_recurring_order_returns_to_accepted_until_its_last_visit() {
        assert_eq!(
            S::AwaitingConfirmation.apply(E::Confirm { last_visit: false }),
            Some(S::Accepted)
        );
    }

    #[test]
    fn release_only_before_check_in_and_reopens_when_nobody_is_left() {
        assert_eq!(
            S::Accepted.apply(E::Release { remaining: 0 }),
            Some(S::Open)
        );
        assert_eq!(
            S::Accepted.apply(E::Release { remaining: 1 }),
            Some(S::Accepted)
        );
        assert_eq!(S::InService.apply(E::Release { remaining: 0 }), None);
    }

    #[test]
    fn final_states_accept_no_event() {
        for s in [S::Completed, S::Cancelled, S::Expired] {
            for e in [
                E::Accept,
                E::CheckIn,
                E::Cancel,
                E::Expire,
                E::Dispute,
                E::Confirm { last_visit: true },
            ] {
                assert_eq!(s.apply(e), None, "{s} + {e:?}");
            }
        }
    }

    #[test]
    fn cannot_cancel_once_service_started_and_only_open_orders_expire() {
        assert_eq!(S::InService.apply(E::Cancel), None);
        assert_eq!(S::Accepted.apply(E::Expire), None);
        assert_eq!(S::Open.apply(E::CheckIn), None);
        assert_eq!(S::Disputed.apply(E::Confirm { last_visit: true }), None);
    }
}
