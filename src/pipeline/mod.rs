//! The POS pipeline: list a day's files, download them, combine them the way the legacy
//! combiner did, import typed transactions. It knows nothing about Redis or BullMQ.

pub mod combine;
pub mod day;
pub mod export_name;
pub mod fetch;
pub mod import;
pub mod ready;
pub mod record;
pub mod retry;
pub mod storage;
