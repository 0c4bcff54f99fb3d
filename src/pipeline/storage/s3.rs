//! Raw files in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2), one object per
//! export file under `<prefix>/<branch>/<date>/pos<pos>/<file name>` ([`raw_key`] below the
//! configured prefix).
//!
//! # Client
//!
//! [`object_store`]'s S3 client: SigV4 signing, path-style or virtual-hosted addressing,
//! multipart uploads and retries with backoff, on the reqwest/rustls stack the POS client
//! already uses. Its version is the 0.13 line because 0.14 moved to reqwest 0.13 and aws-lc-rs
//! (a second HTTP stack and a C build); the AWS SDK would bring its own HTTP stack as well.
//!
//! # Atomicity and the checksum
//!
//! S3 makes an object visible only when its upload completes: a single `PutObject` when its
//! body has arrived, a multipart upload when `CompleteMultipartUpload` succeeds. Either
//! replaces an earlier object of the key at once, so readers see the old file or the new one.
//!
//! The SHA-256 is stored as object metadata (`x-amz-meta-sha256`, lower-case hex), which S3
//! only accepts when the upload *starts*; the hash of a download is known only at its end. So
//! the writer holds the bytes until [`RawWriter::commit`]: in memory up to
//! [`S3Storage::multipart_threshold`] (8 MiB by default; a real export is a few hundred KB),
//! then in a spill file in a scratch directory (removed on every path). The commit then
//! uploads with the hash already in the metadata: one `PutObject` for a small file, or a
//! multipart upload of [`S3Storage::part_size`] parts read back from the spill file, so
//! memory stays bounded whatever the file's size. A failed part or completion aborts the
//! multipart upload (`AbortMultipartUpload`), so nothing is left, visible or not; a commit
//! dropped half-way (a job cancelled at shutdown) aborts it from a spawned task.
//!
//! The checksum is checked twice: every request body is signed with its own SHA-256
//! (`x-amz-content-sha256`), which the server verifies before it stores anything, and after
//! the upload a `HEAD` must report the expected size and `sha256` metadata; a mismatch deletes
//! the object and fails the commit. Abort and drop before the commit send nothing.
//!
//! # Errors and retries
//!
//! Every request is retried by the client on 5xx, 429, 408, connection errors and time-outs,
//! with the POS calls' policy (`POS_FETCH_ATTEMPTS` tries, `POS_FETCH_BACKOFF_MS` doubling up
//! to `POS_FETCH_MAX_BACKOFF_MS`, with jitter), each try bounded by
//! [`S3Settings::request_timeout`]. What still fails is a [`StorageError::Provider`]:
//! transient for server and network trouble, permanent for a missing object, refused
//! credentials or permissions. [`S3Storage::check`] runs at start-up, so a missing bucket or
//! bad credentials stop the worker with a clear message instead of failing every job.
//!
//! # Secrets
//!
//! The credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`); [`S3Settings`]'s `Debug` hides them, and no error carries them (the
//! signature is a header; errors name the method and URL only).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, ClientOptions, GetOptions,
    MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    RetryConfig,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pipeline::export_name::PosFileName;
use crate::pipeline::retry::RetryPolicy;
use crate::scratch::ScratchDir;

use super::{RawStorage, RawWriter, StorageError, StorageLocation, raw_key};

/// The metadata key of the SHA-256 (`x-amz-meta-sha256`).
pub const SHA256_METADATA: &str = "sha256";

/// The default of [`S3Storage::multipart_threshold`]: files up to this size are uploaded with
/// one `PutObject` from memory.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 8 << 20;

/// The default of [`S3Storage::part_size`]. S3 wants parts of at least 5 MiB (except the last).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// S3 error codes that mean the credentials (or their region or permissions) were refused.
const CREDENTIAL_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
];

