//! The services under test, as separate processes, so each one's CPU time and
//! peak memory can be read from `/proc`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// A free port on 127.0.0.1 for a service to listen on, found by binding and
/// releasing it, and taken below the kernel's ephemeral range: a port of that
/// range, released, can be given to any outgoing connection (the services' own
/// to PostgreSQL among them) before the service binds it, and a PostgreSQL
/// latency run failed so ("binding the gRPC address"). Below the range only
/// another listener can take it, and the bench runs alone. Where the range
/// leaves no room below it, the kernel picks (port 0).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| listener_ports(&text));
    if let Some(ports) = range {
        let span = u32::from(ports.end - ports.start);
        // Each bench process starts elsewhere in the range.
        let offset = std::process::id() % span;
        for _ in 0..span {
            let n = (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
            let port = ports.start + u16::try_from(n)?;
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                return Ok(listener.local_addr()?);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The lowest port [`free_addr`] hands out: above the well-known and most
/// registered servers' ports.
const FIRST_LISTENER_PORT: u16 = 10_000;

/// The ports [`free_addr`] tries, given the text of
/// `/proc/sys/net/ipv4/ip_local_port_range` ("low<TAB>high"): from
/// [`FIRST_LISTENER_PORT`] up to the ephemeral range; `None` when the text does
/// not parse or the range starts below that.
fn listener_ports(range: &str) -> Option<std::ops::Range<u16>> {
    let low: u16 = range.split_whitespace().next()?.parse().ok()?;
    (low > FIRST_LISTENER_PORT).then_some(FIRST_LISTENER_PORT..low)
}

/// A running service process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    pid: u32,
}

/// CPU time and memory of a process, read from `/proc`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Usage {
    /// User plus system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Peak resident memory (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Current resident memory (VmRSS), MiB.
    pub rss_mib: f64,
}

impl Process {
    /// Starts `bin` with `args` (file-descriptor limit raised for many
    /// connections), logging to `log`, and waits until `health` answers 200.
    pub async fn spawn(
        name: &str,
        bin: &Path,
        args: &[String],
        log: &Path,
        health: Option<String>,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let mut shell = format!(
            "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec '{}'",
            bin.display()
        );
        for arg in args {
            shell.push_str(&format!(" '{arg}'"));
        }
        let child = Command::new("sh")
            .arg("-c")
            .arg(shell)
            // `BENCH_RUST_LOG` (e.g. `info`) overrides the services' log
            // filter for a diagnosis; their logs are in the run's `work/`.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("child pid")?;
        let mut process = Self {
            name: name.to_owned(),
            child,
            pid,
        };
        if let Some(url) = health {
            process.wait_healthy(&url).await?;
        }
        Ok(process)
    }

    async fn wait_healthy(&mut self, url: &str) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before it was healthy ({status})", self.name);
            }
            if client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} was not healthy within 60 s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU and memory so far.
    pub fn usage(&self) -> Usage {
        read_usage(self.pid).unwrap_or_default()
    }

    /// Stops the process (SIGTERM, then waits; SIGKILL after 10 s).
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The machine's CPU time so far, from `/proc/stat`: (busy, total) seconds
/// over all cores. Two readings give how busy the machine was in between.
pub fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = ticks.iter().sum();
    // idle and iowait are the fourth and fifth fields.
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    let hz = clock_ticks();
    ((total - idle) / hz, total / hz)
}

/// CPU seconds so far of every process whose command is `name` (e.g. the
/// PostgreSQL server's backends).
pub fn cpu_of_command(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .filter_map(read_usage)
        .map(|u| u.cpu_seconds)
        .sum()
}

fn read_usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some(Usage {
        cpu_seconds: ticks / clock_ticks(),
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
    })
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Waits until something accepts connections on `addr` (60 s at most).
pub async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_ports_stop_below_the_ephemeral_range() {
        for (text, ports) in [
            ("32768\t60999\n", Some(10_000..32_768)),
            ("49152 65535", Some(10_000..49_152)),
            ("1024\t65535\n", None),
            ("10000\t65535\n", None),
            ("", None),
            ("many", None),
        ] {
            assert_eq!(listener_ports(text), ports, "{text:?}");
        }
    }

    #[test]
    fn free_addresses_are_outside_the_ephemeral_range() -> anyhow::Result<()> {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")?;
        let Some(ports) = listener_ports(&text) else {
            return Ok(());
        };
        for _ in 0..3 {
            let addr = free_addr()?;
            assert!(ports.contains(&addr.port()), "{addr} outside {ports:?}");
            // Free: it can be bound.
            drop(TcpListener::bind(addr)?);
        }
        Ok(())
    }
}
