//! The postmaster process of one cluster: launch, readiness, shutdown.
//!
//! A launch is ready when `postmaster.pid` (written by the server itself) names our child and
//! says `ready`, and a TCP connect to the port succeeds; only then can a test connect without
//! "the database system is starting up". If the child exits first we look at what it logged
//! since this launch: "Address already in use" means another process took the port between
//! our probe and the server's bind, which the caller can retry with a new port.
//!
//! Shutdown signals the postmaster (SIGINT = fast, SIGQUIT = immediate) and waits. A fast
//! shutdown can take a while (a logical walsender decodes all remaining WAL first), so it
//! falls back to an immediate shutdown, then to SIGKILL of the postmaster and of each of its
//! children. Backends are not in the postmaster's process group (each calls `setsid`), so
//! they are found by parent pid, and a stop returns only when they are gone: a start after
//! it never finds their shared memory still attached.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::TestkitError;
use crate::process::{spawn_server, ServerUser};
use crate::template::program;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shutdown may take before it is escalated (fast to immediate, immediate to
/// SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
/// Lines of server log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// Everything needed to run the server of one cluster.
#[derive(Clone, Debug)]
pub(crate) struct ServerSpec {
    pub(crate) bin_dir: PathBuf,
    /// The cluster directory: holds `data/`, the unix socket and the CA certificates.
    pub(crate) root: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) user: ServerUser,
}

impl ServerSpec {
    /// The server's stderr, appended to across restarts.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// The whole server log (empty if it cannot be read).
    pub(crate) fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the server log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Starts the server on `port` and waits until it accepts connections.
    ///
    /// On failure the child is gone (killed if it was still running).
    pub(crate) fn launch(&self, port: u16) -> Result<Child, TestkitError> {
        let postgres = program(&self.bin_dir, "postgres")?;
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(TestkitError::io(format!("open {}", log_path.display())))?;
        let log_start = log
            .metadata()
            .map_err(TestkitError::io(format!("stat {}", log_path.display())))?
            .len();
        let stderr = log.try_clone().map_err(TestkitError::io(format!(
            "duplicate {}",
            log_path.display()
        )))?;
        let mut cmd = self.user.command(&postgres, &self.root);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(port.to_string())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let mut child =
            spawn_server(cmd).map_err(TestkitError::io(format!("start {}", postgres.display())))?;
        match self.wait_ready(&mut child, port, log_start) {
            Ok(()) => Ok(child),
            Err(err) => {
                let _ = shutdown(&mut child, Signal::SIGKILL);
                Err(err)
            }
        }
    }

    fn wait_ready(&self, child: &mut Child, port: u16, log_start: u64) -> Result<(), TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(TestkitError::io("wait for postgres"))?
            {
                let log_tail = self.log_tail();
                if self.log_since(log_start).contains("Address already in use") {
                    return Err(TestkitError::PortTaken { port, log_tail });
                }
                return Err(TestkitError::StartExited { status, log_tail });
            }
            if self.pid_file_says_ready(child.id())
                && TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::StartTimeout {
                    port,
                    timeout_secs: START_TIMEOUT.as_secs(),
                    log_tail: self.log_tail(),
                });
            }
            thread::sleep(POLL);
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.log_path()) {
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = file.read_to_string(&mut text);
            }
        }
        text
    }

    /// Line 1 of postmaster.pid is the pid, line 8 the status (`starting`, `ready`, …).
    fn pid_file_says_ready(&self, pid: u32) -> bool {
        let Ok(text) = fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().collect();
        lines.first().map(|line| line.trim()) == Some(pid.to_string().as_str())
            && lines.get(7).map(|line| line.trim()) == Some("ready")
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the server may still lose a race for it).
pub(crate) fn free_port() -> Result<u16, TestkitError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(TestkitError::io("find a free port on 127.0.0.1"))
}

/// Stops the postmaster with `signal`, escalating to an immediate shutdown and then to
/// SIGKILL of the postmaster and its children; returns once all of them are gone.
pub(crate) fn shutdown(child: &mut Child, signal: Signal) -> Result<(), TestkitError> {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
    let exited = |child: &mut Child| {
        child
            .try_wait()
            .map(|status| status.is_some())
            .map_err(TestkitError::io("wait for postgres"))
    };
    if exited(child)? {
        return Ok(());
    }
    // Collected while the postmaster lives: once it is gone they are reparented.
    let mut children = children_of(pid);
    let _ = kill(pid, signal);
    let mut current = signal;
    let mut deadline = Instant::now() + STOP_TIMEOUT;
    while !exited(child)? {
        children.extend(children_of(pid));
        if current == Signal::SIGKILL || Instant::now() > deadline {
            let next = if current == Signal::SIGINT {
                Signal::SIGQUIT
            } else {
                Signal::SIGKILL
            };
            if current != Signal::SIGKILL {
                tracing::warn!(%pid, ?current, ?next, "postgres did not stop in time, escalating");
            }
            current = next;
            deadline = Instant::now() + STOP_TIMEOUT;
            if next == Signal::SIGKILL {
                let _ = kill(pid, Signal::SIGKILL);
                for c in &children {
                    let _ = kill(*c, Signal::SIGKILL);
                }
                child
                    .wait()
                    .map_err(TestkitError::io("wait for postgres"))?;
                break;
            }
            let _ = kill(pid, next);
        }
        thread::sleep(POLL);
    }
    // After a SIGKILL (or an immediate shutdown whose postmaster did not wait) backends may
    // outlive the postmaster; a new one would find their shared memory still attached.
    let deadline = Instant::now() + Duration::from_secs(10);
    children.sort_unstable();
    children.dedup();
    children.retain(|c| alive_postgres(*c));
    while !children.is_empty() && Instant::now() < deadline {
        for c in &children {
            let _ = kill(*c, Signal::SIGKILL);
        }
        thread::sleep(POLL);
        children.retain(|c| alive_postgres(*c));
    }
    Ok(())
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|p| parent_of(*p) == Some(parent))
        .collect()
}

/// The parent pid of `pid`, from `/proc/<pid>/stat` (the field after the `)` of the name).
fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let ppid = rest.split_whitespace().nth(1)?.parse::<i32>().ok()?;
    Some(Pid::from_raw(ppid))
}

/// Whether `pid` is still a live postgres process (not a zombie). Its pid could only have
/// been reused within the few seconds this is asked, and then by another postgres.
fn alive_postgres(pid: Pid) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let state = stat[close + 1..].split_whitespace().next().unwrap_or("");
    state != "Z" && stat[..close].ends_with("(postgres")
}
