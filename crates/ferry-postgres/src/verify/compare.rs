//! Comparing one table: fingerprints of every bucket on both sides, then narrowing into the
//! differing buckets until enough differences are found.
//!
//! ```text
//!  both sides: fingerprint per bucket (one GROUP BY scan)  ──► equal? done
//!        │ differing buckets, in bucket order
//!        ▼
//!  bucket larger than FETCH_ROWS? ──yes──► fingerprint its sub-buckets, queue the
//!        │ no                              differing ones in its place
//!        ▼
//!  fetch (key, row hash) or (row hash, count) of a batch of buckets from both sides,
//!  diff them in memory ──► differences; stop after max + 1
//! ```
//!
//! Each differing bucket holds at least one difference, so at most `max + 1` buckets are
//! ever fetched, and a fetch holds at most [`FETCH_ROWS`] rows per side (bounded memory,
//! ARCHITECTURE.md invariant 5) unless a bucket cannot be split further. Both sides' queries
//! run concurrently.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ferry_core::TableName;
use tracing::debug;

use super::error::VerifyError;
use super::fingerprint::{Range, TableHashing};
use super::report::{Difference, RowKey, TableResult, TableStatus};
use super::session::Session;

/// Rows fetched per side at most when narrowing into a batch of buckets (unless a single
/// bucket that cannot be split further is larger).
const FETCH_ROWS: i64 = 50_000;

/// How to compare one source table.
pub(super) struct TablePlan {
    pub name: TableName,
    pub source: TableHashing,
    /// The primary key column names, for printing keys.
    pub key_names: Vec<String>,
    /// `None` when no target table has the name.
    pub target: Option<TargetPlan>,
}

/// The target side of a [`TablePlan`].
pub(super) struct TargetPlan {
    pub hashing: TableHashing,
    /// Source columns the target table lacks: the rows are then only counted.
    pub missing_columns: Vec<String>,
}

/// The text values of a row's key columns, in key order.
type KeyValues = Vec<Option<String>>;

/// `count(*)` and `sum(row hash)` of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    count: i64,
    sum: String,
}

/// A differing range still to be examined, with the larger of its two row counts.
#[derive(Debug, Clone, Copy)]
struct Pending {
    range: Range,
    rows: i64,
}

/// The two sessions, the plan and the settings of one table's comparison.
pub(super) struct Comparison<'a> {
    pub source: &'a Session,
    pub target: &'a Session,
    pub plan: &'a TablePlan,
    pub fanout: u64,
    pub max_differences: usize,
}

