//! How the worker reaches Redis: the connection modes chosen by URL, the connection that
//! survives failovers, and the one classification of Redis errors every retry loop uses.
//!
//! # Modes
//!
//! - `redis://[user:password@]host:port/db`: plain TCP, optionally an ACL user.
//! - `rediss://…`: TLS, certificate verification always on. The CA comes from
//!   `REDIS_TLS_CA_FILE` (else the system's roots); `REDIS_TLS_CERT_FILE` +
//!   `REDIS_TLS_KEY_FILE` add a client certificate (mutual TLS).
//! - `redis+sentinel://[user:password@]s1:26379,s2:26379/mymaster/db`: the master named
//!   `mymaster`, found through the sentinels (the `redis` crate's `sentinel` module,
//!   [`SentinelClient`], asks them and checks with `ROLE` that the node it names is a master).
//!   The user-info authenticates to the data nodes; `?sentinelUsername=…&sentinelPassword=…`
//!   (ioredis' option names) to the sentinels. `rediss+sentinel://` uses TLS for both.
//! - `redis+cluster://[user:password@]seed1:6379,seed2:6379[/0]`: a Redis Cluster reached
//!   through any of the seeds (the `redis` crate's `cluster_async`, which follows `MOVED` and
//!   `ASK`, retries `TRYAGAIN`/`CLUSTERDOWN` and refreshes its slot map). A cluster has only
//!   database 0. `rediss+cluster://` uses TLS; `REDIS_CLUSTER=1` turns a plain `redis://` or
//!   `rediss://` URL into its seed. Every key one script touches must hash to one slot: BullMQ
//!   keys do when the prefix or queue name carries a hash tag (`BULL_PREFIX={bull}`), which the
//!   settings check.
//!
//! # Failover
//!
//! [`RedisConn`] is one multiplexed connection that is replaced, not repaired: an error that
//! says the server behind it is gone or no longer the master ([`needs_reconnect`]: resets,
//! time-outs, `READONLY`, `MASTERDOWN`) drops it, and the next command opens a new one, which
//! in Sentinel mode asks the sentinels again for the current master. The failed command's
//! error still reaches the caller, whose own retry loop (with backoff) decides what follows,
//! using [`is_transient`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionAddr, ErrorKind, IntoConnectionInfo,
    RedisError, RedisFuture, TlsCertificates, TlsMode, Value,
};

use crate::secret::{RedactedUrl, SecretUrl};

/// The default sentinel port, when a sentinel address has none.
pub const SENTINEL_PORT: u16 = 26379;

/// How long opening one connection may take (TCP, TLS, `AUTH`, `SELECT`; in Sentinel mode
/// also asking the sentinels).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a command on a shared connection may wait for its reply. The blocking marker wait
/// has its own connection without this bound.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// At start, the first wait between tries to reach Redis; it doubles up to
/// [`START_MAX_BACKOFF`] and the worker keeps trying until Redis answers.
pub const START_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two tries at start.
pub const START_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Certificate files for `rediss://` (paths as given in the settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the server's certificate (`REDIS_TLS_CA_FILE`); the system's roots
    /// when unset.
    pub ca: Option<PathBuf>,
    /// The client certificate (`REDIS_TLS_CERT_FILE`), for servers that require one.
    pub cert: Option<PathBuf>,
    /// The client certificate's key (`REDIS_TLS_KEY_FILE`).
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// True when no file is set.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// Reads the files.
    ///
    /// # Errors
    ///
    /// [`TargetError::TlsFile`] for an unreadable file, [`TargetError::Invalid`] for a
    /// certificate without its key or the reverse.
    fn load(&self) -> Result<TlsCertificates, TargetError> {
        let read = |name: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| TargetError::TlsFile {
                name,
                path: path.to_path_buf(),
                source,
            })
        };
        let client_tls = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("REDIS_TLS_CERT_FILE", cert)?,
                client_key: read("REDIS_TLS_KEY_FILE", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(TargetError::Invalid(
                    "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together".into(),
                ));
            }
        };
        let root_cert = match &self.ca {
            Some(ca) => Some(read("REDIS_TLS_CA_FILE", ca)?),
            None => None,
        };
        Ok(TlsCertificates {
            client_tls,
            root_cert,
        })
    }
}

/// Why a Redis URL or its TLS files cannot be used. Never holds the URL's credentials.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The URL is not one of the supported forms.
    #[error("{0}")]
    Invalid(String),
    /// A TLS file could not be read.
    #[error("{name} {}: {source}", path.display())]
    TlsFile {
        /// The setting that named the file (`REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`,
        /// `REDIS_TLS_KEY_FILE`).
        name: &'static str,
        /// The path as that setting gave it.
        path: PathBuf,
        /// Why reading it failed (missing, not readable).
        source: std::io::Error,
    },
    /// The `redis` crate refused the settings (bad certificate PEM, say).
    #[error("{0}")]
    Client(#[source] RedisError),
}

