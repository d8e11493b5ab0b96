//! What `/proc` says about a process: CPU-seconds used, peak and current resident memory, and
//! the Postgres server's CPU (the postmaster and all its backends).

use std::path::Path;
use std::time::Duration;

/// USER_HZ on Linux: the unit of the CPU times in `/proc/<pid>/stat`.
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of a `/proc/<pid>/stat` line after the `)` that ends the command name (which may
/// itself hold spaces and parentheses): index 0 is the state, 1 the parent pid, 11 utime, 12
/// stime, 13 cutime, 14 cstime.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect()
}

/// CPU-seconds (user + system) in a `/proc/<pid>/stat` line; with `with_children`, also those
/// of the children it has waited for.
fn stat_cpu_seconds(stat: &str, with_children: bool) -> f64 {
    let f = stat_fields(stat);
    let at = |i: usize| -> f64 { f.get(i).and_then(|x| x.parse().ok()).unwrap_or(0.0) };
    let own = at(11) + at(12);
    let children = if with_children { at(13) + at(14) } else { 0.0 };
    (own + children) / TICKS_PER_SECOND
}

/// CPU-seconds a process has used, and optionally its waited-for children; 0 once it is gone.
pub fn cpu_seconds(pid: u32, with_children: bool) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(0.0, |stat| stat_cpu_seconds(&stat, with_children))
}

/// This process's own CPU plus that of the children it has reaped.
pub fn own_cpu_with_children() -> f64 {
    cpu_seconds(std::process::id(), true)
}

/// The Postgres server's CPU: the postmaster, its live children, and the children it reaped
/// (backends that ended).
pub fn postgres_cpu(postmaster: u32) -> f64 {
    let mut total = cpu_seconds(postmaster, true);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return total;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid: u32 = stat_fields(&stat)
            .get(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        if ppid == postmaster {
            total += stat_cpu_seconds(&stat, false);
        }
    }
    total
}

/// The postmaster's pid, the first line of `postmaster.pid` in the data directory.
pub fn postmaster_pid(data_dir: &Path) -> u32 {
    let file = data_dir.join("postmaster.pid");
    std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no postmaster pid in {}", file.display()))
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in MiB.
fn status_mib(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

/// The resident set of a live process now (`VmRSS`), in MiB; 0 once it is gone.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| status_mib(&status, "VmRSS"))
        .unwrap_or(0.0)
}

/// The peak resident set of a live process (`VmHWM`), in MiB; `None` once it is gone.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_mib(&status, "VmHWM")
}

/// Samples a child's peak RSS every 20 ms until it exits (`VmHWM` only grows, so the last
/// sample is its peak up to at most 20 ms before the end). Runs on a thread of its own.
pub fn watch_peak_rss(pid: u32) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let mut peak = 0.0f64;
        while let Some(mib) = peak_rss_mib(pid) {
            peak = peak.max(mib);
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_comes_from_the_fields_after_the_command_name() {
        // A command name with spaces and a ')' must not shift the fields.
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 1 0";
        assert_eq!(stat_fields(stat)[1], "1");
        assert!((stat_cpu_seconds(stat, false) - 3.0).abs() < 1e-9);
        assert!((stat_cpu_seconds(stat, true) - 3.1).abs() < 1e-9);
        assert_eq!(stat_cpu_seconds("garbage", true), 0.0);
    }

    #[test]
    fn memory_lines_are_read_in_mib() {
        let status = "Name:\tspine-processor\nVmPeak:\t 300000 kB\nVmHWM:\t  157696 kB\nVmRSS:\t   102400 kB\n";
        assert_eq!(status_mib(status, "VmHWM"), Some(154.0));
        assert_eq!(status_mib(status, "VmRSS"), Some(100.0));
        assert_eq!(status_mib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_a_peak_rss_and_a_gone_one_has_none() {
        assert!(peak_rss_mib(std::process::id()).is_some_and(|m| m > 0.0));
        assert_eq!(peak_rss_mib(u32::MAX), None);
    }
}
