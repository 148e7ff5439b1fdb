//! Roles a test asks for, created right after the server first starts.
//!
//! A role always has LOGIN; the rest (password, REPLICATION, SUPERUSER, CREATEDB, extra
//! grants) is opt-in so tests can check what Ferry does with too few privileges. Names and
//! passwords are quoted with ferry-core's one quoting helper; grants are SQL the test wrote.

use ferry_core::{quote_ident, quote_literal};

/// A role to create in the cluster: `RoleSpec::new("ferry").password("pw").replication()`.
#[derive(Clone, Debug)]
pub struct RoleSpec {
    name: String,
    password: Option<String>,
    replication: bool,
    superuser: bool,
    createdb: bool,
    grants: Vec<String>,
}

impl RoleSpec {
    /// A LOGIN role without password or special attributes.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            password: None,
            replication: false,
            superuser: false,
            createdb: false,
            grants: Vec::new(),
        }
    }

    /// Sets the password, stored as SCRAM or, with `Auth::Md5`, as an MD5 hash.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds the REPLICATION attribute.
    pub fn replication(mut self) -> Self {
        self.replication = true;
        self
    }

    /// Adds the SUPERUSER attribute.
    pub fn superuser(mut self) -> Self {
        self.superuser = true;
        self
    }

    /// Adds the CREATEDB attribute.
    pub fn createdb(mut self) -> Self {
        self.createdb = true;
        self
    }

    /// SQL run as superuser in database `postgres` after the role exists, e.g.
    /// `"GRANT pg_read_all_data TO ferry"`.
    pub fn grant(mut self, sql: impl Into<String>) -> Self {
        self.grants.push(sql.into());
        self
    }

    /// The role name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `CREATE ROLE` followed by the grants, one statement per line.
    pub(crate) fn create_sql(&self) -> String {
        let mut sql = format!("CREATE ROLE {} LOGIN", quote_ident(&self.name));
        for (wanted, attribute) in [
            (self.replication, " REPLICATION"),
            (self.superuser, " SUPERUSER"),
            (self.createdb, " CREATEDB"),
        ] {
            if wanted {
                sql.push_str(attribute);
            }
        }
        if let Some(password) = &self.password {
            sql.push_str(" PASSWORD ");
            sql.push_str(&quote_literal(password));
        }
        sql.push_str(";\n");
        for grant in &self.grants {
            sql.push_str(grant.trim_end().trim_end_matches(';'));
            sql.push_str(";\n");
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_sql_quotes_and_lists_attributes() {
        let sql = RoleSpec::new("Ferry")
            .password("it's")
            .replication()
            .grant("GRANT pg_read_all_data TO \"Ferry\";")
            .create_sql();
        assert_eq!(
            sql,
            "CREATE ROLE \"Ferry\" LOGIN REPLICATION PASSWORD 'it''s';\n\
             GRANT pg_read_all_data TO \"Ferry\";\n"
        );
    }
}