/// Where the data lives, as the URL says.
#[derive(Clone)]
enum Topology {
    /// One server (`redis://`, `rediss://`).
    Standalone(Client),
    /// A master found through sentinels.
    Sentinel(SentinelSpec),
    /// A Redis Cluster, reached through its seeds (boxed: the client is large).
    Cluster(Box<ClusterClient>),
}

#[derive(Clone)]
struct SentinelSpec {
    sentinels: Vec<(String, u16)>,
    master: String,
    db: i64,
    username: Option<String>,
    password: Option<String>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
    tls: bool,
}

/// A parsed Redis URL with its TLS material: what [`RedisConn`] connects to.
///
/// `Debug` and [`RedisTarget::redacted`] show the URL without user-info or query.
#[derive(Clone)]
pub struct RedisTarget {
    url: SecretUrl,
    topology: Topology,
    db: i64,
    certs: Option<TlsCertificates>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisTarget({})", self.url)
    }
}

impl RedisTarget {
    /// Parses `url` (see the module doc for the forms), reading `tls`' files when the URL uses
    /// TLS.
    ///
    /// # Errors
    ///
    /// [`TargetError`] naming what is wrong, without the URL's credentials.
    pub fn parse(url: &str, tls: &TlsFiles) -> Result<RedisTarget, TargetError> {
        if url.contains('#') {
            return Err(TargetError::Invalid(
                "a Redis URL takes no #fragment (certificate verification cannot be turned off)"
                    .into(),
            ));
        }
        let (scheme, _) = url
            .split_once("://")
            .ok_or_else(|| TargetError::Invalid("not a URL: expected scheme://…".into()))?;
        let scheme = scheme.to_ascii_lowercase();
        let uses_tls = scheme.starts_with("rediss");
        let certs = if uses_tls && !tls.is_empty() {
            Some(tls.load()?)
        } else {
            None
        };
        let (topology, db) = match scheme.as_str() {
            "redis" | "rediss" => {
                check_server_url(url).map_err(|why| TargetError::Invalid(why.to_string()))?;
                let info = url.into_connection_info().map_err(|_| {
                    TargetError::Invalid("not a valid redis:// or rediss:// URL".into())
                })?;
                let db = info.redis_settings().db();
                let client = match &certs {
                    Some(c) => Client::build_with_tls(info, c.clone()),
                    None => Client::open(info),
                }
                .map_err(TargetError::Client)?;
                (Topology::Standalone(client), db)
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let spec = parse_sentinel(url, uses_tls)?;
                let db = spec.db;
                (Topology::Sentinel(spec), db)
            }
            "redis+cluster" | "rediss+cluster" => {
                let client = cluster_client(url, uses_tls, certs.as_ref())?;
                (Topology::Cluster(Box::new(client)), 0)
            }
            other => {
                return Err(TargetError::Invalid(format!(
                    "unsupported scheme {other}://: use redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://"
                )));
            }
        };
        let target = RedisTarget {
            url: SecretUrl::new(url.to_string()),
            topology,
            db,
            certs,
        };
        // Building the sentinel client checks the addresses and certificates now, not at the
        // first connection.
        target.sentinel_client()?;
        Ok(target)
    }