impl Comparison<'_> {
    /// Compares the table and returns its result.
    pub async fn run(&self) -> Result<TableResult, VerifyError> {
        let name = &self.plan.name;
        let Some(target) = &self.plan.target else {
            let source_rows = count(self.source, name, &self.plan.source).await?;
            return Ok(self.result(
                source_rows,
                None,
                TableStatus::MissingOnTarget,
                vec![],
                false,
            ));
        };
        if !target.missing_columns.is_empty() {
            let (source_rows, target_rows) = tokio::try_join!(
                count(self.source, name, &self.plan.source),
                count(self.target, name, &target.hashing),
            )?;
            let mut differences: Vec<Difference> = target
                .missing_columns
                .iter()
                .map(|column| Difference::ColumnMissingOnTarget {
                    column: column.clone(),
                })
                .collect();
            let more = differences.len() > self.max_differences;
            differences.truncate(self.max_differences);
            return Ok(self.result(
                source_rows,
                Some(target_rows),
                TableStatus::Different,
                differences,
                more,
            ));
        }
        let (source_buckets, target_buckets) = tokio::try_join!(
            self.fingerprints(self.source, &self.plan.source, Range::ALL),
            self.fingerprints(self.target, &target.hashing, Range::ALL),
        )?;
        let source_rows = source_buckets.values().map(|f| f.count).sum();
        let target_rows = target_buckets.values().map(|f| f.count).sum();
        let pending: VecDeque<Pending> =
            differing(Range::ALL, self.fanout, &source_buckets, &target_buckets).into();
        debug!(table = %name, differing_buckets = pending.len(), "fingerprints compared");
        if pending.is_empty() && source_rows == target_rows {
            return Ok(self.result(
                source_rows,
                Some(target_rows),
                TableStatus::Equal,
                vec![],
                false,
            ));
        }
        let (differences, more) = self.narrow(&target.hashing, pending).await?;
        Ok(self.result(
            source_rows,
            Some(target_rows),
            TableStatus::Different,
            differences,
            more,
        ))
    }

    fn result(
        &self,
        source_rows: i64,
        target_rows: Option<i64>,
        status: TableStatus,
        differences: Vec<Difference>,
        more_differences: bool,
    ) -> TableResult {
        TableResult {
            table: self.plan.name.clone(),
            source_rows,
            target_rows,
            status,
            differences,
            more_differences,
        }
    }

    /// Examines differing ranges in order until `max + 1` differences are known; returns up
    /// to `max` of them and whether there are more.
    async fn narrow(
        &self,
        target: &TableHashing,
        mut pending: VecDeque<Pending>,
    ) -> Result<(Vec<Difference>, bool), VerifyError> {
        let wanted = self.max_differences.saturating_add(1);
        let mut differences = Vec::new();
        while self.max_differences > 0 && differences.len() < wanted {
            let Some(first) = pending.pop_front() else {
                break;
            };
            if self.should_split(first) {
                let (s, t) = tokio::try_join!(
                    self.fingerprints(self.source, &self.plan.source, first.range),
                    self.fingerprints(self.target, target, first.range),
                )?;
                for child in differing(first.range, self.fanout, &s, &t)
                    .into_iter()
                    .rev()
                {
                    pending.push_front(child);
                }
                continue;
            }
            // Each range holds at least one difference: take no more than still wanted.
            let mut batch = vec![first.range];
            let mut rows = first.rows;
            while batch.len() < wanted - differences.len() {
                match pending.front() {
                    Some(&next) if !self.should_split(next) && rows + next.rows <= FETCH_ROWS => {
                        pending.pop_front();
                        batch.push(next.range);
                        rows += next.rows;
                    }
                    _ => break,
                }
            }
            debug!(table = %self.plan.name, buckets = batch.len(), rows, "fetching differing buckets");
            if self.plan.source.is_keyed() {
                differences.extend(self.keyed_differences(target, &batch).await?);
            } else {
                differences.extend(self.image_differences(target, &batch).await?);
            }
        }
        let more = differences.len() > self.max_differences || !pending.is_empty();
        differences.truncate(self.max_differences);
        Ok((differences, more))
    }

    fn should_split(&self, pending: Pending) -> bool {
        pending.rows > FETCH_ROWS && pending.range.child_modulus(self.fanout).is_some()
    }

    /// The fingerprints of the children of `parent` on `session`'s side.
    async fn fingerprints(
        &self,
        session: &Session,
        hashing: &TableHashing,
        parent: Range,
    ) -> Result<BTreeMap<u64, Fingerprint>, VerifyError> {
        let name = &self.plan.name;
        let rows = session
            .query(name, &hashing.fingerprints(parent, self.fanout))
            .await?;
        rows.iter()
            .map(|row| {
                // `h` is never negative, so neither is the bucket.
                let bucket: i64 = row.try_get(0)?;
                let fingerprint = Fingerprint {
                    count: row.try_get(1)?,
                    sum: row.try_get(2)?,
                };
                Ok((bucket.unsigned_abs(), fingerprint))
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| session.error(Some(name), e))
    }

    /// Keyed tables: the keys in `ranges` missing on one side or with different rows.
    async fn keyed_differences(
        &self,
        target: &TableHashing,
        ranges: &[Range],
    ) -> Result<Vec<Difference>, VerifyError> {
        let (source_rows, target_rows) = tokio::try_join!(
            self.keyed_rows(self.source, &self.plan.source, ranges),
            self.keyed_rows(self.target, target, ranges),
        )?;
        // Several rows per key only happen when the target lacks the primary key.
        let mut by_key: BTreeMap<KeyValues, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
        for (key, hash) in source_rows {
            by_key.entry(key).or_default().0.push(hash);
        }
        for (key, hash) in target_rows {
            by_key.entry(key).or_default().1.push(hash);
        }
        let mut differences = Vec::new();
        for (values, (mut source, mut target)) in by_key {
            source.sort_unstable();
            target.sort_unstable();
            if source == target {
                continue;
            }
            let key = RowKey {
                columns: self.plan.key_names.iter().cloned().zip(values).collect(),
            };
            differences.push(match (source.is_empty(), target.is_empty()) {
                (false, true) => Difference::OnlyInSource { key },
                (true, false) => Difference::OnlyInTarget { key },
                _ => Difference::DifferentValues { key },
            });
        }
        Ok(differences)
    }

    async fn keyed_rows(
        &self,
        session: &Session,
        hashing: &TableHashing,
        ranges: &[Range],
    ) -> Result<Vec<(KeyValues, i64)>, VerifyError> {
        let name = &self.plan.name;
        let rows = session.query(name, &hashing.keyed_rows(ranges)).await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| session.error(Some(name), e))
    }

    /// Keyless tables: the row images in `ranges` whose number differs between the sides.
    async fn image_differences(
        &self,
        target: &TableHashing,
        ranges: &[Range],
    ) -> Result<Vec<Difference>, VerifyError> {
        let (source_images, target_images) = tokio::try_join!(
            self.image_counts(self.source, &self.plan.source, ranges),
            self.image_counts(self.target, target, ranges),
        )?;
        let mut counts: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (hash, n) in source_images {
            counts.entry(hash).or_default().0 += n;
        }
        for (hash, n) in target_images {
            counts.entry(hash).or_default().1 += n;
        }
        Ok(counts
            .into_iter()
            .filter(|(_, (s, t))| s != t)
            .map(
                |(hash, (source_count, target_count))| Difference::RowImage {
                    id: format!("{:016x}", u64::from_be_bytes(hash.to_be_bytes())),
                    source_count,
                    target_count,
                },
            )
            .collect())
    }

    async fn image_counts(
        &self,
        session: &Session,
        hashing: &TableHashing,
        ranges: &[Range],
    ) -> Result<Vec<(i64, i64)>, VerifyError> {
        let name = &self.plan.name;
        let rows = session.query(name, &hashing.row_images(ranges)).await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| session.error(Some(name), e))
    }
}

