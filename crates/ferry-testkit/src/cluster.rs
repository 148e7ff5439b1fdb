//! [`TempCluster`]: one running test server, its accessors and its lifecycle.
//!
//! The state sits behind an `Arc` so the `*_async` methods can run the blocking work on
//! tokio's blocking pool: a test on a current-thread runtime must not block the thread that
//! also drives the replication client, or a fast shutdown would wait for a walsender whose
//! client cannot run. The server is stopped and the directory removed when the last
//! reference goes away, which is when the `TempCluster` is dropped (also on panic).
//!
//! Drop uses an immediate shutdown (SIGQUIT) rather than a fast one: the data is about to be
//! deleted, and a fast shutdown waits for walsenders to be acknowledged by their clients.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::sys::signal::Signal;

use crate::builder::{Auth, TempClusterBuilder};
use crate::error::TestkitError;
use crate::server::{shutdown, ServerSpec};

/// A throwaway PostgreSQL 15 server, stopped and deleted on drop.
#[derive(Debug)]
pub struct TempCluster {
    state: Arc<ClusterState>,
}

/// What a cluster owns; dropping it stops the server and removes the directory.
#[derive(Debug)]
pub(crate) struct ClusterState {
    pub(crate) spec: ServerSpec,
    port: u16,
    postmaster: Mutex<Option<Child>>,
    auth: Auth,
    admin_password: Option<String>,
    ca_cert: Option<PathBuf>,
    other_ca_cert: Option<PathBuf>,
}

impl ClusterState {
    pub(crate) fn new(
        spec: ServerSpec,
        port: u16,
        postmaster: Child,
        auth: Auth,
        admin_password: Option<String>,
        ca_cert: Option<PathBuf>,
        other_ca_cert: Option<PathBuf>,
    ) -> Self {
        Self {
            spec,
            port,
            postmaster: Mutex::new(Some(postmaster)),
            auth,
            admin_password,
            ca_cert,
            other_ca_cert,
        }
    }

    fn postmaster(&self) -> MutexGuard<'_, Option<Child>> {
        self.postmaster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self, signal: Signal) -> Result<(), TestkitError> {
        let mut postmaster = self.postmaster();
        if let Some(child) = postmaster.as_mut() {
            shutdown(child, signal)?;
        }
        *postmaster = None;
        Ok(())
    }

    fn start(&self) -> Result<(), TestkitError> {
        let mut postmaster = self.postmaster();
        if let Some(child) = postmaster.as_mut() {
            let exited = child
                .try_wait()
                .map_err(TestkitError::io("wait for postgres"))?;
            if exited.is_none() {
                return Ok(());
            }
        }
        *postmaster = Some(self.spec.launch(self.port)?);
        Ok(())
    }
}

impl Drop for ClusterState {
    fn drop(&mut self) {
        if let Err(err) = self.stop(Signal::SIGQUIT) {
            tracing::warn!(error = %err, "could not stop test cluster");
        }
        if std::env::var_os("FERRY_TESTKIT_KEEP").is_some_and(|keep| keep != "0") {
            eprintln!(
                "ferry-testkit: keeping cluster directory {}",
                self.spec.root.display()
            );
            return;
        }
        if let Err(err) = std::fs::remove_dir_all(&self.spec.root) {
            tracing::warn!(error = %err, dir = %self.spec.root.display(), "could not remove test cluster directory");
        }
    }
}

impl TempCluster {
    /// Options for a new cluster.
    pub fn builder() -> TempClusterBuilder {
        TempClusterBuilder::default()
    }

    /// A cluster with the default options: trust auth, no TLS, `wal_level = logical`.
    pub fn new() -> Result<Self, TestkitError> {
        Self::builder().start()
    }

    pub(crate) fn from_state(state: ClusterState) -> Self {
        Self {
            state: Arc::new(state),
        }
    }

    pub(crate) fn spec(&self) -> &ServerSpec {
        &self.state.spec
    }

    /// The TCP port on 127.0.0.1; the same across restarts.
    pub fn port(&self) -> u16 {
        self.state.port
    }