    /// [`RedisTarget::parse`], where `cluster` (`REDIS_CLUSTER=1`) reads a plain `redis://` or
    /// `rediss://` URL as the seed of a Redis Cluster.
    ///
    /// # Errors
    ///
    /// As [`RedisTarget::parse`].
    pub fn parse_maybe_cluster(
        url: &str,
        tls: &TlsFiles,
        cluster: bool,
    ) -> Result<RedisTarget, TargetError> {
        if !cluster {
            return RedisTarget::parse(url, tls);
        }
        let lower = url.to_ascii_lowercase();
        let rest = if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            url.split_once("://").map(|(_, r)| r).unwrap_or(url)
        } else if lower.starts_with("redis+cluster://") || lower.starts_with("rediss+cluster://") {
            return RedisTarget::parse(url, tls);
        } else {
            return Err(TargetError::Invalid(
                "REDIS_CLUSTER=1 takes a redis:// or rediss:// URL (or write redis+cluster://)"
                    .into(),
            ));
        };
        let scheme = if lower.starts_with("rediss") {
            "rediss+cluster"
        } else {
            "redis+cluster"
        };
        RedisTarget::parse(&format!("{scheme}://{rest}"), tls)
    }

    /// The same server (or the same sentinel master) with database `db`: the default of
    /// `REDIS_CACHE_URL` is database 0 of the job server. A cluster has only database 0, so
    /// it stays as it is.
    pub fn with_db(&self, db: i64) -> RedisTarget {
        let url = self.url.expose();
        let mut out = self.clone();
        if self.is_cluster() {
            return out;
        }
        out.db = db;
        match &mut out.topology {
            Topology::Cluster(_) => {}
            Topology::Standalone(client) => {
                let info = client.get_connection_info().clone();
                let settings = info.redis_settings().clone().set_db(db);
                let info = info.set_redis_settings(settings);
                let rebuilt = match &self.certs {
                    Some(c) => Client::build_with_tls(info.clone(), c.clone()),
                    None => Client::open(info.clone()),
                };
                // Only the database changed, so the client builds as the original did.
                if let Ok(c) = rebuilt {
                    *client = c;
                }
                let mut parsed = redis::parse_redis_url(url);
                if let Some(u) = parsed.as_mut() {
                    u.set_path(&format!("/{db}"));
                }
                out.url = SecretUrl::new(parsed.map(|u| u.to_string()).unwrap_or(url.clone()));
            }
            Topology::Sentinel(spec) => {
                spec.db = db;
                let (head, query) = match url.find('?') {
                    Some(at) => (&url[..at], &url[at..]),
                    None => (url.as_str(), ""),
                };
                let (scheme, rest) = head.split_once("://").unwrap_or(("", head));
                let hosts_end = rest.find('/').unwrap_or(rest.len());
                out.url = SecretUrl::new(format!(
                    "{scheme}://{}/{}/{db}{query}",
                    &rest[..hosts_end],
                    spec.master
                ));
            }
        }
        out
    }

    /// The URL without credentials, for logs and errors.
    pub fn redacted(&self) -> RedactedUrl {
        self.url.redacted()
    }

    /// The database number.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// True for a Sentinel URL.
    pub fn is_sentinel(&self) -> bool {
        matches!(self.topology, Topology::Sentinel(_))
    }

    /// True for a Redis Cluster URL.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster(_))
    }

    fn sentinel_client(&self) -> Result<Option<SentinelClient>, TargetError> {
        let Topology::Sentinel(spec) = &self.topology else {
            return Ok(None);
        };
        let addrs = spec.sentinels.iter().map(|(host, port)| {
            if spec.tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let mut b = SentinelClientBuilder::new(addrs, &spec.master, SentinelServerType::Master)
            .map_err(TargetError::Client)?
            .set_client_to_redis_db(spec.db);
        if let Some(u) = &spec.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &spec.password {
            b = b.set_client_to_redis_password(p);
        }
        if let Some(u) = &spec.sentinel_username {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &spec.sentinel_password {
            b = b.set_client_to_sentinel_password(p);
        }
        if spec.tls {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(c) = &self.certs {
                b = b
                    .set_client_to_redis_certificates(c.clone())
                    .set_client_to_sentinel_certificates(c.clone());
            }
        }
        b.build().map(Some).map_err(TargetError::Client)
    }
}

/// Reads a Sentinel URL,
/// `redis+sentinel://[user:pass@]h1[:p1],h2[:p2]/master[/db][?sentinelUsername=…&sentinelPassword=…]`:
/// the sentinels (port 26379 when none is given), the master's name, the db (0 when absent),
/// the master's credentials from the user-info and the sentinels' own from the query.
fn parse_sentinel(url: &str, tls: bool) -> Result<SentinelSpec, TargetError> {
    let bad = |why: &str| TargetError::Invalid(format!("Sentinel URL: {why}"));
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut sentinels = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| bad(&format!("bad port in {host}")))?;
                (n, port)
            }
            _ => (host, SENTINEL_PORT),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() {
            return Err(bad("empty sentinel host"));
        }
        sentinels.push((name.to_string(), port));
    }
    if sentinels.is_empty() {
        return Err(bad(
            "no sentinel address (redis+sentinel://host:26379,…/master/db)",
        ));
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let master = segments
        .next()
        .ok_or_else(|| bad("no master name (redis+sentinel://host:26379/mymaster/1)"))?;
    let master = percent_decode(master).ok_or_else(|| bad("bad %-encoding in the master name"))?;
    let db = match segments.next() {
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| bad("the database must be a number"))?,
        None => 0,
    };
    if segments.next().is_some() {
        return Err(bad("expected /master/db after the addresses"));
    }
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let decode =
                |s: &str| percent_decode(s).ok_or_else(|| bad("bad %-encoding in the credentials"));
            let u = Some(decode(u)?).filter(|u| !u.is_empty());
            let p = p.map(decode).transpose()?.filter(|p| !p.is_empty());
            (u, p)
        }
    };
    let mut spec = SentinelSpec {
        sentinels,
        master,
        db,
        username,
        password,
        sentinel_username: None,
        sentinel_password: None,
        tls,
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "sentinelUsername" => spec.sentinel_username = Some(value.into_owned()),
            "sentinelPassword" => spec.sentinel_password = Some(value.into_owned()),
            other => {
                return Err(bad(&format!(
                    "unknown option {other} (known: sentinelUsername, sentinelPassword)"
                )));
            }
        }
    }
    Ok(spec)
}

