//! The standard `process_*` families: the crate has no process collector, so they are read
//! from `/proc` here.

use super::scrape::{counter, gauge};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// The standard `process_*` families, read from `/proc` at scrape time; a file that cannot
/// be read (not Linux) leaves its family out rather than exporting a made-up value.
#[derive(Debug)]
pub(super) struct Process {
    /// From the [`Clock`] (now minus the process's age), like every exported timestamp.
    pub(super) start_time: f64,
}

impl Collector for Process {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        if let (Some(stat), Some(hz)) = (stat.as_deref().and_then(ProcStat::parse), clock_ticks()) {
            counter(
                &mut enc,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                (stat.utime + stat.stime) as f64 / hz,
            )?;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok();
        if let Some(rss) = status.as_deref().and_then(resident_bytes) {
            gauge(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss,
            )?;
        }
        gauge(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            self.start_time,
        )?;
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut enc,
                "process_open_fds",
                "Number of open file descriptors.",
                fds.count(),
            )?;
        }
        Ok(())
    }
}

/// The fields of `/proc/self/stat` used here, in clock ticks.
#[derive(Debug, PartialEq)]
struct ProcStat {
    utime: u64,
    stime: u64,
    starttime: u64,
}

impl ProcStat {
    /// Fields are counted after the command name, which is in parentheses and may itself
    /// hold spaces and parentheses: hence the last `)`.
    fn parse(text: &str) -> Option<ProcStat> {
        let (_, rest) = text.rsplit_once(')')?;
        // `rest` starts at field 3 (state); utime, stime and starttime are fields 14, 15, 22.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse().ok();
        Some(ProcStat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
        })
    }
}

/// `VmRSS` of `/proc/self/status`, which the kernel gives in kB.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

/// `USER_HZ`, the unit of `/proc`'s CPU times.
fn clock_ticks() -> Option<f64> {
    // SAFETY: sysconf reads a constant and has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then_some(hz as f64)
}

/// How long this process has run: the system's uptime minus the process's start in ticks
/// after boot. Used with the injected clock rather than `btime`, so that the start time
/// agrees with every other exported timestamp.
pub(super) fn process_age_secs() -> Option<f64> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = ProcStat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some((uptime - stat.starttime as f64 / clock_ticks()?).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_follow_the_last_parenthesis() {
        let line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0 98765 1000 200 18446744073709551615";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                utime: 123,
                stime: 45,
                starttime: 98765
            })
        );
        assert_eq!(ProcStat::parse("4242 (truncated"), None);
        assert_eq!(
            resident_bytes("Name:\tx\nVmRSS:\t  1234 kB\nThreads: 3\n"),
            Some(1234 * 1024)
        );
        assert_eq!(resident_bytes("Name:\tx\n"), None);
    }
}
