//! Deleting the app's cached query results after an import.
//!
//! The app caches report totals in its cache database; once a day's rows change, those
//! totals are stale. The handler runs this right after the import, before the job completes,
//! so nobody sees a completed job next to totals computed without its rows, and the job's log
//! says how many entries were cleared (or why they could not be).

/// Deletes the app's cached query results (Redis db 0) after an import, so the app does not
/// serve totals computed before the new rows arrived. Uses `SCAN MATCH`, never `KEYS`.
#[derive(Clone)]
pub struct CacheInvalidation {
    con: crate::redis_conn::RedisConn,
    pattern: String,
}

impl std::fmt::Debug for CacheInvalidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheInvalidation")
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl CacheInvalidation {
    /// Invalidates keys matching `pattern` (glob, as `SCAN MATCH`).
    pub fn new(con: crate::redis_conn::RedisConn, pattern: impl Into<String>) -> Self {
        CacheInvalidation {
            con,
            pattern: pattern.into(),
        }
    }

    /// Deletes every matching key; returns how many were deleted. In Cluster mode each master
    /// holds its own keys and its own `SCAN` cursor, so every master is scanned in turn.
    ///
    /// # Errors
    ///
    /// The first Redis error (connecting, listing the masters, `SCAN`, `UNLINK`): the run
    /// stops there, and keys already unlinked stay deleted.
    pub async fn run(&self) -> Result<u64, redis::RedisError> {
        let mut opened = self.con.opened().await?;
        let masters = opened.masters().await?;
        if masters.is_empty() {
            return self.run_on(None).await;
        }
        let mut deleted = 0;
        for (host, port) in masters {
            deleted += self.run_on(Some((host.as_str(), port))).await?;
        }
        Ok(deleted)
    }

    /// Scans one server (`None`: the connection's own) and unlinks what matches.
    async fn run_on(&self, node: Option<(&str, u16)>) -> Result<u64, redis::RedisError> {
        let mut con = self.con.clone();
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&self.pattern)
                .arg("COUNT")
                .arg(500);
            let (next, keys): (u64, Vec<String>) = match node {
                None => scan.query_async(&mut con).await?,
                Some((host, port)) => {
                    let mut opened = self.con.opened().await?;
                    let reply = opened.query_on_node(&scan, host, port).await?;
                    redis::FromRedisValue::from_redis_value(reply)?
                }
            };
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut con)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
