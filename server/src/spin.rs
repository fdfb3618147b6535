//! Short waits without sleeping. On SQLite every statement of a pushed group is handed to the
//! driver's worker thread and its answer handed back, and most answers come within a few
//! microseconds; putting the group's task to sleep for each and waking it again costs more
//! than the statement itself (29 µs a statement on the 2-core machine, against 6 µs when
//! neither side sleeps: `timebank-bench-hop`). The driver's side of it is
//! `Tuning::sqlite_worker_spin` (vendor/README.md).
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long a pending future is polled again before its task is let sleep: as long as the
/// SQLite worker waits awake for the group's next statement.
pub const SPIN: Duration = timebank_core::db::WORKER_SPIN;

/// `inner`, polled again and again for up to [`SPIN`] while it is pending, before it gives
/// the thread back (a future may be polled any number of times; its waker stays registered,
/// so an answer arriving later still wakes the task).
pub struct Spin<F> {
    inner: Pin<Box<F>>,
    /// How long one poll spins at most ([`SPIN`]).
    budget: Duration,
}

impl<F: Future> Spin<F> {
    pub fn new(inner: F) -> Self {
        Self::at_most(inner, SPIN)
    }

    /// `inner` spun for up to `budget` a poll instead of [`SPIN`].
    pub fn at_most(inner: F, budget: Duration) -> Self {
        Spin {
            inner: Box::pin(inner),
            budget,
        }
    }
}

impl<F: Future> Future for Spin<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = Instant::now();
        loop {
            if let Poll::Ready(v) = self.inner.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
            if start.elapsed() >= self.budget {
                return Poll::Pending;
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Ready on its `n`th poll.
    struct ReadyAfter {
        polls: usize,
        n: usize,
    }

    impl Future for ReadyAfter {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls >= self.n {
                Poll::Ready(self.polls)
            } else {
                Poll::Pending
            }
        }
    }

    /// With a budget no busy machine can use up between five polls (with [`SPIN`] itself, a
    /// few tens of microseconds, the test thread was once descheduled past it while the other
    /// tests ran, and the spin rightly gave up).
    #[test]
    fn a_future_ready_on_a_later_poll_is_finished_within_one_poll_of_the_spin() {
        let mut f = Spin::at_most(ReadyAfter { polls: 0, n: 5 }, Duration::from_secs(60));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(5));
    }

    #[test]
    fn a_future_never_ready_gives_the_thread_back_as_pending() {
        let mut f = Spin::new(std::future::pending::<()>());
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Pending);
    }

    #[tokio::test]
    async fn a_spun_task_still_wakes_for_an_answer_that_comes_after_the_spin() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = tokio::spawn(Spin::new(rx));
        tokio::time::sleep(SPIN * 20).await;
        tx.send(7).expect("the receiver waits");
        assert_eq!(waiting.await.expect("joined"), Ok(7));
    }
}
