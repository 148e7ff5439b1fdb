//! The `ferry sync` process under test: the real binary, started with the case's config,
//! its output copied to a log file per run and watched for the lines that mark the copy's
//! phases (so a SIGKILL can land in the copy or at the handoff), killed with SIGKILL or
//! stopped with SIGTERM by its own process id.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A moment of the copy that a run's output announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `copy planned`: the slot and snapshot exist, the copy begins.
    CopyPlanned,
    /// `table copied`: at least one table is done.
    TableCopied,
    /// `copy done`: the indexes are being built, the handoff to streaming is next.
    CopyDone,
    /// The run is streaming from the slot (the copy is over, or was done before).
    Streaming,
}

impl Marker {
    fn text(self) -> &'static str {
        match self {
            Marker::CopyPlanned => "copy planned",
            Marker::TableCopied => "table copied",
            Marker::CopyDone => "copy done",
            Marker::Streaming => "streaming slot=",
        }
    }
}

#[derive(Default)]
struct Seen {
    copy_planned: AtomicBool,
    table_copied: AtomicBool,
    copy_done: AtomicBool,
    streaming: AtomicBool,
    tail: Mutex<Vec<String>>,
}

impl Seen {
    fn flag(&self, marker: Marker) -> &AtomicBool {
        match marker {
            Marker::CopyPlanned => &self.copy_planned,
            Marker::TableCopied => &self.table_copied,
            Marker::CopyDone => &self.copy_done,
            Marker::Streaming => &self.streaming,
        }
    }
}

/// One run of `ferry sync`.
pub struct FerryRun {
    child: Child,
    seen: Arc<Seen>,
    pub log_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl FerryRun {
    /// Starts `bin sync -c config`, its output to `log_path`.
    pub fn start(bin: &Path, config: &Path, log_path: PathBuf) -> std::io::Result<FerryRun> {
        let mut child = Command::new(bin)
            .args(["sync", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let seen = Arc::new(Seen::default());
        let file = Arc::new(Mutex::new(File::create(&log_path)?));
        let readers: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for reader in readers {
            let (seen, file) = (Arc::clone(&seen), Arc::clone(&file));
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    for marker in [
                        Marker::CopyPlanned,
                        Marker::TableCopied,
                        Marker::CopyDone,
                        Marker::Streaming,
                    ] {
                        if line.contains(marker.text()) {
                            seen.flag(marker).store(true, Ordering::Relaxed);
                        }
                    }
                    let _ = writeln!(file.lock().unwrap_or_else(|e| e.into_inner()), "{line}");
                    let mut tail = seen.tail.lock().unwrap_or_else(|e| e.into_inner());
                    tail.push(line);
                    if tail.len() > 40 {
                        tail.remove(0);
                    }
                }
            });
        }
        Ok(FerryRun {
            child,
            seen,
            log_path,
            exited: None,
        })
    }

    /// Whether the run's output has announced `marker`.
    pub fn seen(&self, marker: Marker) -> bool {
        self.seen.flag(marker).load(Ordering::Relaxed)
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// The last lines of output.
    pub fn tail(&self) -> String {
        self.seen
            .tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    fn signal(&self, signal: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(&mut self) {
        if self.exited().is_none() {
            self.signal(Signal::SIGKILL);
        }
        while self.exited().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit; `None` if it did not exit (it is
    /// then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                // Let the readers write the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill().await;
        None
    }
}

impl Drop for FerryRun {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}