/// `redis+cluster://[user:pass@]h1:p1,h2:p2[/0]`: a cluster client with one seed per address.
/// The seeds are only where the slot map is first read; the client then talks to every node.
fn cluster_client(
    url: &str,
    tls: bool,
    certs: Option<&TlsCertificates>,
) -> Result<ClusterClient, TargetError> {
    let bad = |why: &str| TargetError::Invalid(format!("Cluster URL: {why}"));
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    if rest.contains('?') {
        return Err(bad("takes no ?options"));
    }
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(path.trim_end_matches('/'), "" | "0") {
        return Err(bad(
            "a Redis Cluster has only database 0: leave the path out or write /0",
        ));
    }
    let seed_scheme = if tls { "rediss" } else { "redis" };
    let mut seeds = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let seed = format!("{seed_scheme}://{host}/0");
        check_server_url(&seed).map_err(|why| bad(&format!("seed {host}: {why}")))?;
        let info = seed
            .as_str()
            .into_connection_info()
            .map_err(|_| bad(&format!("seed {host} is not host:port")))?;
        seeds.push(info);
    }
    if seeds.is_empty() {
        return Err(bad(
            "no seed address (redis+cluster://host:6379,host2:6379)",
        ));
    }
    let mut b = ClusterClientBuilder::new(seeds).connection_timeout(CONNECT_TIMEOUT);
    if let Some(info) = userinfo {
        let (u, p) = match info.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (info, None),
        };
        let decode =
            |s: &str| percent_decode(s).ok_or_else(|| bad("bad %-encoding in the credentials"));
        if let Some(u) = Some(decode(u)?).filter(|u| !u.is_empty()) {
            b = b.username(u);
        }
        if let Some(p) = p.map(decode).transpose()?.filter(|p| !p.is_empty()) {
            b = b.password(p);
        }
    }
    if tls {
        b = b.tls(TlsMode::Secure);
        if let Some(c) = certs {
            b = b.certs(c.clone());
        }
    }
    b.build().map_err(TargetError::Client)
}

/// Decodes `%XX` escapes; `None` for a broken escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Opens connections to a target: the fixed server, or whatever master the sentinels name now.
/// Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    target: Arc<RedisTarget>,
    /// The sentinel client, behind a lock because a lookup needs `&mut` (it caches its
    /// connections to the sentinels).
    sentinel: Option<Arc<tokio::sync::Mutex<SentinelClient>>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connector({})", self.target.url)
    }
}

impl Connector {
    /// A connector for `target`.
    ///
    /// # Errors
    ///
    /// [`TargetError::Client`] when the sentinel client cannot be built (checked by
    /// [`RedisTarget::parse`] already).
    pub fn new(target: &RedisTarget) -> Result<Connector, TargetError> {
        Ok(Connector {
            sentinel: target
                .sentinel_client()?
                .map(|c| Arc::new(tokio::sync::Mutex::new(c))),
            target: Arc::new(target.clone()),
        })
    }

    /// The target's URL without credentials.
    pub fn redacted(&self) -> RedactedUrl {
        self.target.redacted()
    }

    /// The target this connector opens connections to: callers ask it whether it is a
    /// cluster, or which db it selects.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// A client for the server to talk to now: the fixed one, or the master the sentinels
    /// name (asked on every call, so a failover is followed).
    ///
    /// # Errors
    ///
    /// The sentinels' error (none reachable, master unknown, the named node not a master).
    pub async fn client(&self) -> Result<Client, RedisError> {
        match (&self.target.topology, &self.sentinel) {
            (Topology::Sentinel(_), Some(sentinel)) => {
                sentinel.lock().await.async_get_client().await
            }
            (Topology::Standalone(client), _) => Ok(client.clone()),
            (Topology::Cluster(_), _) => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a Redis Cluster has no single server",
            ))),
            (Topology::Sentinel(_), None) => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "sentinel client missing",
            ))),
        }
    }

    /// Opens a new connection within `connect_timeout` (at most [`CONNECT_TIMEOUT`] per
    /// node), whose replies may take `response_timeout` (`None`: no bound, for the blocking
    /// marker wait). In Cluster mode it is a new cluster connection with connections of its
    /// own to the nodes, so a blocking command on it holds up nothing else.
    ///
    /// # Errors
    ///
    /// The connection error, or an I/O time-out.
    pub async fn open(
        &self,
        connect_timeout: Duration,
        response_timeout: Option<Duration>,
    ) -> Result<AnyConn, RedisError> {
        let attempt = async {
            if let Topology::Cluster(cluster) = &self.target.topology {
                let mut config = ClusterConfig::new().set_connection_timeout(connect_timeout);
                if let Some(t) = response_timeout {
                    config = config.set_response_timeout(t);
                }
                return cluster
                    .get_async_connection_with_config(config)
                    .await
                    .map(AnyConn::Cluster);
            }
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(response_timeout);
            let client = self.client().await?;
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(AnyConn::Single)
        };
        match tokio::time::timeout(connect_timeout.max(CONNECT_TIMEOUT), attempt).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting to Redis timed out",
            )
            .into()),
        }
    }
}

