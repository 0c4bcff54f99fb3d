//! Building the handler from the run settings: what `main` calls once at start-up, kept apart
//! from the story of a job so that story reads without the wiring.

use std::sync::Arc;

use super::FetchHandler;
use super::materialize::Materialize;
use crate::app_cache::CacheInvalidation;
use crate::pipeline::combine::NewBranches;
use crate::pipeline::fetch::PosClient;
use crate::pipeline::import::{ImportError, Importer};
use crate::pipeline::storage::{RawStorage, StorageError, Stores};

/// Why the pipeline could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// MongoDB could not be used (the message names the address and the setting).
    #[error("{0}")]
    Mongo(String),
    /// Raw storage could not be set up (a missing bucket, refused credentials).
    #[error("raw storage: {0}")]
    Storage(#[source] StorageError),
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
}

impl FetchHandler {
    /// Builds the pipeline from the run settings: the POS client, raw storage, MongoDB (indexes
    /// created here, at start-up) and the cache invalidation.
    ///
    /// # Errors
    ///
    /// [`SetupError`] naming what could not be set up.
    pub async fn from_config(
        config: &crate::config::RunConfig,
        cache: crate::redis_conn::RedisConn,
    ) -> Result<FetchHandler, SetupError> {
        use crate::config::StorageKind;
        use crate::pipeline::storage::LocalStorage;

        let client = PosClient::new(config.fetch.options.clone())
            .map_err(|e| SetupError::Config(e.to_string()))?;
        let mongo_label =
            crate::startup::server_label("MongoDB", &config.mongo_uri.redacted(), "MONGO_URI");
        let mut mongo_options = mongodb::options::ClientOptions::parse(config.mongo_uri.expose())
            .await
            .map_err(|e| match crate::startup::describe_mongo(&e) {
                crate::startup::Problem::Permanent(why)
                | crate::startup::Problem::Transient(why) => {
                    SetupError::Mongo(format!("{mongo_label}: {why}"))
                }
            })?;
        // Bounded waits: a URI that sets its own timeouts keeps them.
        mongo_options
            .server_selection_timeout
            .get_or_insert(config.mongo_server_selection_timeout);
        mongo_options
            .connect_timeout
            .get_or_insert(config.mongo_connect_timeout);
        let mongo = mongodb::Client::with_options(mongo_options)
            .map_err(|e| SetupError::Mongo(format!("{mongo_label}: {e}")))?;
        let db = mongo
            .default_database()
            .unwrap_or_else(|| mongo.database("biggs"));
        let owner = config
            .worker
            .name
            .clone()
            .unwrap_or_else(|| format!("fetch-worker-{}", std::process::id()));
        let importer = Importer::new(db.clone(), owner).with_timeouts(config.import_timeouts);
        // A MongoDB that is not up yet is waited for (each try logged); bad credentials end
        // the start with a message that says so.
        tracing::info!("connecting to {mongo_label}");
        crate::startup::wait_for(
            &mongo_label,
            crate::startup::Backoff::SLOW,
            || importer.ensure_indexes(),
            |e: &ImportError| match e {
                ImportError::Mongo { source, .. } => crate::startup::describe_mongo(source),
                ImportError::Timeout { .. } => {
                    crate::startup::Problem::Transient("no answer in time".into())
                }
                other => crate::startup::Problem::Permanent(other.to_string()),
            },
        )
        .await
        .map_err(|(_, why)| SetupError::Mongo(format!("{mongo_label}: {why}")))?;
        // Reads go through every provider a file record may name, so a reprocess finds days
        // stored under an earlier STORAGE too.
        let gridfs = crate::pipeline::storage::GridFsStorage::new(db.clone(), None);
        let stores = Stores::default()
            .with_local_root(&config.fetch.raw_storage_path)
            .with_gridfs(gridfs.clone());
        let (storage, stores): (Arc<dyn RawStorage>, Stores) = match config.storage {
            StorageKind::Local => {
                let local = LocalStorage::new(&config.fetch.raw_storage_path)
                    .map_err(|e| SetupError::Config(format!("RAW_STORAGE_PATH: {e}")))?;
                let stores = stores.with_local(&local);
                (Arc::new(local), stores)
            }
            StorageKind::Gridfs => (Arc::new(gridfs), stores),
            StorageKind::S3 => {
                let settings = config.s3.as_ref().ok_or_else(|| {
                    SetupError::Config("STORAGE=s3 needs the S3_* settings".into())
                })?;
                let s3 = crate::pipeline::storage::S3Storage::new(settings)
                    .map_err(SetupError::Storage)?;
                s3.check().await.map_err(SetupError::Storage)?;
                (Arc::new(s3.clone()), stores.with_s3(s3))
            }
        };
        let materialize: Arc<dyn Materialize> = Arc::new(stores);
        let new_branches = match &config.new_branches {
            Some(arg) => NewBranches::from_arg(arg)
                .map_err(|e| SetupError::Config(format!("NEW_BRANCHES: {e}")))?,
            None => NewBranches::default(),
        };
        Ok(FetchHandler {
            client,
            storage,
            materialize,
            importer,
            new_branches,
            cache: config
                .cache_invalidate_pattern
                .as_ref()
                .map(|p| CacheInvalidation::new(cache, p.clone())),
            batch_size: config.import_batch_size,
            metrics: None,
            ready: config.ready,
            time_limit: config.job_timeout,
        })
    }
}
