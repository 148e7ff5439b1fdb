//! Superuser access to a test cluster, for setting up and inspecting what a test needs.
//!
//! Everything here goes over the unix socket as `postgres`, which pg_hba.conf always trusts,
//! so it works whatever authentication, TLS or hba rules the test configured for TCP. `psql`
//! runs as the test's own OS user: root may connect to the socket of a postgres-owned server.

use std::io::Write;
use std::process::{Command, Stdio};

use ferry_core::quote_ident;
use tokio_postgres::{Client, NoTls};

use crate::cluster::TempCluster;
use crate::error::TestkitError;
use crate::template::program;

impl TempCluster {
    /// A superuser client of database `postgres` over the unix socket; its connection task
    /// runs on the current tokio runtime. Panics if it cannot connect (a test helper).
    pub async fn admin_client(&self) -> Client {
        self.admin_client_db("postgres").await
    }

    /// Like [`TempCluster::admin_client`], to database `dbname`.
    pub async fn admin_client_db(&self, dbname: &str) -> Client {
        match self.try_admin_client_db(dbname).await {
            Ok(client) => client,
            Err(err) => panic!("{}", error_chain(&err)),
        }
    }

    /// A superuser client of `dbname` over the unix socket, or why it could not connect.
    pub async fn try_admin_client_db(&self, dbname: &str) -> Result<Client, TestkitError> {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(self.socket_dir())
            .port(self.port())
            .user("postgres")
            .dbname(dbname)
            .application_name("ferry-testkit")
            .connect(NoTls)
            .await
            .map_err(|source| TestkitError::Connect {
                socket_dir: self.socket_dir().to_path_buf(),
                port: self.port(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "test cluster admin connection ended");
            }
        });
        Ok(client)
    }

    /// Runs `sql` with psql as `postgres` in database `postgres`; returns stdout, unaligned
    /// and without headers (`-A -t`), one row per line. Stops at the first error.
    pub fn psql(&self, sql: &str) -> Result<String, TestkitError> {
        self.psql_db("postgres", sql)
    }

    /// Like [`TempCluster::psql`], in database `dbname`.
    pub fn psql_db(&self, dbname: &str, sql: &str) -> Result<String, TestkitError> {
        let conninfo = format!(
            "host='{}' port={} user=postgres dbname='{}'",
            conninfo_escape(&self.socket_dir().to_string_lossy()),
            self.port(),
            conninfo_escape(dbname)
        );
        self.psql_with(&conninfo, sql)
    }

    /// Runs `sql` with psql (libpq, OpenSSL) connected by `conninfo`, a libpq connection
    /// string or URL: e.g. to check that `sslmode=verify-full` accepts or rejects a CA.
    pub fn psql_with(&self, conninfo: &str, sql: &str) -> Result<String, TestkitError> {
        let psql = program(&self.spec().bin_dir, "psql")?;
        let mut child = Command::new(&psql)
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
                "-d",
            ])
            .arg(conninfo)
            .env_remove("PGPASSWORD")
            .env_remove("PGSSLMODE")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(TestkitError::io(format!("run {}", psql.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            // psql may exit early (bad conninfo); its stderr then says why.
            let _ = stdin.write_all(sql.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(TestkitError::io(format!("run {}", psql.display())))?;
        if !output.status.success() {
            return Err(TestkitError::CommandFailed {
                program: "psql".to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `CREATE DATABASE name` (quoted), as `postgres`.
    pub fn create_database(&self, name: &str) -> Result<(), TestkitError> {
        self.psql(&format!("CREATE DATABASE {};", quote_ident(name)))
            .map(drop)
    }
}

/// A conninfo value inside single quotes: backslash and quote are escaped with a backslash.
fn conninfo_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The error and its sources, for a panic message.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
