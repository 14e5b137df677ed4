//! Pacing: when each generated call is handed to the sink. Realtime mode waits on the Tokio
//! clock until the call's simulated offset; flood mode never waits. Using the Tokio clock lets
//! the tests run the schedule on a paused, simulated clock.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::SimMode;
use crate::generator::{CallGenerator, SimCall};

/// The sink could not take the call now (producer queue full); it is offered again shortly.
#[derive(Debug)]
pub struct Backpressure;

/// How long to wait before offering a call again after [`Backpressure`].
const RETRY_AFTER_BACKPRESSURE: Duration = Duration::from_millis(2);

/// Feeds calls from `generator` to `sink` until `max_calls` (if any) or `shutdown`.
/// Returns how many calls the sink accepted.
pub async fn run_stream(
    mut generator: CallGenerator,
    mode: SimMode,
    max_calls: Option<u64>,
    shutdown: &CancellationToken,
    mut sink: impl FnMut(&SimCall) -> Result<(), Backpressure>,
) -> u64 {
    let start = Instant::now();
    let mut accepted = 0u64;
    while max_calls.is_none_or(|max| accepted < max) {
        let call = generator.next_call();
        if mode == SimMode::Realtime {
            let due = start + Duration::from_secs_f64(call.offset_secs);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
        }
        loop {
            if shutdown.is_cancelled() {
                return accepted;
            }
            match sink(&call) {
                Ok(()) => break,
                Err(Backpressure) => tokio::time::sleep(RETRY_AFTER_BACKPRESSURE).await,
            }
        }
        accepted += 1;
        // In flood mode nothing above awaits; yield so the metrics server and signal
        // handlers on this runtime keep running.
        if accepted.is_multiple_of(1024) {
            tokio::task::yield_now().await;
        }
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn generator(seed: u64) -> CallGenerator {
        let origin = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        CallGenerator::new(5.0, 60.0, seed, origin)
    }

    #[tokio::test(start_paused = true)]
    async fn realtime_mode_sends_each_call_at_its_simulated_offset() {
        let start = Instant::now();
        let mut sent = Vec::new();
        let n = run_stream(
            generator(9),
            SimMode::Realtime,
            Some(200),
            &CancellationToken::new(),
            |c| {
                sent.push((start.elapsed(), c.offset_secs));
                Ok(())
            },
        )
        .await;
        assert_eq!(n, 200);
        for (elapsed, offset) in &sent {
            let due = Duration::from_secs_f64(*offset);
            assert!(
                *elapsed >= due && *elapsed - due < Duration::from_millis(1),
                "{elapsed:?} vs {due:?}"
            );
        }
        // 200 calls at 5/s take about 40 simulated seconds.
        let total = sent.last().unwrap().0.as_secs_f64();
        assert!((30.0..50.0).contains(&total), "{total}");
    }

    #[tokio::test(start_paused = true)]
    async fn flood_mode_never_waits_and_retries_after_backpressure() {
        let start = Instant::now();
        let mut offers = 0;
        let n = run_stream(
            generator(9),
            SimMode::Flood,
            Some(1000),
            &CancellationToken::new(),
            |_| {
                offers += 1;
                // Refuse every third offer, like a full producer queue.
                if offers % 3 == 0 {
                    Err(Backpressure)
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(n, 1000);
        assert_eq!(offers, 1499, "every refused call is offered again");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_a_realtime_stream_between_calls() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.cancel();
        });
        let n = run_stream(generator(4), SimMode::Realtime, None, &shutdown, |_| Ok(())).await;
        // About 50 calls in 10 s at 5/s.
        assert!((25..80).contains(&n), "{n}");
    }
}
