//! Running the `weir` binary as a user would: its path, the arguments every test
//! passes, starting, signalling and killing it, its memory use, and waiting for
//! lines in its log.

use crate::broker::{brokers, unique};
use crate::plugins::{example_plugin, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of the `weir` binary: next to the running test executable's `deps`
/// directory (`target/<profile>/weir`), where cargo builds it before it runs
/// the integration tests.
pub fn weir_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/<profile>/deps")
        .join(format!("weir{}", std::env::consts::EXE_SUFFIX))
}

/// A running `weir` process; killed if dropped while still running.
pub struct Weir {
    child: Child,
    log: PathBuf,
}

/// Arguments every test run passes: the broker, a short session timeout (the
/// local broker takes session.timeout/2 to complete a join) and a test cache dir.
pub fn weir_base_args(group: &str) -> Vec<String> {
    vec![
        "run".into(),
        "--brokers".into(),
        brokers(),
        "--group".into(),
        group.into(),
        "-X".into(),
        "session.timeout.ms=6000".into(),
        "--drain-timeout".into(),
        "5s".into(),
        // Tests run several processes at once: any free port.
        "--admin-addr".into(),
        "127.0.0.1:0".into(),
        "--control-addr".into(),
        "127.0.0.1:0".into(),
        "--cache-dir".into(),
        workspace_root()
            .join("target")
            .join("test-cache")
            .display()
            .to_string(),
    ]
}

impl Weir {
    /// Start `weir` with `args`, logging to a file under target/.
    pub fn start(args: &[String]) -> Self {
        let log_dir = workspace_root().join("target").join("test-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = log_dir.join(format!("{}.log", unique("weir")));
        let child = Command::new(weir_bin())
            .args(args)
            .env(
                "WEIR_LOG",
                std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "info,weir=debug".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting weir");
        Self { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the process with SIGKILL, as a crash would, and reap it.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Resident memory of the process in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        self.proc_status_kib("VmRSS:")
    }

    /// Peak resident memory of the process so far in KiB (the kernel's high-water mark).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The read-only admin endpoint's address, from the log line that
    /// announces it (text or JSON logs).
    pub fn admin_addr(&self) -> String {
        self.endpoint_addr("admin")
    }

    /// The control endpoint's address (reload, rollback), likewise.
    pub fn control_addr(&self) -> String {
        self.endpoint_addr("control")
    }

    fn endpoint_addr(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let announced = format!("{what} endpoint listening");
        loop {
            let log = self.log_text();
            let found = log
                .lines()
                .filter(|l| l.contains(&announced))
                .find_map(|l| {
                    let (_, rest) = l
                        .split_once("addr=")
                        .or_else(|| l.split_once("\"addr\":\""))?;
                    rest.split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .map(str::to_string)
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} endpoint in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait (up to `timeout`) until the log contains `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "`{text}` not logged within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Send SIGTERM and wait (up to `timeout`) for the exit status.
    pub fn terminate(self, timeout: Duration) -> ExitStatus {
        self.terminate_with_log(timeout).0
    }

    /// Send SIGTERM, as a shutdown would, without waiting.
    pub fn signal_term(&self) {
        self.signal("TERM");
    }

    /// Send the signal named `name` (e.g. `HUP`).
    pub fn signal(&self, name: &str) {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Send SIGTERM, wait for the exit status, and return it with the whole log.
    pub fn terminate_with_log(mut self, timeout: Duration) -> (ExitStatus, String) {
        self.signal_term();
        let status = self.wait(timeout);
        (status, self.log_text())
    }

    /// Wait (up to `timeout`) for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weir did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `weir` with `args` to completion (it must exit by itself within
/// `timeout`) and return its exit status and log.
pub fn run_to_exit(args: &[String], timeout: Duration) -> (ExitStatus, String) {
    let mut weir = Weir::start(args);
    let status = weir.wait(timeout);
    (status, weir.log_text())
}

/// `weir run` arguments: the base ones, `input` → `output` through `plugin`, then `extra`.
pub fn pipeline_args(
    group: &str,
    input: &str,
    output: &str,
    plugin: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args = weir_base_args(group);
    args.extend(["--topic", input, "--output-topic", output].map(String::from));
    args.extend(["--plugin".to_string(), plugin.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `weir run` arguments for the `slow` plugin with `delay_us` per record on 2 instances.
pub fn slow_args(
    group: &str,
    input: &str,
    output: &str,
    delay_us: u32,
    extra: &[&str],
) -> Vec<String> {
    let delay = format!("delay_us={delay_us}");
    let mut all = vec![
        "--instances",
        "2",
        // noida-db answers fetches without honouring size limits.
        "-X",
        "receive.message.max.bytes=1000000000",
        "--plugin-config",
        &delay,
    ];
    all.extend_from_slice(extra);
    pipeline_args(group, input, output, &example_plugin("slow"), &all)
}