/// One opened connection: to one server, or to a whole cluster (which routes each command to
/// the node owning its keys' slot). Cheap to clone (clones share the connection).
#[derive(Clone)]
pub enum AnyConn {
    /// A multiplexed connection to one server.
    Single(MultiplexedConnection),
    /// A cluster connection.
    Cluster(ClusterConnection),
}

impl AnyConn {
    /// The masters of a cluster (from `CLUSTER SLOTS`), each once; empty for one server.
    ///
    /// # Errors
    ///
    /// The cluster's error.
    pub async fn masters(&mut self) -> Result<Vec<(String, u16)>, RedisError> {
        let AnyConn::Cluster(con) = self else {
            return Ok(Vec::new());
        };
        let slots: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(con).await?;
        let mut out: Vec<(String, u16)> = Vec::new();
        for range in slots {
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(master)) = parts.get(2) else {
                continue;
            };
            let host = master.first().and_then(|v| match v {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                Value::SimpleString(s) => Some(s.clone()),
                _ => None,
            });
            let port = match master.get(1) {
                Some(Value::Int(p)) => u16::try_from(*p).ok(),
                _ => None,
            };
            if let (Some(host), Some(port)) = (host, port)
                && !out.iter().any(|(h, p)| *h == host && *p == port)
            {
                out.push((host, port));
            }
        }
        Ok(out)
    }

    /// Runs `cmd` on the node at `host:port` of a cluster; on one server, runs it there.
    ///
    /// # Errors
    ///
    /// The node's error.
    pub async fn query_on_node(
        &mut self,
        cmd: &redis::Cmd,
        host: &str,
        port: u16,
    ) -> Result<Value, RedisError> {
        match self {
            AnyConn::Single(con) => cmd.query_async(con).await,
            AnyConn::Cluster(con) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_string(),
                    port,
                });
                con.route_command(cmd.clone(), route).await
            }
        }
    }
}

impl ConnectionLike for AnyConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            AnyConn::Single(c) => c.req_packed_command(cmd),
            AnyConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            AnyConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConn::Single(c) => c.get_db(),
            AnyConn::Cluster(c) => c.get_db(),
        }
    }
}

/// True for errors after which the connection must be replaced: the socket is gone or timed
/// out, or the server is no longer the master (`READONLY`: demoted by a failover;
/// `MASTERDOWN`: a replica that lost its master). A new connection goes to the current
/// master (asked from the sentinels in Sentinel mode).
pub fn needs_reconnect(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_connection_refusal()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN"))
}

/// True for errors that pass: connection trouble ([`needs_reconnect`]), a failover in progress
/// (`READONLY`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`), a server loading its data
/// (`LOADING`) or busy with a script (`BUSY`), memory full (`OOM`: back off until trimming or
/// an operator frees some), and the sentinels not knowing a master yet. The same list Redis
/// clients retry (ioredis' `reconnectOnError`, redis-rs' `retry_method`). Everything else
/// (a script's own error, `NOPERM`, a wrong password) is permanent.
pub fn is_transient(e: &RedisError) -> bool {
    needs_reconnect(e)
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "OOM")
        )
        || matches!(
            e.kind(),
            ErrorKind::MasterNameNotFoundBySentinel | ErrorKind::NoValidReplicasFoundBySentinel
        )
}

/// True for errors that retrying at start cannot fix: refused credentials or permissions, a
/// certificate that does not verify, a bad setting. The worker exits with the error instead
/// of waiting forever.
pub fn is_fatal_at_start(e: &RedisError) -> bool {
    if matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::EmptySentinelList
    ) || matches!(e.code(), Some("NOPERM" | "WRONGPASS" | "NOAUTH"))
    {
        return true;
    }
    // rustls' verdicts reach us as I/O errors; their text is the only mark they carry.
    let text = e.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("handshake") || text.contains("unknownissuer")
}

/// The worker's shared connection to one target: a multiplexed connection replaced after any
/// error that [`needs_reconnect`]. Cheap to clone (clones share the connection). Implements
/// [`ConnectionLike`], so every script and command takes it as it took redis-rs' own
/// connection types.
#[derive(Clone)]
pub struct RedisConn {
    inner: Arc<ConnInner>,
}

struct ConnInner {
    connector: Connector,
    /// The current connection and its generation. The lock is held while a connection is
    /// opened, so concurrent callers wait for one new connection instead of opening many.
    slot: tokio::sync::Mutex<Slot>,
    db: i64,
}

