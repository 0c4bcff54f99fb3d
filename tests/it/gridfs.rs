//! GridFS raw storage against MongoDB (`MONGO_URI`) or nx-27017: uploads through the
//! `RawStorage` trait in pieces across chunk boundaries, commit and read back, abort and drop
//! leaving nothing, a new commit replacing the older revision, and the fetcher downloading
//! from the in-process fake POS server into GridFS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fetch_worker::fake_pos::{FakePos, Fault, FaultRule, Faults, Target};
use fetch_worker::pipeline::day::{Branch, BusinessDate, PosNo};
use fetch_worker::pipeline::fetch::{FetchError, FetchOptions, FileRef, PosClient, PosFileName};
use fetch_worker::pipeline::storage::{
    GridFsStorage, RawStorage, RawWriter, StorageLocation, raw_key,
};
use futures_util::io::AsyncReadExt;
use futures_util::stream::TryStreamExt;
use mongodb::Database;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use mongodb::gridfs::FilesCollectionDocument;
use sha2::{Digest, Sha256};

use crate::support::eventually;
use crate::support::mongo::TestMongo;

const BETA_RD5000: &str = "a_BETA_1_rd5000_2026-02-09_20-00_.csv";
const IRIGA_RD5000: &str = "a_IRIGA_1_rd5000_2026-02-09_20-00_.csv";

/// The GridFS chunk size the driver uses by default (255 KiB).
const CHUNK: usize = 255 * 1024;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn name(file: &str) -> PosFileName {
    PosFileName::parse(file).unwrap()
}

/// `n` reproducible pseudo-random bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh database on a fresh server (kept alive by the returned handle).
async fn database(label: &str) -> (TestMongo, Database) {
    let mongo = TestMongo::start();
    let db = mongo.database(&TestMongo::unique_db(label)).await;
    (mongo, db)
}

/// The files documents matching `filter`.
async fn files(store: &GridFsStorage, filter: Document) -> Vec<FilesCollectionDocument> {
    store
        .bucket()
        .find(filter)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The ids (hex) of the files named `key`.
async fn ids_named(store: &GridFsStorage, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = files(store, doc! {"filename": key})
        .await
        .into_iter()
        .map(|f| f.id.as_object_id().expect("ObjectId").to_hex())
        .collect();
    ids.sort();
    ids
}

/// The number of chunks stored for the file `id`.
async fn chunks_of(db: &Database, store: &GridFsStorage, id: ObjectId) -> usize {
    db.collection::<Document>(&format!("{}.chunks", store.bucket_name()))
        .find(doc! {"files_id": id})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len()
}

/// Commits `data` under `file` through the trait.
async fn put(storage: &dyn RawStorage, file: &PosFileName, data: &[u8]) -> StorageLocation {
    let mut writer = storage.begin(file).await.unwrap();
    writer.write(data).await.unwrap();
    writer.commit().await.unwrap()
}

fn oid(location: &StorageLocation) -> ObjectId {
    ObjectId::parse_str(&location.path).unwrap()
}

/// A file of several GridFS chunks written in pieces that straddle the chunk boundaries is
/// invisible until the commit, then stored once under its key with its metadata, and reads
/// back byte for byte (in memory and into a local file).
#[tokio::test]
async fn a_file_written_in_pieces_reads_back_identical() {
    let (_mongo, db) = database("gridfs_pieces").await;
    let store = GridFsStorage::new(db.clone(), None);
    assert_eq!(store.bucket_name(), "rawfiles");
    let storage: &dyn RawStorage = &store;
    assert_eq!(storage.provider(), "gridfs");
    let file = name(BETA_RD5000);
    let key = raw_key(&file);
    assert_eq!(key, format!("BETA/2026-02-09/pos1/{BETA_RD5000}"));

    let data = bytes(2 * CHUNK + 77_777, 1);
    let mut writer = storage.begin(&file).await.unwrap();
    let mut rest = &data[..];
    for size in [1, 100_000, CHUNK - 1, 4096, 70_000] {
        let (piece, tail) = rest.split_at(size);
        writer.write(piece).await.unwrap();
        rest = tail;
    }
    writer.write(rest).await.unwrap();
    assert!(
        ids_named(&store, &key).await.is_empty(),
        "visible before the commit"
    );
    let location = writer.commit().await.unwrap();

    assert_eq!(location.provider, "gridfs");
    let id = oid(&location);
    assert_eq!(location.path, id.to_hex());
    let back = store.read_all(&location.path).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "content differs");
    assert_eq!(sha256(&back), sha256(&data));

    let stored = files(&store, doc! {"filename": &key}).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id.as_object_id(), Some(id));
    assert_eq!(stored[0].length, data.len() as u64);
    assert_eq!(stored[0].filename.as_deref(), Some(key.as_str()));
    let metadata = stored[0].metadata.clone().expect("metadata");
    assert_eq!(metadata.get_str("branch").unwrap(), "BETA");
    assert_eq!(metadata.get_i32("pos").unwrap(), 1);
    assert_eq!(metadata.get_str("date").unwrap(), "2026-02-09");
    assert_eq!(metadata.get_str("fileType").unwrap(), "rd5000");
    assert_eq!(chunks_of(&db, &store, id).await, 3);

    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join(&key);
    let copied = store.copy_to_path(&location, &dest).await.unwrap();
    assert_eq!(copied, data.len() as u64);
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "copied content differs"
    );
    let dir: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dir, [BETA_RD5000], "no temporary file left");

    // A second store on the same database sees the same file.
    let again = GridFsStorage::new(db.clone(), Some(String::new()));
    assert_eq!(
        again.read_all(&location.path).await.unwrap().len(),
        data.len()
    );

    // A chunk gone missing is an error (not short data), and a failed copy leaves no file.
    db.collection::<Document>("rawfiles.chunks")
        .delete_one(doc! {"files_id": id, "n": 1})
        .await
        .unwrap();
    let damaged = store.read_all(&location.path).await.unwrap_err();
    assert!(!damaged.is_transient(), "{damaged}");
    let second_dest = dest.with_file_name("copy.csv");
    let failed = store
        .copy_to_path(&location, &second_dest)
        .await
        .unwrap_err();
    assert!(!failed.is_transient(), "{failed}");
    assert!(!second_dest.exists());
    let dir: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        dir,
        [BETA_RD5000],
        "no temporary file left after a failed copy"
    );
}