/// `count(*)` of the table on `session`'s side.
async fn count(
    session: &Session,
    name: &TableName,
    hashing: &TableHashing,
) -> Result<i64, VerifyError> {
    let rows = session.query(name, &hashing.count()).await?;
    match rows.first() {
        Some(row) => row.try_get(0).map_err(|e| session.error(Some(name), e)),
        None => Ok(0),
    }
}

/// The children of `parent` whose fingerprints differ, in bucket order.
fn differing(
    parent: Range,
    fanout: u64,
    source: &BTreeMap<u64, Fingerprint>,
    target: &BTreeMap<u64, Fingerprint>,
) -> Vec<Pending> {
    let buckets: BTreeSet<u64> = source.keys().chain(target.keys()).copied().collect();
    buckets
        .into_iter()
        .filter_map(|bucket| {
            let (s, t) = (source.get(&bucket), target.get(&bucket));
            (s != t).then(|| Pending {
                range: parent.child(fanout, bucket),
                rows: s.map_or(0, |f| f.count).max(t.map_or(0, |f| f.count)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(count: i64, sum: &str) -> Fingerprint {
        Fingerprint {
            count,
            sum: sum.to_owned(),
        }
    }

    #[test]
    fn differing_buckets_include_one_sided_ones() {
        let source = BTreeMap::from([(0, fp(2, "10")), (1, fp(1, "5")), (3, fp(4, "1"))]);
        let target = BTreeMap::from([(0, fp(2, "10")), (1, fp(1, "6")), (2, fp(7, "9"))]);
        let parent = Range {
            modulus: 4,
            remainder: 1,
        };
        let found = differing(parent, 4, &source, &target);
        let summary: Vec<(u64, u64, i64)> = found
            .iter()
            .map(|p| (p.range.modulus, p.range.remainder, p.rows))
            .collect();
        assert_eq!(summary, vec![(16, 5, 1), (16, 9, 7), (16, 13, 4)]);
    }
}
