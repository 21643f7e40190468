//! A fixed-size log-linear latency histogram: bounded memory whatever the run length.
//!
//! Values below 128 get a bucket each; above, every power of two is split into 64 equal
//! buckets, so a bucket's width is at most 1/64 (1.6 %) of its values. 3,776 u64 counters
//! (30 KiB) cover the whole u64 range.

const LINEAR: u64 = 128;
const SUB_BUCKETS: u64 = 64;
/// log2(SUB_BUCKETS): the mantissa bits kept per power of two.
const SUB_BITS: u32 = 6;
const BUCKETS: usize = (LINEAR + (63 - 7 + 1) * SUB_BUCKETS) as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= 7
    let mantissa = v >> (exp - SUB_BITS); // in [64, 128)
    (LINEAR + u64::from(exp - 7) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

/// The largest value that falls in bucket `i`.
fn highest_in(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB_BUCKETS + 7;
    let mantissa = (i - LINEAR) % SUB_BUCKETS + SUB_BUCKETS;
    let shift = exp as u32 - SUB_BITS;
    // (mantissa + 1) << shift can be 2^64 for the last bucket.
    (((mantissa + 1) as u128) << shift)
        .saturating_sub(1)
        .min(u128::from(u64::MAX)) as u64
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the top of the bucket holding the ceil(q * n)-th
    /// smallest value, never above the largest recorded value. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_in(i).min(self.max);
            }
        }
        self.max
    }

    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(127), 127);
        assert_eq!(bucket_of(128), 128);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(highest_in(BUCKETS - 1), u64::MAX);
        // Every bucket's top is followed by the next bucket's first value.
        for i in 0..BUCKETS - 1 {
            let top = highest_in(i);
            assert_eq!(bucket_of(top), i, "top of bucket {i}");
            assert_eq!(bucket_of(top + 1), i + 1, "after bucket {i}");
        }
    }

    #[test]
    fn relative_error_is_bounded() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            let top = highest_in(bucket_of(v));
            assert!(top >= v);
            assert!((top - v) as f64 <= v as f64 / 64.0, "value {v} top {top}");
            v = v * 3 + 1;
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000); // 1,000 .. 1,000,000
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1_000_000);
        let p50 = h.quantile(0.5);
        assert!(
            (500_000..=500_000 + 500_000 / 64).contains(&p50),
            "p50 {p50}"
        );
        let p99 = h.quantile(0.99);
        assert!(
            (990_000..=990_000 + 990_000 / 64).contains(&p99),
            "p99 {p99}"
        );
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.quantile(0.0), highest_in(bucket_of(1000)));
    }

    #[test]
    fn reset_empties() {
        let mut a = Histogram::default();
        for v in [5, 7, 9] {
            a.record(v);
        }
        assert_eq!((a.count(), a.max(), a.quantile(0.5)), (3, 9, 7));
        a.reset();
        assert_eq!((a.count(), a.max(), a.quantile(0.99)), (0, 0, 0));
    }
}