/// Aborting (after whole chunks were written, or before any) and dropping the writer leave
/// no files document and no chunks, and an earlier complete copy stays.
#[tokio::test]
async fn abort_and_drop_leave_nothing_and_keep_the_previous_file() {
    let (_mongo, db) = database("gridfs_abort").await;
    let store = GridFsStorage::new(db.clone(), None);
    let file = name(BETA_RD5000);
    let key = raw_key(&file);
    let old = put(&store, &file, b"old").await;

    // Aborted after one full chunk went to the server.
    let mut writer = store.begin_upload(&file).await.unwrap();
    let id = writer.id();
    assert_eq!(writer.key(), key);
    writer.write(&bytes(CHUNK + 1000, 2)).await.unwrap();
    assert_eq!(
        chunks_of(&db, &store, id).await,
        1,
        "a chunk while uploading"
    );
    assert_eq!(ids_named(&store, &key).await, [old.path.as_str()]);
    RawWriter::abort(Box::new(writer)).await.unwrap();
    assert_eq!(chunks_of(&db, &store, id).await, 0);
    assert!(files(&store, doc! {"_id": id}).await.is_empty());

    // Aborted with everything still buffered.
    let mut writer = store.begin(&file).await.unwrap();
    writer.write(b"tiny").await.unwrap();
    writer.abort().await.unwrap();

    // Dropped mid-upload (a cancelled download): cleaned up in the background.
    let mut writer = store.begin_upload(&file).await.unwrap();
    let dropped = writer.id();
    writer.write(&bytes(CHUNK * 2, 3)).await.unwrap();
    assert_eq!(chunks_of(&db, &store, dropped).await, 2);
    drop(writer);
    eventually(10, "the dropped upload's chunks are deleted", || async {
        chunks_of(&db, &store, dropped).await == 0
            && files(&store, doc! {"_id": dropped}).await.is_empty()
    })
    .await;

    let all = files(&store, doc! {}).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(ids_named(&store, &key).await, [old.path.as_str()]);
    assert_eq!(store.read_all(&old.path).await.unwrap(), b"old");
    assert_eq!(chunks_of(&db, &store, oid(&old)).await, 1);
}

/// A new commit of a name deletes the older revision (file and chunks), so the name and the
/// new location give the new bytes and the old location no longer resolves. Of two uploads
/// of one name, the one committed last stays, whichever began first.
#[tokio::test]
async fn a_new_commit_replaces_the_older_revision() {
    let (_mongo, db) = database("gridfs_replace").await;
    let store = GridFsStorage::new(db.clone(), Some("raw2".into()));
    assert_eq!(store.bucket_name(), "raw2");
    let file = name(IRIGA_RD5000);
    let key = raw_key(&file);

    let first = put(&store, &file, &bytes(CHUNK + 10, 4)).await;
    let second = put(&store, &file, b"second").await;
    assert_ne!(first.path, second.path);
    assert_eq!(ids_named(&store, &key).await, [second.path.as_str()]);
    assert_eq!(store.read_all(&second.path).await.unwrap(), b"second");
    assert_eq!(chunks_of(&db, &store, oid(&first)).await, 0);
    let mut by_name = Vec::new();
    store
        .bucket()
        .open_download_stream_by_name(&key)
        .await
        .unwrap()
        .read_to_end(&mut by_name)
        .await
        .unwrap();
    assert_eq!(by_name, b"second");

    let gone = store.read_all(&first.path).await.unwrap_err();
    assert!(!gone.is_transient(), "{gone}");
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out").join(IRIGA_RD5000);
    store.copy_to_path(&first, &dest).await.unwrap_err();
    assert!(!dest.exists());
    let bad = StorageLocation {
        provider: "gridfs".into(),
        path: "../etc/passwd".into(),
        bucket: None,
    };
    assert!(!store.read_all(&bad.path).await.unwrap_err().is_transient());
    assert!(
        !store
            .copy_to_path(&bad, &dest)
            .await
            .unwrap_err()
            .is_transient()
    );

    // Overlapping uploads: `early` begins first but commits last, and wins.
    let mut early = store.begin(&file).await.unwrap();
    let mut late = store.begin(&file).await.unwrap();
    early.write(b"early").await.unwrap();
    late.write(b"late").await.unwrap();
    let late = late.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let early = early.commit().await.unwrap();
    assert_eq!(ids_named(&store, &key).await, [early.path.as_str()]);
    assert_eq!(store.read_all(&early.path).await.unwrap(), b"early");
    assert!(store.read_all(&late.path).await.is_err());
    assert_eq!(files(&store, doc! {}).await.len(), 1);
}

