//! Hybrid logical clock (Kulkarni et al.): physical milliseconds plus a logical counter and
//! the node id as tie-breaker. Encoded as fixed-width text so that string order is time order.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Hlc {
    pub millis: i64,
    pub counter: u32,
    pub node: String,
}

impl Hlc {
    pub fn zero(node: &str) -> Self {
        Hlc {
            millis: 0,
            counter: 0,
            node: node.to_owned(),
        }
    }

    /// The next local timestamp after `self`, given the wall clock `now_ms`.
    pub fn tick(&self, now_ms: i64) -> Hlc {
        if now_ms > self.millis {
            Hlc {
                millis: now_ms,
                counter: 0,
                node: self.node.clone(),
            }
        } else {
            Hlc {
                millis: self.millis,
                counter: self.counter + 1,
                node: self.node.clone(),
            }
        }
    }

    /// Merge a remote timestamp on receipt (keeps our node id).
    pub fn receive(&self, remote: &Hlc, now_ms: i64) -> Hlc {
        let millis = now_ms.max(self.millis).max(remote.millis);
        let counter = if millis == self.millis && millis == remote.millis {
            self.counter.max(remote.counter) + 1
        } else if millis == self.millis {
            self.counter + 1
        } else if millis == remote.millis {
            remote.counter + 1
        } else {
            0
        };
        Hlc {
            millis,
            counter,
            node: self.node.clone(),
        }
    }

    pub fn encode(&self) -> String {
        format!("{:015}-{:06}-{}", self.millis, self.counter, self.node)
    }

    pub fn decode(s: &str) -> Option<Hlc> {
        let mut it = s.splitn(3, '-');
        let millis = it.next()?.parse().ok()?;
        let counter = it.next()?.parse().ok()?;
        let node = it.next()?.to_owned();
        Some(Hlc {
            millis,
            counter,
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_monotonic_even_when_the_wall_clock_goes_back() {
        let a = Hlc::zero("dev").tick(1_000);
        let b = a.tick(500);
        assert!(b > a);
        assert!(b.encode() > a.encode());
        assert_eq!(Hlc::decode(&b.encode()), Some(b));
    }

    #[test]
    fn receiving_a_clock_from_the_future_moves_ahead_of_it() {
        let local = Hlc::zero("a").tick(1_000);
        let remote = Hlc {
            millis: 9_000,
            counter: 3,
            node: "b-x".into(),
        };
        let merged = local.receive(&remote, 1_001);
        assert_eq!((merged.millis, merged.counter), (9_000, 4));
        assert_eq!(Hlc::decode(&remote.encode()), Some(remote));
    }
}