/// The S3 error code in a reply's XML body (`<Code>…</Code>`), if the text carries one.
fn s3_error_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// A secret setting: its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (the client builder).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Everything the S3 store needs; validated by the configuration (`STORAGE=s3`).
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `S3_ENDPOINT`: the service URL (MinIO, Ceph, R2…); `None` for AWS's regional endpoint.
    /// Plain http only when this says `http://`.
    pub endpoint: Option<String>,
    /// `S3_BUCKET`: where the files go. It must exist (checked at start); the worker never
    /// creates it.
    pub bucket: String,
    /// `S3_PREFIX` without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// `S3_REGION`: the bucket's region, used to sign every request (default `us-east-1`).
    pub region: String,
    /// `S3_FORCE_PATH_STYLE`: `<endpoint>/<bucket>/<key>` rather than `<bucket>.<host>/<key>`.
    /// With an endpoint and virtual-hosted addressing, the endpoint must name the bucket's host.
    pub force_path_style: bool,
    /// `AWS_ACCESS_KEY_ID`; without it (and the secret) the client asks the instance or task
    /// metadata service, as the AWS tools do.
    pub access_key_id: Option<Secret>,
    /// `AWS_SECRET_ACCESS_KEY`: the secret of `access_key_id`; the two are given together or
    /// not at all.
    pub secret_access_key: Option<Secret>,
    /// `AWS_SESSION_TOKEN` (temporary credentials).
    pub session_token: Option<Secret>,
    /// Tries per request and their backoff (the POS calls' policy).
    pub retry: RetryPolicy,
    /// The longest one try of a request may take, body included.
    pub request_timeout: Duration,
    /// The longest wait for a connection.
    pub connect_timeout: Duration,
}

impl S3Settings {
    /// Settings for `bucket` with the defaults: AWS (no endpoint), no prefix, `us-east-1`,
    /// virtual-hosted addressing, no explicit credentials, the default retry policy, 30 s per
    /// request, 10 s to connect.
    pub fn new(bucket: impl Into<String>) -> S3Settings {
        S3Settings {
            endpoint: None,
            bucket: bucket.into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Raw storage in an S3 bucket. Cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct S3Storage {
    /// The client, bound to the bucket.
    store: Arc<AmazonS3>,
    /// The bucket name, recorded in every location.
    bucket: String,
    /// The key prefix, without trailing `/` (may be empty).
    prefix: String,
    /// Files up to this size go up in one `PutObject`; larger ones as a multipart upload.
    multipart_threshold: usize,
    /// The size of each multipart part (the last may be smaller).
    part_size: usize,
}

impl S3Storage {
    /// The provider name in [`StorageLocation`].
    pub const PROVIDER: &'static str = "s3";

    /// Builds the client. Nothing is sent until [`S3Storage::check`] or the first upload.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`] (permanent) when the settings are unusable (a malformed
    /// endpoint, an empty bucket).
    pub fn new(settings: &S3Settings) -> Result<S3Storage, StorageError> {
        let policy = settings.retry;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: policy.initial_backoff,
                max_backoff: policy.max_backoff.max(policy.initial_backoff),
                base: 2.0,
            },
            max_retries: policy.attempts.max(1) as usize - 1,
            // Bounded by the tries; this only stops a storm of slow tries.
            retry_timeout: Duration::from_secs(300),
        };
        let allow_http = settings
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let client = ClientOptions::new()
            .with_timeout(settings.request_timeout)
            .with_connect_timeout(settings.connect_timeout)
            .with_allow_http(allow_http);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.force_path_style)
            .with_retry(retry)
            .with_client_options(client);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            builder = builder
                .with_access_key_id(id.expose())
                .with_secret_access_key(secret.expose());
            if let Some(token) = &settings.session_token {
                builder = builder.with_token(token.expose());
            }
        }
        let store = builder
            .build()
            .map_err(|e| provider_error(format!("S3 client set-up: {e}"), false))?;
        Ok(S3Storage {
            store: Arc::new(store),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.trim_matches('/').to_string(),
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Sets when uploads switch to multipart and the part size (at least [`MIN_PART_SIZE`]),
    /// for tests and tuning.
    pub fn with_multipart(mut self, threshold: usize, part_size: usize) -> S3Storage {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(MIN_PART_SIZE);
        self
    }

    /// The bucket this store writes to and reads from (`S3_BUCKET`).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Files up to this many bytes are uploaded with one `PutObject`.
    pub fn multipart_threshold(&self) -> usize {
        self.multipart_threshold
    }

    /// The multipart part size.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The object key of `name`: `<prefix>/<branch>/<date>/pos<pos>/<file name>`.
    pub fn key_of(&self, name: &PosFileName) -> String {
        if self.prefix.is_empty() {
            raw_key(name)
        } else {
            format!("{}/{}", self.prefix, raw_key(name))
        }
    }

    /// The start-up check: lists at most one key under the prefix, which needs the bucket to
    /// exist and the credentials to be accepted (and `s3:ListBucket` on the prefix).
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`] whose message says what to fix: the bucket is missing, the
    /// credentials are refused, or the service cannot be reached.
    pub async fn check(&self) -> Result<(), StorageError> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let mut listing = self.store.list(prefix.as_ref());
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.explain_check(e)),
        }
    }

    /// The start-up check's error, in words an operator can act on. The client types a
    /// listing's failure only as "generic", so the S3 error code of the reply
    /// (`<Code>NoSuchBucket</Code>`, the protocol's machine-readable reason) decides.
    fn explain_check(&self, e: object_store::Error) -> StorageError {
        let text = error_chain(&e);
        let bucket = &self.bucket;
        let code = s3_error_code(&text);
        let refused = matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || code.is_some_and(|c| CREDENTIAL_CODES.contains(&c));
        let (message, transient) = if code == Some("NoSuchBucket") {
            (
                format!("S3 bucket {bucket:?} does not exist (S3_BUCKET): {text}"),
                false,
            )
        } else if refused {
            (
                format!(
                    "S3 refused the credentials for bucket {bucket:?} (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, S3_REGION): {text}"
                ),
                false,
            )
        } else if matches!(e, object_store::Error::NotFound { .. }) {
            (
                format!(
                    "S3 bucket {bucket:?} was not found (S3_BUCKET, S3_ENDPOINT, S3_FORCE_PATH_STYLE): {text}"
                ),
                false,
            )
        } else {
            (
                format!("S3 bucket {bucket:?} could not be checked (S3_ENDPOINT): {text}"),
                true,
            )
        };
        provider_error(message, transient)
    }

    /// The size and `sha256` metadata of the object `key`.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`]: permanent for a missing object, transient for trouble.
    pub async fn head(&self, key: &str) -> Result<(u64, Option<String>), StorageError> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let found = self
            .store
            .get_opts(&Path::from(key), options)
            .await
            .map_err(|e| store_error("head", key, &e))?;
        let sha = found
            .attributes
            .get(&Attribute::Metadata(SHA256_METADATA.into()))
            .map(|v| v.to_string());
        Ok((found.meta.size, sha))
    }

