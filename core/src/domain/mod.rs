//! Pure domain: types, the order state machine, programme rules, the hybrid logical clock.
//! Nothing here does I/O.
pub mod hlc;
pub mod order;
pub mod rules;
pub mod types;

pub use order::{OrderEvent, OrderStatus};
pub use rules::Rules;
pub use types::*;