    /// The TCP host, `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.state.spec.root
    }

    /// The data directory (PGDATA); `server.log` is in it.
    pub fn data_dir(&self) -> &Path {
        &self.state.spec.data_dir
    }

    /// The TCP authentication method the cluster was built with.
    pub fn auth(&self) -> Auth {
        self.state.auth
    }

    /// `postgres://user[:password]@127.0.0.1:PORT/dbname`, every part percent-encoded.
    pub fn url(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let password = password
            .map(|password| format!(":{}", percent_encode(password)))
            .unwrap_or_default();
        format!(
            "postgres://{}{password}@{}:{}/{}",
            percent_encode(user),
            self.host(),
            self.port(),
            percent_encode(dbname)
        )
    }

    /// The superuser `postgres` over TCP to database `postgres` with `sslmode=disable`,
    /// including [`TempCluster::admin_password`] when the auth method needs one.
    pub fn admin_url(&self) -> String {
        format!(
            "{}?sslmode=disable",
            self.url("postgres", self.admin_password(), "postgres")
        )
    }

    /// The password of `postgres`: `None` with `Auth::Trust`, a fixed one otherwise.
    pub fn admin_password(&self) -> Option<&str> {
        self.state.admin_password.as_deref()
    }

    /// The CA certificate that signed the server certificate (PEM, world-readable); `None`
    /// unless the cluster was built with `tls(true)`.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.state.ca_cert.as_deref()
    }

    /// A CA certificate unrelated to the server's, for checking that verification fails;
    /// `None` unless the cluster was built with `tls(true)`.
    pub fn other_ca_cert_path(&self) -> Option<&Path> {
        self.state.other_ca_cert.as_deref()
    }

    /// Everything the server has written to stderr so far, across restarts.
    pub fn server_log(&self) -> String {
        self.state.spec.log()
    }

    /// Whether the server process is running (it may have been stopped or have crashed).
    pub fn is_running(&self) -> bool {
        self.state
            .postmaster()
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Fast shutdown (SIGINT), SIGKILL after 10 s. A no-op if already stopped.
    ///
    /// Blocks; in async tests prefer [`TempCluster::stop_async`].
    pub fn stop(&self) -> Result<(), TestkitError> {
        self.state.stop(Signal::SIGINT)
    }

    /// Immediate shutdown (SIGQUIT), like a crash: the next start runs crash recovery.
    ///
    /// Clusters run with `synchronous_commit = off`, so transactions committed in the last
    /// few hundred milliseconds may be lost, as after a real crash with that setting. Commit
    /// with `SET synchronous_commit = on` (or build with that setting) when the test needs
    /// them to survive.
    pub fn stop_immediate(&self) -> Result<(), TestkitError> {
        self.state.stop(Signal::SIGQUIT)
    }

    /// Starts the stopped server on the same port and data directory. A no-op if running.
    pub fn start(&self) -> Result<(), TestkitError> {
        self.state.start()
    }

    /// [`TempCluster::stop`] then [`TempCluster::start`].
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.stop()?;
        self.start()
    }

    /// [`TempCluster::stop`] on tokio's blocking pool.
    pub async fn stop_async(&self) -> Result<(), TestkitError> {
        self.blocking(|state| state.stop(Signal::SIGINT)).await
    }

    /// [`TempCluster::start`] on tokio's blocking pool.
    pub async fn start_async(&self) -> Result<(), TestkitError> {
        self.blocking(ClusterState::start).await
    }

    /// [`TempCluster::restart`] on tokio's blocking pool.
    pub async fn restart_async(&self) -> Result<(), TestkitError> {
        self.blocking(|state| {
            state.stop(Signal::SIGINT)?;
            state.start()
        })
        .await
    }

    async fn blocking(
        &self,
        work: impl FnOnce(&ClusterState) -> Result<(), TestkitError> + Send + 'static,
    ) -> Result<(), TestkitError> {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || work(&state))
            .await
            .map_err(TestkitError::Join)?
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encode_keeps_unreserved_only() {
        assert_eq!(percent_encode("a-b_c.d~9"), "a-b_c.d~9");
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }
}