    /// The whole object `key`.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`]: permanent for a missing object, transient for trouble.
    pub async fn read_all(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let found = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(|e| store_error("get", key, &e))?;
        let data = found
            .bytes()
            .await
            .map_err(|e| store_error("read", key, &e))?;
        Ok(data.to_vec())
    }

    /// Writes the object at `location` to `dest` through a temporary file renamed into place
    /// (so `dest` is absent or complete), streaming the body.
    ///
    /// # Returns
    ///
    /// The number of bytes written.
    ///
    /// # Errors
    ///
    /// [`StorageError::Provider`] for a location of another provider or bucket, a missing
    /// object or a service failure; [`StorageError::Io`] for the local side.
    ///
    /// # Cancel safety
    ///
    /// A cancelled copy removes its temporary file; `dest` is never partial.
    pub async fn copy_to_path(
        &self,
        location: &StorageLocation,
        dest: &FsPath,
    ) -> Result<u64, StorageError> {
        location.expect_provider(Self::PROVIDER)?;
        if location.bucket.as_deref() != Some(self.bucket.as_str()) {
            return Err(provider_error(
                format!(
                    "{} is in bucket {:?}, this worker reads bucket {:?} (S3_BUCKET)",
                    location.path,
                    location.bucket.as_deref().unwrap_or(""),
                    self.bucket
                ),
                false,
            ));
        }
        let key = location.path.as_str();
        let found = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(|e| store_error("get", key, &e))?;
        let mut body = found.into_stream();
        let (part, mut file) = super::part_file::PartFile::beside(dest).await?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| store_error("read", key, &e))?;
            size += chunk.len() as u64;
            part.write(&mut file, &chunk).await?;
        }
        part.persist(file, dest).await?;
        Ok(size)
    }

    /// Deletes the object `key` (best effort clean-up after a failed check).
    async fn delete_quietly(&self, key: &str) {
        if let Err(e) = self.store.delete(&Path::from(key)).await {
            tracing::warn!(key, error.message = %e, "deleting a rejected S3 object failed");
        }
    }

    /// Uploads a finished spool under `key` with its hash in the metadata, then checks it.
    async fn upload(
        &self,
        key: &str,
        spool: Spool,
        size: u64,
        sha: &str,
    ) -> Result<(), StorageError> {
        let path = Path::from(key);
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            AttributeValue::from(sha.to_string()),
        );
        match spool {
            Spool::Memory(data) => {
                let options = PutOptions {
                    attributes,
                    ..PutOptions::default()
                };
                self.store
                    .put_opts(&path, PutPayload::from(Bytes::from(data)), options)
                    .await
                    .map_err(|e| store_error("put", key, &e))?;
            }
            Spool::File { dir, path: file } => {
                let options = PutMultipartOptions {
                    attributes,
                    ..PutMultipartOptions::default()
                };
                let upload = self
                    .store
                    .put_multipart_opts(&path, options)
                    .await
                    .map_err(|e| store_error("start multipart upload", key, &e))?;
                let mut pending = PendingUpload(Some(upload));
                let result = self.upload_parts(&mut pending, key, &file).await;
                drop(dir);
                if let Err(e) = result {
                    pending.abort(key).await;
                    return Err(e);
                }
            }
        }
        let (stored, stored_sha) = self.head(key).await?;
        if stored != size || stored_sha.as_deref() != Some(sha) {
            self.delete_quietly(key).await;
            return Err(provider_error(
                format!(
                    "{key}: the stored object has {stored} bytes and sha256 {:?}, expected {size} bytes and {sha}",
                    stored_sha.unwrap_or_default()
                ),
                true,
            ));
        }
        Ok(())
    }

    /// Sends the spill file as parts and completes the upload.
    async fn upload_parts(
        &self,
        pending: &mut PendingUpload,
        key: &str,
        file: &FsPath,
    ) -> Result<(), StorageError> {
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|e| StorageError::io("open", file, e))?;
        let Some(upload) = pending.0.as_mut() else {
            return Err(provider_error(
                format!("{key}: upload already closed"),
                false,
            ));
        };
        loop {
            let mut part = Vec::with_capacity(self.part_size);
            while part.len() < self.part_size {
                let n = (&mut source)
                    .take((self.part_size - part.len()) as u64)
                    .read_to_end(&mut part)
                    .await
                    .map_err(|e| StorageError::io("read", file, e))?;
                if n == 0 {
                    break;
                }
            }
            if part.is_empty() {
                break;
            }
            let last = part.len() < self.part_size;
            upload
                .put_part(PutPayload::from(Bytes::from(part)))
                .await
                .map_err(|e| store_error("upload part", key, &e))?;
            if last {
                break;
            }
        }
        upload
            .complete()
            .await
            .map_err(|e| store_error("complete multipart upload", key, &e))?;
        pending.0 = None;
        Ok(())
    }
}

