//! Comparing message variants: reply rates with 95% Wilson score intervals, and how sure we
//! are that the leading variant really is better (a one-sided two-proportion z-test).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantCounts {
    pub name: String,
    pub sent: u64,
    pub delivered: u64,
    /// Contacts who replied within 24 hours of the text.
    pub replied: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantStats {
    pub name: String,
    pub sent: u64,
    pub delivered: u64,
    pub replied: u64,
    pub reply_rate: f64,
    /// 95% Wilson score interval of the reply rate.
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub variants: Vec<VariantStats>,
    /// The variant with the highest reply rate, when there are two or more with texts.
    pub leader: Option<String>,
    /// Probability (0–1) that the leader's true reply rate beats the runner-up's.
    pub confidence: Option<f64>,
}

const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval for `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

pub fn compare(counts: &[VariantCounts]) -> Comparison {
    let variants: Vec<VariantStats> = counts
        .iter()
        .map(|c| {
            let (lo, hi) = wilson(c.replied, c.sent);
            VariantStats {
                name: c.name.clone(),
                sent: c.sent,
                delivered: c.delivered,
                replied: c.replied,
                reply_rate: if c.sent == 0 {
                    0.0
                } else {
                    c.replied as f64 / c.sent as f64
                },
                ci_low: lo,
                ci_high: hi,
            }
        })
        .collect();
    let mut ranked: Vec<&VariantStats> = variants.iter().filter(|v| v.sent > 0).collect();
    ranked.sort_by(|a, b| b.reply_rate.total_cmp(&a.reply_rate));
    let (leader, confidence) = match ranked.as_slice() {
        [first, second, ..] => {
            let (n1, n2) = (first.sent as f64, second.sent as f64);
            let pooled = (first.replied + second.replied) as f64 / (n1 + n2);
            let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
            let conf = if se == 0.0 {
                0.5
            } else {
                normal_cdf((first.reply_rate - second.reply_rate) / se)
            };
            (Some(first.name.clone()), Some(conf))
        }
        _ => (None, None),
    };
    Comparison {
        variants,
        leader,
        confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn wilson_matches_published_values() {
        // 10 of 100: the 95% Wilson interval is 0.0552 to 0.1744.
        let (lo, hi) = wilson(10, 100);
        assert!(close(lo, 0.0552) && close(hi, 0.1744), "{lo} {hi}");
        // 0 of 10: 0 to 0.2775.
        let (lo, hi) = wilson(0, 10);
        assert!(close(lo, 0.0) && close(hi, 0.2775), "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 0.0));
    }

    #[test]
    fn normal_cdf_values() {
        assert!(close(normal_cdf(0.0), 0.5));
        assert!(close(normal_cdf(1.959_964), 0.975));
        assert!(close(normal_cdf(-1.0), 0.158_655));
    }

    #[test]
    fn the_leader_and_how_sure() {
        let c = compare(&[
            VariantCounts {
                name: "A".into(),
                sent: 200,
                delivered: 195,
                replied: 40,
            },
            VariantCounts {
                name: "B".into(),
                sent: 200,
                delivered: 198,
                replied: 20,
            },
        ]);
        assert_eq!(c.leader.as_deref(), Some("A"));
        // 20% vs 10%: z = 2.80, one-sided confidence 0.997.
        assert!(close(c.confidence.unwrap(), 0.997_4), "{:?}", c.confidence);
        assert!(close(c.variants[0].reply_rate, 0.2));
        let even = compare(&[
            VariantCounts {
                name: "A".into(),
                sent: 10,
                delivered: 10,
                replied: 2,
            },
            VariantCounts {
                name: "B".into(),
                sent: 10,
                delivered: 10,
                replied: 2,
            },
        ]);
        assert!(close(even.confidence.unwrap(), 0.5));
        let alone = compare(&[VariantCounts {
            name: "A".into(),
            sent: 5,
            delivered: 5,
            replied: 1,
        }]);
        assert_eq!((alone.leader, alone.confidence), (None, None));
    }
}
