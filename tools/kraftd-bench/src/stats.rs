//! Counters shared by the client threads and the reporter: records, bytes, errors and a
//! latency histogram for the whole run plus one for the current progress interval.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::histogram::Histogram;

#[derive(Default)]
struct Latency {
    run: Histogram,
    interval: Histogram,
}

/// One stream of events (acknowledged sends, or consumed records).
pub struct Stats {
    epoch: Instant,
    records: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// Nanoseconds after `epoch` of the first and the latest event: the run's time span is
    /// from when the clients started to the last event, not to when the tool noticed.
    started_ns: AtomicU64,
    last_ns: AtomicU64,
    latency: Mutex<Latency>,
}

/// What the reporter prints once per second.
pub struct Interval {
    pub records: u64,
    pub bytes: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub has_latency: bool,
}

pub struct Summary {
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    pub latency: Option<Histogram>,
}

impl Stats {
    pub fn new(epoch: Instant) -> Stats {
        Stats {
            epoch,
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            started_ns: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            latency: Mutex::new(Latency::default()),
        }
    }

    /// Nanoseconds since the run's epoch; the clock that send timestamps use too.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn mark_started(&self) {
        self.started_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    pub fn record(&self, bytes: u64, latency_ns: Option<u64>) {
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_ns.fetch_max(self.now_ns(), Ordering::Relaxed);
        if let Some(ns) = latency_ns {
            // A poisoned lock only means a reporter panicked; the counts are still usable.
            let mut l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
            l.run.record(ns);
            l.interval.record(ns);
        }
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Latency of the interval since the previous call, which starts a new interval.
    pub fn take_interval(&self) -> Interval {
        let mut l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let i = Interval {
            records: self.records(),
            bytes: self.bytes(),
            p50_ns: l.interval.quantile(0.5),
            p99_ns: l.interval.quantile(0.99),
            max_ns: l.interval.max(),
            has_latency: l.interval.count() > 0,
        };
        l.interval.reset();
        i
    }

    pub fn summary(&self, with_latency: bool) -> Summary {
        let l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let start = self.started_ns.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Relaxed);
        Summary {
            records: self.records(),
            bytes: self.bytes(),
            errors: self.errors(),
            seconds: last.saturating_sub(start) as f64 / 1e9,
            latency: with_latency.then(|| l.run.clone()),
        }
    }
}

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl Summary {
    pub fn records_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Megabytes (10^6) of record values per second, as Kafka's perf tools count.
    pub fn mb_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds / 1e6
        } else {
            0.0
        }
    }

    /// One line: `<what>: N records in S s, X MB/s, Y records/s, <latency>, E errors`.
    pub fn line(&self, what: &str, latency_name: &str) -> String {
        let mut s = format!(
            "{what}: {} records in {:.2} s, {:.1} MB/s, {:.0} records/s",
            self.records,
            self.seconds,
            self.mb_per_s(),
            self.records_per_s()
        );
        if let Some(h) = &self.latency {
            s.push_str(&format!(
                ", {latency_name} latency ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
                ms(h.quantile(0.5)),
                ms(h.quantile(0.99)),
                ms(h.quantile(0.999)),
                ms(h.max())
            ));
        }
        s.push_str(&format!(", {} errors", self.errors));
        s
    }

    pub fn json(&self) -> Value {
        let mut v = json!({
            "records": self.records,
            "bytes": self.bytes,
            "errors": self.errors,
            "seconds": self.seconds,
            "records_per_s": self.records_per_s(),
            "mb_per_s": self.mb_per_s(),
        });
        if let Some(h) = &self.latency {
            v["latency_ms"] = json!({
                "p50": ms(h.quantile(0.5)),
                "p99": ms(h.quantile(0.99)),
                "p99_9": ms(h.quantile(0.999)),
                "max": ms(h.max()),
                "count": h.count(),
            });
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rates_and_json() {
        let s = Summary {
            records: 2000,
            bytes: 2_048_000,
            errors: 1,
            seconds: 2.0,
            latency: None,
        };
        assert_eq!(s.records_per_s(), 1000.0);
        assert_eq!(s.mb_per_s(), 1.024);
        assert_eq!(
            s.line("produce", "ack"),
            "produce: 2000 records in 2.00 s, 1.0 MB/s, 1000 records/s, 1 errors"
        );
        let j = s.json();
        assert_eq!(j["records"], 2000);
        assert_eq!(j["mb_per_s"], 1.024);
        assert!(j.get("latency_ms").is_none());
    }

    #[test]
    fn stats_collect_latency_and_intervals() {
        let st = Stats::new(Instant::now());
        st.mark_started();
        st.record(100, Some(2_000_000));
        st.record(100, Some(4_000_000));
        st.error();
        let i = st.take_interval();
        assert_eq!((i.records, i.bytes, i.max_ns), (2, 200, 4_000_000));
        assert!(i.has_latency);
        assert!(
            !st.take_interval().has_latency,
            "a new interval starts empty"
        );
        let s = st.summary(true);
        assert_eq!((s.records, s.bytes, s.errors), (2, 200, 1));
        let h = s.latency.as_ref().expect("latency kept for the run");
        assert_eq!((h.count(), h.max()), (2, 4_000_000));
        assert_eq!(s.json()["latency_ms"]["max"], 4.0);
    }
}