#[derive(Default)]
struct Slot {
    con: Option<AnyConn>,
    generation: u64,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConn({})", self.inner.connector.redacted())
    }
}

impl RedisConn {
    /// A connection to `connector`'s target; nothing is opened until the first command.
    pub fn lazy(connector: Connector) -> RedisConn {
        RedisConn {
            inner: Arc::new(ConnInner {
                db: connector.target().db(),
                connector,
                slot: tokio::sync::Mutex::new(Slot::default()),
            }),
        }
    }

    /// Connects to `target`, waiting for Redis as long as it takes: each failed try is logged
    /// with the (redacted) address, then retried after [`START_BACKOFF`], doubling up to
    /// [`START_MAX_BACKOFF`]. `what` is the setting the URL came from (`REDIS_JOB_URL`,
    /// `REDIS_CACHE_URL`), named in the log.
    ///
    /// # Errors
    ///
    /// Errors retrying cannot fix ([`is_fatal_at_start`]): refused credentials, a
    /// certificate that does not verify.
    pub async fn connect(target: &RedisTarget, what: &str) -> Result<RedisConn, RedisError> {
        let connector = Connector::new(target).map_err(|e| match e {
            TargetError::Client(e) => e,
            other => RedisError::from((
                ErrorKind::InvalidClientConfig,
                "bad target",
                other.to_string(),
            )),
        })?;
        let con = RedisConn::lazy(connector);
        let label = crate::startup::server_label("Redis", &target.redacted(), what);
        let backoff = crate::startup::Backoff {
            first: START_BACKOFF,
            max: START_MAX_BACKOFF,
        };
        crate::startup::wait_for(
            &label,
            backoff,
            || con.ping(),
            |e: &RedisError| {
                let cause = once(&e.to_string()).to_string();
                if is_fatal_at_start(e) {
                    crate::startup::Problem::Permanent(cause)
                } else {
                    crate::startup::Problem::Transient(cause)
                }
            },
        )
        .await
        .map_err(|(e, _)| e)?;
        Ok(con)
    }

    /// The connector, for connections of their own (the blocking marker wait).
    pub fn connector(&self) -> &Connector {
        &self.inner.connector
    }

