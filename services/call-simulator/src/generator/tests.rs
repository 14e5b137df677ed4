//! Statistical tests of the generator with fixed seeds: the arrival counts per second follow
//! Poisson(λ) (chi-square goodness of fit), durations follow Exponential (Kolmogorov–Smirnov),
//! and the means are within 2 % over 10^5 samples.

use super::*;
use statrs::distribution::{ChiSquared, ContinuousCDF, Discrete, Poisson};

const N: usize = 100_000;

fn origin() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap()
}

#[test]
fn arrivals_per_second_follow_the_poisson_distribution() {
    let lambda = 10.0;
    let mut generator = CallGenerator::new(lambda, 120.0, 42, origin());
    let offsets: Vec<f64> = (0..N).map(|_| generator.next_call().offset_secs).collect();
    // Only whole seconds that the stream fully covers.
    let seconds = offsets[N - 1].floor() as usize;
    let mut per_second = vec![0u64; seconds];
    for &t in &offsets {
        if let Some(slot) = per_second.get_mut(t as usize) {
            *slot += 1;
        }
    }
    // Observed frequency of each count k, with the tails pooled so every expected bin is >= 5.
    let poisson = Poisson::new(lambda).unwrap();
    let (lo, hi) = (3u64, 18u64);
    let bin = |k: u64| k.clamp(lo, hi) - lo;
    let mut observed = vec![0f64; (hi - lo + 1) as usize];
    for &count in &per_second {
        observed[bin(count) as usize] += 1.0;
    }
    let mut expected = vec![0f64; observed.len()];
    for k in 0..200 {
        expected[bin(k) as usize] += poisson.pmf(k) * seconds as f64;
    }
    assert!(expected.iter().all(|&e| e >= 5.0), "{expected:?}");
    let chi2: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(o, e)| (o - e).powi(2) / e)
        .sum();
    let df = (observed.len() - 1) as f64;
    let critical = ChiSquared::new(df).unwrap().inverse_cdf(0.999);
    assert!(
        chi2 < critical,
        "chi2 = {chi2:.2} >= {critical:.2} (df {df})"
    );

    let mean_gap = offsets[N - 1] / N as f64;
    assert!(
        (mean_gap * lambda - 1.0).abs() < 0.02,
        "mean gap {mean_gap}"
    );
}

#[test]
fn durations_follow_the_exponential_distribution() {
    let mean = 120.0;
    let mut generator = CallGenerator::new(10.0, mean, 7, origin());
    let mut raw: Vec<f64> = (0..N).map(|_| generator.sample_raw_duration()).collect();
    raw.sort_by(f64::total_cmp);
    let cdf = |x: f64| 1.0 - (-x / mean).exp();
    let n = N as f64;
    let d = raw
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max);
    let critical = 1.63 / n.sqrt(); // alpha = 0.01
    assert!(d < critical, "KS D = {d:.5} >= {critical:.5}");

    // What is published is rounded to milliseconds and never zero; its mean is still right.
    let mut generator = CallGenerator::new(10.0, mean, 8, origin());
    let published: Vec<f64> = (0..N)
        .map(|_| generator.next_call().event.duration_secs)
        .collect();
    assert!(published.iter().all(|&d| d >= 0.001));
    let published_mean = published.iter().sum::<f64>() / n;
    assert!(
        (published_mean / mean - 1.0).abs() < 0.02,
        "mean {published_mean}"
    );
}

#[test]
fn the_same_seed_gives_the_same_stream_and_another_seed_does_not() {
    let take = |seed| {
        let mut g = CallGenerator::new(10.0, 120.0, seed, origin());
        (0..50).map(|_| g.next_call()).collect::<Vec<_>>()
    };
    assert_eq!(take(1), take(1));
    assert_ne!(take(1), take(2));
}

#[test]
fn calls_are_well_formed() {
    let mut g = CallGenerator::new(10.0, 120.0, 3, origin());
    let mut last = origin();
    for _ in 0..10_000 {
        let SimCall { event, .. } = g.next_call();
        for number in [&event.caller, &event.callee] {
            assert_eq!(number.len(), 11, "{number}");
            assert!(number.starts_with("0041") && number.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(event.caller, event.callee);
        assert!(event.start_time >= last, "start times never go back");
        assert_eq!(event.start_time.timestamp_subsec_micros() % 1000, 0);
        assert_eq!(event.call_id.get_version_num(), 4);
        last = event.start_time;
    }
}

#[test]
fn durations_round_to_milliseconds_and_are_never_zero() {
    assert!((to_millis_never_zero(0.000_2) - 0.001).abs() < 1e-12);
    assert!((to_millis_never_zero(95.123_4) - 95.123).abs() < 1e-9);
    assert!((to_millis_never_zero(0.0) - 0.001).abs() < 1e-12);
}
