//! Process and cache-size metrics, read at scrape time: the `process_*` names every Prometheus
//! dashboard expects (unprefixed, as the official client libraries export them), and each
//! in-process cache's entries and weighed bytes.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// A cache that can say how full it is.
pub trait CacheSize: Send + Sync + 'static {
    fn entries(&self) -> u64;
    /// The weighed size: what the cache's byte budget is measured in.
    fn bytes(&self) -> u64;
}

/// Linux `/proc/self` readings; absent elsewhere (the metrics are then simply not exported).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub start_time_seconds: f64,
}

impl ProcessStats {
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        parse(
            &stat,
            &statm,
            &uptime,
            now,
            open_fds,
            PAGE_SIZE,
            CLOCK_TICKS,
        )
    }
}

/// The kernel's page size and clock tick on every Linux this runs on (x86-64 and aarch64
/// defaults); reading them would need libc for two constants.
const PAGE_SIZE: u64 = 4096;
const CLOCK_TICKS: f64 = 100.0;

/// `stat`'s fields after the command name (which may hold spaces, so it is skipped by its
/// closing parenthesis): utime and stime are fields 14 and 15, starttime 22 (1-based).
fn parse(
    stat: &str,
    statm: &str,
    uptime: &str,
    now: f64,
    open_fds: u64,
    page: u64,
    ticks: f64,
) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let cpu_seconds = (field(14)? + field(15)?) / ticks;
    let started_after_boot = field(22)? / ticks;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcessStats {
        resident_bytes: resident_pages * page,
        cpu_seconds,
        open_fds,
        start_time_seconds: now - up + started_after_boot,
    })
}

/// `process_resident_memory_bytes` read back from a scraped page (the load tool's view).
pub fn rss_from_metrics(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Caches by name, as they report their sizes.
type Named = Vec<(&'static str, Arc<dyn CacheSize>)>;

/// Registered once; caches join it as the app builds them.
#[derive(Default, Clone)]
pub struct Sizes {
    caches: Arc<Mutex<Named>>,
}

impl std::fmt::Debug for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sizes")
    }
}

impl Sizes {
    pub fn add(&self, name: &'static str, cache: Arc<dyn CacheSize>) {
        let mut caches = self
            .caches
            .lock()
            .expect("never poisoned: no panics inside");
        caches.retain(|(n, _)| *n != name);
        caches.push((name, cache));
    }
}

impl Collector for Sizes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(p) = ProcessStats::read() {
            let gauge = |e: &mut DescriptorEncoder, name, help, v: f64| -> std::fmt::Result {
                let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(m)
            };
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_bytes as f64,
            )?;
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds as f64,
            )?;
            gauge(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                p.start_time_seconds,
            )?;
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent, in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(p.cpu_seconds).encode(m)?;
        }
        let caches = self
            .caches
            .lock()
            .expect("never poisoned: no panics inside");
        for (kind, help, read) in [
            (
                "wagate_cache_entries",
                "Entries held by each in-process cache",
                (|c: &dyn CacheSize| c.entries()) as fn(&dyn CacheSize) -> u64,
            ),
            (
                "wagate_cache_bytes",
                "Weighed size of each in-process cache, against its byte budget",
                |c: &dyn CacheSize| c.bytes(),
            ),
        ] {
            let mut family = encoder.encode_descriptor(kind, help, None, MetricType::Gauge)?;
            for (name, cache) in caches.iter() {
                let labels = [("cache", *name)];
                let m = family.encode_family(&labels)?;
                ConstGauge::new(read(cache.as_ref()) as i64).encode(m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_fields_even_with_spaces_in_the_name() {
        let stat = "4242 (wagate (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 150 0 0 20 0 \
                    9 0 12000 123456789 3000 18446744073709551615";
        let p = parse(
            stat,
            "30000 3000 500 1 0 900 0",
            "1000.50 1900.00",
            1_700_000_000.0,
            12,
            4096,
            100.0,
        )
        .unwrap();
        assert_eq!(p.resident_bytes, 3000 * 4096);
        assert_eq!(p.cpu_seconds, 4.0, "(250 + 150) ticks at 100/s");
        assert_eq!(p.open_fds, 12);
        assert_eq!(p.start_time_seconds, 1_700_000_000.0 - 1000.5 + 120.0);
        assert!(parse("garbage", "", "", 0.0, 0, 4096, 100.0).is_none());
    }

    struct Fixed;
    impl CacheSize for Fixed {
        fn entries(&self) -> u64 {
            3
        }
        fn bytes(&self) -> u64 {
            700
        }
    }

    #[test]
    fn scrape_has_process_and_cache_sizes() {
        let m = crate::metrics::Metrics::new();
        m.sizes.add("dedupe", Arc::new(Fixed));
        m.processor_retries.inc();
        let text = m.render();
        for line in [
            "wagate_cache_entries{cache=\"dedupe\"} 3",
            "wagate_cache_bytes{cache=\"dedupe\"} 700",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_start_time_seconds ",
            "wagate_processor_retries_total 1",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        let rss = rss_from_metrics(&text).unwrap();
        assert!(rss > 1024 * 1024);
    }

    #[test]
    fn this_process_has_stats() {
        let p = ProcessStats::read().expect("runs on Linux");
        assert!(p.resident_bytes > 1024 * 1024);
        assert!(p.open_fds > 0);
        assert!(p.start_time_seconds > 1_600_000_000.0);
    }
}