/// A multipart upload that is aborted unless it completed: by [`PendingUpload::abort`] on a
/// failure, or from a spawned task when dropped half-way (a cancelled commit).
struct PendingUpload(Option<Box<dyn MultipartUpload>>);

impl PendingUpload {
    async fn abort(&mut self, key: &str) {
        if let Some(mut upload) = self.0.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(key, error.message = %e, "aborting an S3 multipart upload failed");
        }
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if let Some(mut upload) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

impl RawStorage for S3Storage {
    fn provider(&self) -> &'static str {
        Self::PROVIDER
    }

    fn begin<'a>(
        &'a self,
        name: &'a PosFileName,
    ) -> BoxFuture<'a, Result<Box<dyn RawWriter>, StorageError>> {
        Box::pin(async move {
            let writer: Box<dyn RawWriter> = Box::new(S3Writer {
                storage: self.clone(),
                key: self.key_of(name),
                hasher: Sha256::new(),
                size: 0,
                spool: Some(Spool::Memory(Vec::new())),
                spill_file: None,
            });
            Ok(writer)
        })
    }
}

/// Where a file's bytes wait for the commit.
enum Spool {
    /// Up to the multipart threshold.
    Memory(Vec<u8>),
    /// Past it: a file in its own scratch directory (removed when the directory is dropped).
    File {
        /// The scratch directory holding the file.
        dir: ScratchDir,
        /// The spool file inside `dir`.
        path: PathBuf,
    },
}

