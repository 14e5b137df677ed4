//! Deadlines by polling: a check is retried every second until it passes or its deadline
//! passes, and then fails with what it saw last. No sleep-and-hope: every wait in the
//! end-to-end test is one of these.

use std::time::{Duration, Instant};

/// Runs `attempt` until it returns `Ok` (its value is returned) or `within` has passed; then
/// fails with `what`, the deadline and the last attempt's error (what it saw).
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut attempt: impl AsyncFnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                anyhow::bail!(
                    "{what}: not within {} s; last seen: {last:#}",
                    within.as_secs()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// `n` seconds.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_of_the_first_attempt_that_passes() {
        let mut tries = 0;
        let got = eventually(secs(5), "three tries", async || {
            tries += 1;
            anyhow::ensure!(tries >= 3, "try {tries}");
            Ok(tries)
        })
        .await;
        assert_eq!(got.ok(), Some(3));
    }

    #[tokio::test]
    async fn fails_at_the_deadline_with_what_it_saw_last() {
        let started = Instant::now();
        let err = eventually(secs(0), "never", async || -> anyhow::Result<()> {
            anyhow::bail!("state 'pending'")
        })
        .await
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("never: not within 0 s; last seen: state 'pending'")
        );
        assert!(started.elapsed() < secs(1));
    }
}
