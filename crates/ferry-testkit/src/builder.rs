//! Configuring and starting a [`TempCluster`].
//!
//! Start-up order: copy the template into a fresh cluster directory and hand it to the server
//! user, write pg_hba.conf, certificates and the per-cluster settings, start the server on a
//! random free port (a new port if another process won the race for it), then run the setup
//! SQL (the superuser password and the requested roles) over the unix socket. Any failure
//! removes what was built, so a failed start leaves nothing behind.
//!
//! With a password method (`Auth::ScramSha256`, `Auth::Md5`) the superuser `postgres` gets
//! the password [`ADMIN_PASSWORD`], which [`TempCluster::admin_url`] includes: the TCP rules
//! are the same for every user, so tests of authentication test what production sees.

use std::fs;
use std::path::PathBuf;

use ferry_core::quote_literal;

use crate::cluster::{ClusterState, TempCluster};
use crate::error::TestkitError;
use crate::hba::{self, TcpHba};
use crate::process::{set_mode, ServerUser};
use crate::role::RoleSpec;
use crate::scratch;
use crate::server::{free_port, ServerSpec};
use crate::template;
use crate::tls;

/// Password of the superuser `postgres` when the TCP method needs one.
pub(crate) const ADMIN_PASSWORD: &str = "ferry-testkit-admin";

/// How many ports to try when other processes keep taking the one we picked.
const PORT_ATTEMPTS: usize = 5;

/// How TCP connections from 127.0.0.1 and ::1 authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// No password (`trust`).
    #[default]
    Trust,
    /// `scram-sha-256`, with SCRAM-hashed passwords.
    ScramSha256,
    /// `md5`, with `password_encryption = md5` so passwords really are MD5 hashes (with a
    /// SCRAM-hashed password PostgreSQL 15 silently upgrades `md5` to SCRAM).
    Md5,
}

impl Auth {
    /// The pg_hba.conf method name.
    pub(crate) fn hba_method(self) -> &'static str {
        match self {
            Auth::Trust => "trust",
            Auth::ScramSha256 => "scram-sha-256",
            Auth::Md5 => "md5",
        }
    }
}

/// Options for a [`TempCluster`]; [`TempClusterBuilder::start`] starts it.
#[derive(Clone, Debug, Default)]
pub struct TempClusterBuilder {
    settings: Vec<(String, String)>,
    auth: Auth,
    tls: bool,
    roles: Vec<RoleSpec>,
    replication_hba: Option<bool>,
    hba_lines: Option<Vec<String>>,
}

impl TempClusterBuilder {
    /// Adds `name = 'value'` to postgresql.conf, after (so overriding) the template's
    /// settings, e.g. `setting("wal_level", "replica")`.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// The authentication method of the TCP pg_hba.conf lines (default `Trust`).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Serve TLS with a certificate for `localhost` and `127.0.0.1` signed by a test CA
    /// (see [`TempCluster::ca_cert_path`]).
    pub fn tls(mut self, enabled: bool) -> Self {
        self.tls = enabled;
        self
    }

    /// Creates this role once the server is up.
    pub fn role(mut self, role: RoleSpec) -> Self {
        self.roles.push(role);
        self
    }

    /// Leaves out the TCP `host replication` lines. This only refuses *physical*
    /// replication: logical walsenders (`replication=database`) match the `all` lines.
    pub fn no_replication_hba(mut self) -> Self {
        self.replication_hba = Some(false);
        self
    }

    /// Replaces every TCP line of pg_hba.conf with `lines` (the trusted `local` lines stay),
    /// e.g. `vec!["host all ferry 127.0.0.1/32 reject".into(), "host all all 127.0.0.1/32 trust".into()]`.
    pub fn hba_lines(mut self, lines: Vec<String>) -> Self {
        self.hba_lines = Some(lines);
        self
    }

    /// Builds and starts the cluster; blocks until it accepts connections (well under a
    /// second with a cached template).
    pub fn start(self) -> Result<TempCluster, TestkitError> {
        let bin_dir = template::pg_bin_dir();
        let user = ServerUser::resolve()?;
        let template = template::ensure(&bin_dir, &user)?;
        let root = scratch::unique_dir(scratch::CLUSTER_PREFIX)?;
        let guard = RemoveOnDrop(Some(root.clone()));
        let data_dir = root.join("data");
        let spec = ServerSpec {
            bin_dir,
            root: root.clone(),
            data_dir: data_dir.clone(),
            user: user.clone(),
        };

        user.chown(&root)?;
        scratch::copy_tree(&template, &data_dir)?;
        user.chown_tree(&data_dir)?;
        set_mode(&data_dir, 0o700)?;
        let hba_path = data_dir.join("pg_hba.conf");
        fs::write(&hba_path, hba::render(&self.tcp_hba()))
            .map_err(TestkitError::io(format!("write {}", hba_path.display())))?;
        let certs = if self.tls {
            Some(tls::write_cluster_certs(&data_dir, &root, &user)?)
        } else {
            None
        };
        template::append(&data_dir.join("postgresql.conf"), &self.cluster_conf(&spec))?;

        let mut attempt = 1;
        let (port, child) = loop {
            let port = free_port()?;
            match spec.launch(port) {
                Ok(child) => break (port, child),
                Err(TestkitError::PortTaken { .. }) if attempt < PORT_ATTEMPTS => {
                    tracing::debug!(port, "port taken before postgres could bind it, retrying");
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        };
        let mut guard = guard;
        guard.0 = None;
        let (ca_cert, other_ca_cert) = certs
            .map(|certs| (Some(certs.ca_cert), Some(certs.other_ca_cert)))
            .unwrap_or_default();
        let admin_password = (self.auth != Auth::Trust).then(|| ADMIN_PASSWORD.to_owned());
        // From here on, dropping the cluster stops the server and removes the directory.
        let cluster = TempCluster::from_state(ClusterState::new(
            spec,
            port,
            child,
            self.auth,
            admin_password,
            ca_cert,
            other_ca_cert,
        ));
        let setup = self.setup_sql();
        if !setup.is_empty() {
            cluster.psql(&setup)?;
        }
        Ok(cluster)
    }

    fn tcp_hba(&self) -> TcpHba {
        match &self.hba_lines {
            Some(lines) => TcpHba::Custom(lines.clone()),
            None => TcpHba::Method {
                auth: self.auth,
                replication: self.replication_hba.unwrap_or(true),
            },
        }
    }

    /// Per-cluster settings; values are always quoted, which every GUC type accepts.
    fn cluster_conf(&self, spec: &ServerSpec) -> String {
        let mut conf = String::from("\n# ferry-testkit cluster settings\n");
        let mut set = |name: &str, value: &str| {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        };
        set("unix_socket_directories", &spec.root.to_string_lossy());
        if self.auth == Auth::Md5 {
            set("password_encryption", "md5");
        }
        if self.tls {
            set("ssl", "on");
            set("ssl_cert_file", "server.crt");
            set("ssl_key_file", "server.key");
        }
        for (name, value) in &self.settings {
            set(name, value);
        }
        conf
    }

    fn setup_sql(&self) -> String {
        let mut sql = String::new();
        if self.auth != Auth::Trust {
            sql.push_str(&format!(
                "ALTER ROLE postgres PASSWORD {};\n",
                quote_literal(ADMIN_PASSWORD)
            ));
        }
        for role in &self.roles {
            sql.push_str(&role.create_sql());
        }
        sql
    }
}

/// Removes a half-built cluster directory unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}