/// One file being written: bytes are hashed and spooled; nothing reaches S3 before the commit.
struct S3Writer {
    /// The store the object goes to at commit (client, bucket, multipart settings).
    storage: S3Storage,
    /// The object key.
    key: String,
    /// SHA-256 of everything written.
    hasher: Sha256,
    /// Bytes written so far: after the upload, the stored object must have exactly this size
    /// (and the hash), or it is deleted and the commit fails.
    size: u64,
    /// The bytes so far; `None` once committed or aborted.
    spool: Option<Spool>,
    /// The open spill file, once the memory spool overflowed.
    spill_file: Option<tokio::fs::File>,
}

impl S3Writer {
    async fn append(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        let threshold = self.storage.multipart_threshold;
        match self.spool.as_mut() {
            None => Err(provider_error(
                format!("{}: the upload was already closed", self.key),
                false,
            )),
            Some(Spool::Memory(data)) if data.len() + chunk.len() <= threshold => {
                data.extend_from_slice(chunk);
                Ok(())
            }
            Some(Spool::Memory(data)) => {
                let held = std::mem::take(data);
                let dir = ScratchDir::new();
                tokio::fs::create_dir_all(dir.path())
                    .await
                    .map_err(|e| StorageError::io("create", dir.path(), e))?;
                let path = dir.path().join("upload.part");
                let mut file = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| StorageError::io("create", &path, e))?;
                for piece in [&held[..], chunk] {
                    file.write_all(piece)
                        .await
                        .map_err(|e| StorageError::io("write", &path, e))?;
                }
                self.spool = Some(Spool::File { dir, path });
                self.spill_file = Some(file);
                Ok(())
            }
            Some(Spool::File { path, .. }) => {
                let Some(file) = self.spill_file.as_mut() else {
                    return Err(provider_error(
                        format!("{}: spill file closed", self.key),
                        false,
                    ));
                };
                file.write_all(chunk)
                    .await
                    .map_err(|e| StorageError::io("write", path.as_path(), e))
            }
        }
    }

    async fn finish_commit(mut self: Box<Self>) -> Result<StorageLocation, StorageError> {
        let Some(spool) = self.spool.take() else {
            return Err(provider_error(
                format!("{}: the upload was already closed", self.key),
                false,
            ));
        };
        if let (Some(mut file), Spool::File { path, .. }) = (self.spill_file.take(), &spool) {
            file.flush()
                .await
                .map_err(|e| StorageError::io("flush", path.as_path(), e))?;
        }
        let sha = hex(&std::mem::take(&mut self.hasher).finalize());
        self.storage
            .upload(&self.key, spool, self.size, &sha)
            .await?;
        Ok(StorageLocation {
            provider: S3Storage::PROVIDER.to_string(),
            path: self.key.clone(),
            bucket: Some(self.storage.bucket.clone()),
        })
    }
}

impl RawWriter for S3Writer {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            self.append(chunk).await?;
            self.hasher.update(chunk);
            self.size += chunk.len() as u64;
            Ok(())
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<StorageLocation, StorageError>> {
        Box::pin(self.finish_commit())
    }

    /// Nothing was sent: dropping the spool (and its scratch directory) is the whole abort.
    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        self.spill_file = None;
        self.spool = None;
        Box::pin(std::future::ready(Ok(())))
    }
}

fn provider_error(message: String, transient: bool) -> StorageError {
    StorageError::Provider {
        provider: S3Storage::PROVIDER,
        message,
        transient,
    }
}

/// S3 error codes of a server that may answer later (the client retries them first).
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
];

/// A client error as a [`StorageError`]: a missing object, refused credentials or permissions,
/// bad paths, unsupported requests and any other reply with an S3 error code that is not a
/// server's trouble (`InvalidPart`, `EntityTooLarge`…) are permanent; server errors and
/// network trouble that outlasted the client's retries are transient.
fn store_error(op: &str, key: &str, e: &object_store::Error) -> StorageError {
    use object_store::Error as E;
    let text = error_chain(e);
    let refused_by_code = s3_error_code(&text).is_some_and(|code| !TRANSIENT_CODES.contains(&code));
    let transient = !refused_by_code
        && !matches!(
            e,
            E::NotFound { .. }
                | E::PermissionDenied { .. }
                | E::Unauthenticated { .. }
                | E::InvalidPath { .. }
                | E::NotSupported { .. }
                | E::NotImplemented { .. }
                | E::UnknownConfigurationKey { .. }
                | E::Precondition { .. }
        );
    provider_error(format!("{op} {key}: {text}"), transient)
}