    /// `PING`, answered `PONG` (a `LOADING` server fails it).
    ///
    /// # Errors
    ///
    /// The connection's or the server's error.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut con = self.clone();
        let _: String = redis::cmd("PING").query_async(&mut con).await?;
        Ok(())
    }

    /// Drops the current connection, so the next command opens a new one (and, in Sentinel
    /// mode, asks the sentinels again). For callers that learn otherwise than by an error that
    /// the server is no longer the master (`/health/ready` reading `role:slave`).
    pub async fn reconnect(&self) {
        self.inner.slot.lock().await.con = None;
    }

    /// The current connection (opened now if there is none), for what [`ConnectionLike`]
    /// cannot say: [`AnyConn::masters`] and [`AnyConn::query_on_node`].
    ///
    /// # Errors
    ///
    /// The connection error.
    pub async fn opened(&self) -> Result<AnyConn, RedisError> {
        Ok(self.current().await?.0)
    }

    async fn current(&self) -> Result<(AnyConn, u64), RedisError> {
        let mut slot = self.inner.slot.lock().await;
        if let Some(con) = &slot.con {
            return Ok((con.clone(), slot.generation));
        }
        let con = self
            .inner
            .connector
            .open(CONNECT_TIMEOUT, Some(RESPONSE_TIMEOUT))
            .await?;
        slot.generation += 1;
        slot.con = Some(con.clone());
        Ok((con, slot.generation))
    }

    async fn after_error(&self, generation: u64, e: &RedisError) {
        if needs_reconnect(e) {
            let mut slot = self.inner.slot.lock().await;
            if slot.generation == generation && slot.con.is_some() {
                tracing::warn!(redis = %self.inner.connector.redacted(), error.message = %e,
                    "dropping the Redis connection; the next command reconnects");
                slot.con = None;
            }
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (mut con, generation) = self.current().await?;
            let reply = con.req_packed_command(cmd).await;
            match &reply {
                Err(e) => self.after_error(generation, e).await,
                // Server errors arrive as values; the caller turns them into errors later.
                Ok(Value::ServerError(se)) => {
                    self.after_error(generation, &se.clone().into()).await
                }
                Ok(_) => {}
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (mut con, generation) = self.current().await?;
            let reply = con.req_packed_commands(pipeline, offset, count).await;
            match &reply {
                Err(e) => self.after_error(generation, e).await,
                Ok(values) => {
                    let first = values.iter().find_map(|v| match v {
                        Value::ServerError(se) => Some(se.clone()),
                        _ => None,
                    });
                    if let Some(se) = first {
                        self.after_error(generation, &se.into()).await;
                    }
                }
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}

/// An error text said once: the driver repeats an I/O cause after its own description
/// (`Connection refused (os error 111): Connection refused (os error 111)`).
fn once(text: &str) -> &str {
    match text.split_once(": ") {
        Some((first, rest)) if first == rest => first,
        _ => text,
    }
}

/// What is wrong with a `redis://` / `rediss://` URL, in words that never repeat the URL
/// (it may hold a password).
#[derive(Debug, thiserror::Error, PartialEq)]
enum UrlProblem {
    /// The port is missing its number, out of range, or 0.
    #[error("the port is not a number from 1 to 65535")]
    Port,
    /// Nothing between `//` (or the credentials' `@`) and the port or path.
    #[error("the URL names no host")]
    NoHost,
    /// Any other parse failure, as the URL parser words it (it never quotes the input).
    #[error("not a valid URL ({0})")]
    Syntax(url::ParseError),
    /// The path is not a database number; `shown` is its first 20 characters.
    #[error("the database `{shown}` is not a number: the path is /<db>, for example /1")]
    Database {
        /// The start of the path as written.
        shown: String,
    },
}

/// Checks a `redis://` / `rediss://` URL completely before the driver reads it, so that each
/// mistake gets its own message at start (the driver calls a bad port "not a valid URL" and
/// reads a database it cannot parse as a later failure).
fn check_server_url(url: &str) -> Result<(), UrlProblem> {
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(url::ParseError::InvalidPort) => return Err(UrlProblem::Port),
        Err(url::ParseError::EmptyHost) => return Err(UrlProblem::NoHost),
        Err(e) => return Err(UrlProblem::Syntax(e)),
    };
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlProblem::NoHost);
    }
    if parsed.port() == Some(0) {
        return Err(UrlProblem::Port);
    }
    let db = parsed.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(UrlProblem::Database {
            shown: db.chars().take(20).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> TlsFiles {
        TlsFiles::default()
    }

    /// Issue 15: `redis://127.0.0.1:99999/1` was "not a redis:// URL" and `redis://h/abc`
    /// passed the check; each mistake now has its own message, with no secret in it.
    #[test]
    fn server_urls_are_checked_completely() {
        let err = |url: &str| {
            RedisTarget::parse(url, &none())
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            err("redis://127.0.0.1:99999/1").as_deref(),
            Some("the port is not a number from 1 to 65535")
        );
        let abc = err("redis://:pw@127.0.0.1:6379/abc").unwrap();
        assert!(abc.contains("the database `abc` is not a number"), "{abc}");
        assert!(!abc.contains("pw"), "{abc}");
        assert_eq!(err("redis:///1").as_deref(), Some("the URL names no host"));
        assert!(err("redis://127.0.0.1:6379/1").is_none());
        assert!(err("redis://127.0.0.1:6379").is_none());
        assert!(err("rediss://user:pw@cache.example.com/0").is_none());
    }

    #[test]
    fn a_repeated_cause_is_said_once() {
        let twice = "Connection refused (os error 111): Connection refused (os error 111)";
        assert_eq!(once(twice), "Connection refused (os error 111)");
        assert_eq!(
            once("READONLY: You can't write"),
            "READONLY: You can't write"
        );
    }

    #[test]
    fn sentinel_urls_parse_with_credentials_and_options() {
        let s = parse_sentinel(
            "redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/mymaster/1?sentinelPassword=sp",
            false,
        )
        .unwrap();
        assert_eq!(
            s.sentinels,
            vec![
                ("s1".to_string(), 26380),
                ("s2".to_string(), SENTINEL_PORT),
                ("::1".to_string(), 26381)
            ]
        );
        assert_eq!(s.master, "mymaster");
        assert_eq!(s.db, 1);
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.sentinel_password.as_deref(), Some("sp"));
        assert_eq!(s.sentinel_username, None);
        let s = parse_sentinel("redis+sentinel://:pw@h/m", false).unwrap();
        assert_eq!((s.username, s.password, s.db), (None, Some("pw".into()), 0));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_credentials() {
        for url in [
            "redis+sentinel://u:SECRET@/m/1",
            "redis+sentinel://u:SECRET@h:x/m/1",
            "redis+sentinel://u:SECRET@h:1",
            "redis+sentinel://u:SECRET@h:1/m/one",
            "redis+sentinel://u:SECRET@h:1/m/1?foo=bar",
            "memcached://u:SECRET@h:1",
            "redis://u:SECRET@h:1/0#insecure",
            "u:SECRET@h",
        ] {
            let err = RedisTarget::parse(url, &none()).expect_err(url).to_string();
            assert!(!err.contains("SECRET"), "{url}: {err}");
        }
    }

    #[test]
    fn the_cache_default_is_db_0_of_the_same_server() {
        let t = RedisTarget::parse("redis://u:pw@10.0.0.5:6380/1", &none()).unwrap();
        let c = t.with_db(0);
        assert_eq!(c.db(), 0);
        assert_eq!(c.redacted().as_str(), "redis://***@10.0.0.5:6380/0");
        let Topology::Standalone(client) = &c.topology else {
            panic!()
        };
        let info = client.get_connection_info();
        assert_eq!(info.redis_settings().db(), 0);
        assert_eq!(info.redis_settings().password(), Some("pw"));

        let t = RedisTarget::parse(
            "redis+sentinel://u:pw@s1:1,s2:2/mymaster/1?sentinelPassword=x",
            &none(),
        )
        .unwrap();
        let c = t.with_db(0);
        assert_eq!(
            c.url.expose(),
            "redis+sentinel://u:pw@s1:1,s2:2/mymaster/0?sentinelPassword=x"
        );
        assert!(c.is_sentinel());
        assert_eq!(
            format!("{c:?}"),
            "RedisTarget(redis+sentinel://***@s1:1,s2:2/mymaster/0?***)"
        );
    }

    #[test]
    fn cluster_urls_parse_and_keep_database_0() {
        let t = RedisTarget::parse("redis+cluster://u:SECRET@a:7000,b:7001", &none()).unwrap();
        assert!(t.is_cluster() && t.db() == 0);
        assert_eq!(
            format!("{t:?}"),
            "RedisTarget(redis+cluster://***@a:7000,b:7001)"
        );
        // The cache default stays on the cluster (which has only database 0).
        let c = t.with_db(0);
        assert!(c.is_cluster());
        assert_eq!(c.url.expose(), t.url.expose());
        RedisTarget::parse("rediss+cluster://a:7000/0", &none()).unwrap();
        for (url, why) in [
            ("redis+cluster://u:SECRET@a:7000/1", "database 0"),
            ("redis+cluster://u:SECRET@/", "no seed"),
            ("redis+cluster://u:SECRET@a:99999", "port"),
            ("redis+cluster://a:7000?x=1", "options"),
        ] {
            let err = RedisTarget::parse(url, &none()).expect_err(url).to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains("SECRET"), "{url}: {err}");
        }
        // REDIS_CLUSTER=1 reads a plain URL as a seed.
        let t = RedisTarget::parse_maybe_cluster("redis://a:7000", &none(), true).unwrap();
        assert!(t.is_cluster());
        assert_eq!(t.redacted().as_str(), "redis+cluster://a:7000");
        let t = RedisTarget::parse_maybe_cluster("redis://a:7000/1", &none(), false).unwrap();
        assert!(!t.is_cluster());
        assert!(RedisTarget::parse_maybe_cluster("redis+sentinel://s/m", &none(), true).is_err());
    }

    #[test]
    fn tls_files_are_checked_when_the_url_uses_tls() {
        let missing = TlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = RedisTarget::parse("rediss://h:6380/0", &missing).unwrap_err();
        assert!(err.to_string().contains("REDIS_TLS_CA_FILE"), "{err}");
        // A plain URL ignores them (the other URL may be the TLS one).
        RedisTarget::parse("redis://h:6379/0", &missing).unwrap();
        let half = TlsFiles {
            cert: Some("/x".into()),
            ..TlsFiles::default()
        };
        assert!(RedisTarget::parse("rediss://h/0", &half).is_err());
    }

    #[test]
    fn errors_are_classified_as_redis_clients_do() {
        let server = |code: &str| redis::make_extension_error(code.to_string(), Some("x".into()));
        for code in ["READONLY", "MASTERDOWN"] {
            let e = RedisError::from((ErrorKind::Server(server_kind(code)), "x"));
            assert!(needs_reconnect(&e) && is_transient(&e), "{code}");
        }
        for code in ["LOADING", "TRYAGAIN", "CLUSTERDOWN"] {
            let e = RedisError::from((ErrorKind::Server(server_kind(code)), "x"));
            assert!(is_transient(&e) && !needs_reconnect(&e), "{code}");
        }
        assert!(is_transient(&server("OOM")));
        assert!(!is_transient(&server("ERR")));
        assert!(!is_transient(&server("NOPERM")));
        let reset: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        assert!(needs_reconnect(&reset) && is_transient(&reset));
        let timeout: RedisError = std::io::Error::new(std::io::ErrorKind::TimedOut, "t").into();
        assert!(needs_reconnect(&timeout));
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert!(is_fatal_at_start(&auth));
        assert!(!is_fatal_at_start(&reset));
    }

    fn server_kind(code: &str) -> redis::ServerErrorKind {
        use redis::ServerErrorKind as K;
        match code {
            "READONLY" => K::ReadOnly,
            "MASTERDOWN" => K::MasterDown,
            "LOADING" => K::BusyLoading,
            "TRYAGAIN" => K::TryAgain,
            "CLUSTERDOWN" => K::ClusterDown,
            _ => K::ResponseError,
        }
    }
}
