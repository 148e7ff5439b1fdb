//! One side's connection for `verify`: identical rendering settings and one read-only
//! REPEATABLE READ transaction, so every table is read as of one snapshot.
//!
//! Values are compared as text, so both servers must print them the same way: the session
//! settings below fix every setting that changes the text form of a built-in type except
//! `lc_monetary`, which is why `money` columns are compared as `numeric`
//! ([`super::catalog::Column::cast`]). The snapshot is taken by the first statement after
//! BEGIN; [`Session::take_snapshot`] runs it on both sides at once to bring the two
//! snapshots as close together in time as possible.

use ferry_core::TableName;
use ferry_pgwire::ConnParams;
use tokio_postgres::{Client, Row};

use super::error::VerifyError;
use crate::check::Side;

/// Settings that make both servers render values identically, then the transaction.
const SETUP: &str = "SET TimeZone = 'UTC';
    SET DateStyle = 'ISO, YMD';
    SET IntervalStyle = 'postgres';
    SET extra_float_digits = 3;
    SET bytea_output = 'hex';
    BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A connection inside its snapshot transaction.
pub(super) struct Session {
    pub client: Client,
    pub side: Side,
    user: String,
}

impl Session {
    /// Connects, applies the rendering settings and begins the transaction (the snapshot
    /// is not taken yet).
    pub async fn open(params: &ConnParams, side: Side) -> Result<Session, VerifyError> {
        let client = ferry_pgwire::connect_sql(params)
            .await
            .map_err(|e| VerifyError::connect(side, &params.user, e))?;
        client
            .batch_execute(SETUP)
            .await
            .map_err(|e| VerifyError::snapshot(side, &params.user, e))?;
        Ok(Session {
            client,
            side,
            user: params.user.clone(),
        })
    }

    /// Takes the snapshot (with the first statement of the transaction) and returns the
    /// server's `server_version_num`.
    pub async fn take_snapshot(&self) -> Result<u32, VerifyError> {
        super::catalog::version_num(&self.client)
            .await
            .map_err(|e| VerifyError::snapshot(self.side, &self.user, e))
    }

    /// Runs a query about `table`, naming it and the fix on failure.
    pub async fn query(&self, table: &TableName, sql: &str) -> Result<Vec<Row>, VerifyError> {
        self.client
            .query(sql, &[])
            .await
            .map_err(|e| self.error(Some(table), e))
    }

    /// The error of a failed query or row decoding on this side.
    pub fn error(&self, table: Option<&TableName>, source: tokio_postgres::Error) -> VerifyError {
        VerifyError::query(self.side, &self.user, table, source)
    }
}
