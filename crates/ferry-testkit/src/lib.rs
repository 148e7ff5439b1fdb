//! Real, throwaway PostgreSQL 15 clusters for Ferry's tests.
//!
//! Every test starts its own [`TempCluster`]: a private data directory copied from a cached
//! `initdb` template, a random port on 127.0.0.1, `wal_level = logical`, and a server process
//! that is stopped and deleted when the cluster is dropped (also when the test panics, and,
//! through `PR_SET_PDEATHSIG`, when the test process is killed). Nothing is shared between
//! clusters except the read-only template, so tests can run in parallel threads or, under
//! cargo-nextest, in parallel processes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_testkit::TestkitError> {
//! use ferry_testkit::{Auth, RoleSpec, TempCluster};
//! let source = TempCluster::builder()
//!     .auth(Auth::ScramSha256)
//!     .role(RoleSpec::new("ferry").password("secret").replication())
//!     .start()?;
//! let client = source.admin_client().await;
//! client.batch_execute("create table t (id int primary key)").await.unwrap();
//! let url = source.url("ferry", Some("secret"), "postgres");
//! # let _ = url; Ok(()) }
//! ```
//!
//! When the tests run as root, `initdb` and `postgres` (which refuse root) run as the
//! `postgres` OS user; otherwise as the current user. Binaries come from
//! `/usr/lib/postgresql/15/bin` unless `FERRY_PG_BIN` names another directory. Set
//! `FERRY_TESTKIT_KEEP=1` to keep cluster directories after the test for inspection.

mod admin;
mod builder;
mod cluster;
mod error;
mod hba;
mod process;
mod role;
mod scratch;
mod server;
mod template;
mod tls;
pub mod torture;

pub use builder::{Auth, TempClusterBuilder};
pub use cluster::TempCluster;
pub use error::TestkitError;
pub use role::RoleSpec;
pub use template::pg_bin_dir;
pub use tls::write_unrelated_ca;
