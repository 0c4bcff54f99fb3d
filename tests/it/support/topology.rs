//! Production Redis shapes on loopback, each process started here and stopped (by its pid) on
//! drop: a server with any extra settings (TLS, ACL users, `replicaof`), test certificates
//! made with `openssl`, a Sentinel group, and the lossless switch of the primary.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` (or sentinel) process with its own directory.
pub struct Node {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Node {
    /// Starts `redis-server` with `conf` (config file lines) on a free port; `sentinel` runs it
    /// as a sentinel. Returns once the port accepts connections.
    pub fn start(root: &Path, name: &str, conf: &[String], sentinel: bool) -> Node {
        let port = free_port();
        Node::start_on(root, name, port, conf, sentinel)
    }

    pub fn start_on(root: &Path, name: &str, port: u16, conf: &[String], sentinel: bool) -> Node {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = format!("bind 127.0.0.1\ndir {}\nsave \"\"\n", dir.display());
        if !conf.iter().any(|l| l.starts_with("port ")) {
            text.push_str(&format!("port {port}\n"));
        }
        for line in conf {
            text.push_str(line);
            text.push('\n');
        }
        let file = dir.join("node.conf");
        std::fs::write(&file, text).unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.arg(&file);
        if sentinel {
            cmd.arg("--sentinel");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Node { port, dir, child }
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost machine would: what it had not
    /// replicated is gone, and its clients' connections are reset.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// A connection as the default user with `password` (`requirepass`).
    pub async fn con_as(&self, db: u8, password: &str) -> MultiplexedConnection {
        redis::Client::open(format!("redis://:{password}@127.0.0.1:{}/{db}", self.port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// A plain connection (no TLS, default user).
    pub async fn con(&self, db: u8) -> MultiplexedConnection {
        redis::Client::open(self.url(db))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates made by `openssl` for one test: a CA, a server certificate for 127.0.0.1 and
/// localhost, and a client certificate, all signed by the CA.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn make(dir: &Path) -> Certs {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl must be installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=fetch-worker test CA",
        ]);
        run(&ca);
        for (who, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.join(format!("{who}.ext")), ext).unwrap();
            let key = format!("{who}.key");
            let csr = format!("{who}.csr");
            let crt = format!("{who}.crt");
            let extfile = format!("{who}.ext");
            let mut req = vec!["req"];
            req.extend_from_slice(&ec);
            req.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
            run(&req);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ]);
        }
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `INFO replication` as text.
pub async fn replication(con: &mut MultiplexedConnection) -> String {
    redis::cmd("INFO")
        .arg("replication")
        .query_async(con)
        .await
        .unwrap()
}

pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Pauses writes on `old` (all of them, for at most `pause`) and waits until the replica
/// `new` has every write `old` acknowledged. Returns once it is safe to promote `new`.
pub async fn pause_and_catch_up(
    old: &mut MultiplexedConnection,
    new: &mut MultiplexedConnection,
    pause: Duration,
) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("WRITE")
        .query_async(old)
        .await
        .unwrap();
    let master_offset: u64 = info_field(&replication(old).await, "master_repl_offset")
        .unwrap()
        .parse()
        .unwrap();
    let started = Instant::now();
    loop {
        let info = replication(new).await;
        let offset: u64 = info_field(&info, "slave_repl_offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        if offset >= master_offset {
            return;
        }
        assert!(started.elapsed() < pause, "the replica did not catch up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Makes `old` a replica of `new_port` and ends the write pause: writes that waited on `old`
/// now fail with `READONLY` instead of landing on a server about to lose them.
pub async fn demote(old: &mut MultiplexedConnection, new_port: u16) {
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(new_port)
        .query_async(old)
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(old)
        .await
        .unwrap();
}

/// Waits until `con`'s server reports `master_link_status:up` (a replica in sync).
pub async fn wait_in_sync(con: &mut MultiplexedConnection) {
    let started = Instant::now();
    loop {
        let info = replication(con).await;
        if info_field(&info, "master_link_status") == Some("up") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replica never synced: {info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Redis Cluster of three masters, each with one replica, on loopback (`redis-cli --cluster
/// create`), every node reporting `cluster_state:ok` and knowing its replica in sync.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

/// A free port whose cluster bus port (`port + 10000`) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    pub async fn start(root: &Path) -> Cluster {
        let nodes: Vec<Node> = (0..6)
            .map(|i| {
                Node::start_on(
                    root,
                    &format!("c{i}"),
                    free_cluster_port(),
                    &[
                        "cluster-enabled yes".into(),
                        "cluster-config-file nodes.conf".into(),
                        "cluster-node-timeout 2000".into(),
                        "appendonly no".into(),
                    ],
                    false,
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed");
        assert!(
            out.status.success(),
            "cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        let started = Instant::now();
        for n in &cluster.nodes {
            let mut con = n.con(0).await;
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut con)
                    .await
                    .unwrap();
                let role = info_field(&replication(&mut con).await, "role").map(str::to_owned);
                let synced = role.as_deref() == Some("master")
                    || info_field(&replication(&mut con).await, "master_link_status") == Some("up");
                if info_field(&info, "cluster_state") == Some("ok")
                    && info_field(&info, "cluster_known_nodes") == Some("6")
                    && synced
                {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "cluster never became ok: {info}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster
    }

    /// `redis+cluster://` with every node but `except` as a seed.
    pub fn url_without(&self, except: u16) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.port != except)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The node with `port`.
    pub fn node(&self, port: u16) -> &Node {
        self.nodes.iter().find(|n| n.port == port).unwrap()
    }

    /// The master owning `key`'s slot and its replica (if `ask` knows one yet), as ports, read
    /// from `CLUSTER NODES` on `ask` (any node).
    pub async fn owner_of(&self, ask: u16, key: &str) -> (u16, Option<u16>) {
        let mut con = self.node(ask).con(0).await;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut con)
            .await
            .unwrap();
        let port_of = |addr: &str| -> u16 {
            addr.split('@')
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let mut master: Option<(String, u16)> = None;
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if !f[2].contains("master") {
                continue;
            }
            let owns = f[8..].iter().any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                match (a.parse::<u16>(), b.parse::<u16>()) {
                    (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                    _ => false,
                }
            });
            if owns {
                master = Some((f[0].to_string(), port_of(f[1])));
            }
        }
        let (id, master_port) = master.expect("no master owns the slot");
        let replica = nodes
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f[2].contains("slave") && f[3] == id)
            .map(|f| port_of(f[1]));
        (master_port, replica)
    }
}
