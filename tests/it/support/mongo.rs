//! A MongoDB for tests: `MONGO_URI` when set (real MongoDB), otherwise the MongoDB-wire server
//! nx-27017 started on a free port through `tests/support/nx_mongo.py` (Decimal128 patched in).
//! Every test gets its own database.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A MongoDB endpoint for one test.
pub struct TestMongo {
    /// Connection string without a database (`mongodb://127.0.0.1:PORT`).
    pub uri: String,
    /// True when this is real MongoDB (from `MONGO_URI`).
    pub real: bool,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl TestMongo {
    /// `MONGO_URI` if set, else a fresh nx-27017.
    pub fn start() -> TestMongo {
        if let Ok(uri) = std::env::var("MONGO_URI") {
            return TestMongo {
                uri,
                real: true,
                child: None,
                _dir: None,
            };
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "support",
            "nx_mongo.py",
        ]
        .iter()
        .collect();
        let child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--pid-file")
            .arg(dir.path().join("nx.pid"))
            .arg("--log-file")
            .arg(dir.path().join("nx.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with nx-27017 (pip install nx-27017) is required");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nx-27017 did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        TestMongo {
            uri: format!("mongodb://127.0.0.1:{port}"),
            real: false,
            child: Some(child),
            _dir: Some(dir),
        }
    }

    /// A database name unique to this call.
    pub fn unique_db(label: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "fw_{label}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A connected database handle.
    pub async fn database(&self, name: &str) -> mongodb::Database {
        let client = mongodb::Client::with_uri_str(&self.uri).await.unwrap();
        client.database(name)
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