/// `error: cause: cause…`, without repeating a cause the error already shows.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// `bytes` as lower-case hex, two digits a byte (the SHA-256 metadata and payload hashes).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> S3Settings {
        let mut s = S3Settings::new("raw");
        s.endpoint = Some("http://127.0.0.1:9".into());
        s.force_path_style = true;
        s.access_key_id = Some(Secret::new("AKIDEXAMPLE"));
        s.secret_access_key = Some(Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));
        s
    }

    #[test]
    fn keys_are_prefix_branch_date_pos_name() {
        let name = PosFileName::parse("a_BMC_1_rd5000_2026-02-09_20-00_.csv").unwrap();
        let mut s = settings();
        let store = S3Storage::new(&s).unwrap();
        assert_eq!(
            store.key_of(&name),
            "BMC/2026-02-09/pos1/a_BMC_1_rd5000_2026-02-09_20-00_.csv"
        );
        s.prefix = "/raw/pos/".into();
        let store = S3Storage::new(&s).unwrap();
        assert_eq!(
            store.key_of(&name),
            "raw/pos/BMC/2026-02-09/pos1/a_BMC_1_rd5000_2026-02-09_20-00_.csv"
        );
    }

    #[test]
    fn settings_never_print_the_credentials() {
        let text = format!("{:?}", settings());
        assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
        assert!(!text.contains("AKIDEXAMPLE"), "{text}");
        assert!(text.contains("***"), "{text}");
    }

    #[test]
    fn the_s3_error_code_is_read_from_the_reply() {
        let body = "403 Forbidden: <?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>x</Message></Error>";
        assert_eq!(s3_error_code(body), Some("InvalidAccessKeyId"));
        assert_eq!(s3_error_code("connection refused"), None);
        assert_eq!(s3_error_code("<Code>unterminated"), None);
    }

    #[test]
    fn parts_are_never_below_the_s3_minimum() {
        let store = S3Storage::new(&settings()).unwrap().with_multipart(10, 1);
        assert_eq!(store.part_size(), MIN_PART_SIZE);
        assert_eq!(store.multipart_threshold(), 10);
    }

    #[test]
    fn missing_objects_and_refusals_are_permanent() {
        let boxed = |s: &str| -> Box<dyn std::error::Error + Send + Sync> { s.into() };
        let not_found = object_store::Error::NotFound {
            path: "k".into(),
            source: boxed("404"),
        };
        assert!(!store_error("get", "k", &not_found).is_transient());
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: boxed("403"),
        };
        assert!(!store_error("put", "k", &denied).is_transient());
        let generic = object_store::Error::Generic {
            store: "S3",
            source: boxed("500 after 2 retries: <Error><Code>InternalError</Code></Error>"),
        };
        assert!(store_error("put", "k", &generic).is_transient());
        let reset = object_store::Error::Generic {
            store: "S3",
            source: boxed("error sending request: connection reset"),
        };
        assert!(store_error("put", "k", &reset).is_transient());
        let refused = object_store::Error::Generic {
            store: "S3",
            source: boxed("400 Bad Request: <Error><Code>InvalidPart</Code></Error>"),
        };
        assert!(!store_error("put", "k", &refused).is_transient());
    }

    #[tokio::test]
    async fn abort_and_drop_before_the_commit_send_nothing() {
        // The endpoint is a closed port: any request would fail, so success proves none is sent.
        let store = S3Storage::new(&settings())
            .unwrap()
            .with_multipart(4, MIN_PART_SIZE);
        let name = PosFileName::parse("a_BMC_1_rd5000_2026-02-09_20-00_.csv").unwrap();
        let mut w = store.begin(&name).await.unwrap();
        w.write(b"0123456789").await.unwrap();
        w.abort().await.unwrap();
        let mut w = store.begin(&name).await.unwrap();
        w.write(b"0123456789").await.unwrap();
        drop(w);
    }
}