/// The fetcher streams every file of a POS day from the fake POS server into GridFS with the
/// originals' checksums; the files read back (and materialise locally) byte for byte. A
/// download that keeps failing mid-body leaves nothing in the bucket.
#[tokio::test]
async fn the_fetcher_downloads_a_day_into_gridfs() {
    let (_mongo, db) = database("gridfs_fetch").await;
    let store = GridFsStorage::new(db.clone(), None);

    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir(&served).unwrap();
    for entry in std::fs::read_dir(fixtures().join("fetch")).unwrap() {
        let entry = entry.unwrap();
        let file_name = entry.file_name().into_string().unwrap();
        if file_name.ends_with(".csv") {
            std::fs::copy(entry.path(), served.join(&file_name)).unwrap();
        }
    }
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let fake = FakePos::start(&served, addr, Faults::new()).await.unwrap();
    let mut options = FetchOptions::new(&fake.list_url(), &fake.base_url()).unwrap();
    options.download_timeout = Duration::from_secs(5);
    options.retry.attempts = 3;
    options.retry.initial_backoff = Duration::from_millis(10);
    options.retry.max_backoff = Duration::from_millis(40);
    let client = PosClient::new(options).unwrap();

    let sums: std::collections::BTreeMap<String, String> =
        std::fs::read_to_string(fixtures().join("fetch.sha256"))
            .unwrap()
            .lines()
            .filter_map(|line| line.split_once("  "))
            .map(|(sum, file)| (file.to_string(), sum.to_string()))
            .collect();
    let listing = client
        .list(
            &Branch::parse("BETA").unwrap(),
            PosNo::new(1).unwrap(),
            BusinessDate::parse("2026-02-09").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(listing.files.len(), 7);
    let local = tmp.path().join("materialised");
    for file in &listing.files {
        let stored = client.download(file, &store).await.unwrap();
        let original = std::fs::read(fixtures().join("fetch").join(file.as_str())).unwrap();
        assert_eq!(stored.sha256, sums[file.as_str()], "{file}");
        assert_eq!(stored.size, original.len() as u64);
        assert_eq!(stored.location.provider, "gridfs");
        assert_eq!(
            store.read_all(&stored.location.path).await.unwrap(),
            original
        );
        let key = raw_key(file.name());
        assert_eq!(
            ids_named(&store, &key).await,
            [stored.location.path.as_str()]
        );
        let meta = files(&store, doc! {"filename": &key}).await[0]
            .metadata
            .clone()
            .unwrap();
        assert_eq!(meta.get_str("fileType").unwrap(), file.name().file_type());
        let dest = local.join(&key);
        store.copy_to_path(&stored.location, &dest).await.unwrap();
        assert_eq!(sha256(&std::fs::read(&dest).unwrap()), sums[file.as_str()]);
    }
    assert_eq!(files(&store, doc! {}).await.len(), 7);

    // Downloading again replaces each copy; a chunked body streams the same bytes.
    fake.faults()
        .set(vec![FaultRule::new(Fault::Chunked).on(Target::Download)]);
    let again = client
        .download(&FileRef::parse(BETA_RD5000).unwrap(), &store)
        .await
        .unwrap();
    assert_eq!(again.sha256, sums[BETA_RD5000]);
    assert_eq!(
        ids_named(&store, &raw_key(&name(BETA_RD5000))).await,
        [again.location.path.as_str()]
    );
    assert_eq!(files(&store, doc! {}).await.len(), 7);

    // Every try cut short: three aborted uploads, nothing stored.
    fake.faults()
        .set(vec![FaultRule::new(Fault::Truncate).on(Target::Download)]);
    let err = client
        .download(&FileRef::parse(IRIGA_RD5000).unwrap(), &store)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Truncated { .. }), "{err:?}");
    assert!(
        ids_named(&store, &raw_key(&name(IRIGA_RD5000)))
            .await
            .is_empty()
    );
    assert_eq!(files(&store, doc! {}).await.len(), 7);
}
