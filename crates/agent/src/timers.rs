//! Delivers foca's timer events back to the node task, in deadline order.
//!
//! One sleeping task per timer could deliver two events out of order when the runtime
//! lags; foca tolerates that poorly (see foca's example agent and its issue #26), so one
//! task keeps the pending events sorted and hands them over one by one.

use foca::Timer;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Start the scheduler; events sent to the returned sender come out of `deliver` once
/// their delay has passed. It stops when either side is dropped.
pub fn spawn_scheduler<T: Send + 'static>(
    deliver: mpsc::UnboundedSender<Timer<T>>,
) -> mpsc::UnboundedSender<(Duration, Timer<T>)> {
    let (schedule, mut requests) = mpsc::unbounded_channel::<(Duration, Timer<T>)>();
    tokio::spawn(async move {
        // Keyed by deadline, then by arrival, so equal deadlines keep their order.
        let mut pending: BTreeMap<(Instant, u64), Timer<T>> = BTreeMap::new();
        let mut arrivals = 0u64;
        loop {
            let next_deadline = pending.keys().next().map(|&(deadline, _)| deadline);
            tokio::select! {
                request = requests.recv() => match request {
                    Some((delay, timer)) => {
                        arrivals += 1;
                        pending.insert((Instant::now() + delay, arrivals), timer);
                    }
                    None => return,
                },
                _ = sleep_until(next_deadline) => {
                    let now = Instant::now();
                    while let Some(entry) = pending.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        if deliver.send(entry.remove()).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    schedule
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::TimerToken;

    #[tokio::test]
    async fn timers_fire_in_deadline_order() {
        let (deliver, mut delivered) = mpsc::unbounded_channel();
        let schedule = spawn_scheduler::<u8>(deliver);
        schedule
            .send((Duration::from_millis(30), Timer::ProbeRandomMember(3)))
            .unwrap();
        schedule
            .send((Duration::from_millis(10), Timer::ProbeRandomMember(1)))
            .unwrap();
        schedule
            .send((Duration::from_millis(20), Timer::ProbeRandomMember(2)))
            .unwrap();
        let mut order: Vec<TimerToken> = Vec::new();
        for _ in 0..3 {
            match delivered.recv().await.unwrap() {
                Timer::ProbeRandomMember(token) => order.push(token),
                other => panic!("unexpected timer {other:?}"),
            }
        }
        assert_eq!(order, vec![1, 2, 3]);
    }
}
