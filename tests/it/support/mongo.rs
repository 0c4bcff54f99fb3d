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
    port: u16,
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
                port: 0,
                _dir: None,
            };
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = spawn_nx(dir.path(), port);
        TestMongo {
            uri: format!("mongodb://127.0.0.1:{port}"),
            real: false,
            child: Some(child),
            port,
            _dir: Some(dir),
        }
    }

    /// The server's address: the test server's, or the first host of `MONGO_URI` (a proxy in
    /// front of it sees the same traffic).
    pub fn addr(&self) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        if !self.real {
            return ([127, 0, 0, 1], self.port).into();
        }
        let rest = self.uri.trim_start_matches("mongodb://");
        let hosts = rest.split(['/', '?']).next().unwrap_or(rest);
        let host = hosts.rsplit('@').next().unwrap_or(hosts);
        let first = host.split(',').next().unwrap_or(host);
        let first = if first.contains(':') {
            first.to_string()
        } else {
            format!("{first}:27017")
        };
        first
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .expect("MONGO_URI names a reachable host")
    }

    /// A connection string to `addr` (a proxy) with this server's credentials and options.
    pub fn uri_via(&self, addr: std::net::SocketAddr) -> String {
        if !self.real {
            return format!("mongodb://{addr}");
        }
        let rest = self.uri.trim_start_matches("mongodb://");
        let (hosts, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let creds = hosts
            .rsplit_once('@')
            .map(|(c, _)| format!("{c}@"))
            .unwrap_or_default();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!("/{tail}")
        };
        format!("mongodb://{creds}{addr}{tail}")
    }

    /// Stops the server (SIGKILL), as an outage would; [`TestMongo::restart`] brings it back
    /// with the same data on the same port. Only for the test server (a real `MONGO_URI` is
    /// not ours to stop): returns false there.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
                true
            }
            None => false,
        }
    }

    /// Starts the server again after [`TestMongo::stop`].
    pub fn restart(&mut self) {
        if self.real || self.child.is_some() {
            return;
        }
        let dir = self._dir.as_ref().expect("test server has a directory");
        self.child = Some(spawn_nx(dir.path(), self.port));
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

/// Starts nx-27017 with its data in `dir` on `port` and waits until it accepts connections.
fn spawn_nx(dir: &std::path::Path, port: u16) -> Child {
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
        .arg(dir.join("data"))
        .arg("--pid-file")
        .arg(dir.join("nx.pid"))
        .arg("--log-file")
        .arg(dir.join("nx.log"))
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
    child
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
