//! What the benchmark binaries share: percentiles, peak memory, distinct callers.

use std::time::Duration;

/// The `p` quantile (0–1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A valid NANP number per index (exchange 2xx–9xx), distinct per call so no cooldown
/// applies.
pub fn caller(i: usize) -> String {
    format!("+1512{:03}{:04}", 200 + i / 10_000, i % 10_000)
}

/// This process's peak resident set, in KiB (Linux).
pub fn rss_high_water_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
