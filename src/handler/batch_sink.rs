//! The bridge from the blocking combine pass to the async importer: rows are handed over in
//! batches through a bounded channel, so combining never runs far ahead of MongoDB.

use tokio::sync::mpsc;

use crate::pipeline::combine::{MonitorEntry, RowSink};
use crate::pipeline::record::Transaction;

/// Hands the combine pass's typed rows to the async importer in batches.
pub(super) struct BatchSink {
    /// Where full batches go (the importer's end).
    pub(super) tx: mpsc::Sender<Vec<Transaction>>,
    /// Rows not yet sent.
    pub(super) batch: Vec<Transaction>,
    /// Rows per batch.
    pub(super) size: usize,
}

/// The importer went away (it failed); the combine pass stops.
#[derive(Debug, thiserror::Error)]
#[error("the importer stopped")]
pub(super) struct ImporterGone;

impl RowSink for BatchSink {
    type Error = ImporterGone;

    fn legacy_row(&mut self, _row: &[u8]) -> Result<(), ImporterGone> {
        Ok(())
    }

    fn transaction(&mut self, transaction: Transaction) -> Result<(), ImporterGone> {
        self.batch.push(transaction);
        if self.batch.len() >= self.size {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(self.size));
            self.tx.blocking_send(full).map_err(|_| ImporterGone)?;
        }
        Ok(())
    }

    fn monitor(&mut self, _entry: &MonitorEntry<'_>) -> Result<(), ImporterGone> {
        Ok(())
    }
}
