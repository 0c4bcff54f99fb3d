//! The only place BullMQ key names are spelled.
//!
//! All queue keys are `<prefix>:<queue>:<suffix>`; a job's hash is `<prefix>:<queue>:<id>`.

/// Every key of one queue, built once.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// `P:Q:`, the base every job key starts with.
    pub base: String,
    /// `P:Q:wait`: LIST of ready job ids; new jobs are pushed at one end and claims take from
    /// the other, so the queue is FIFO.
    pub wait: String,
    /// `P:Q:active`: LIST of the ids of claimed jobs, each held under `P:Q:<id>:lock` while
    /// its worker runs it. A job here without its lock is what the stalled check looks for.
    pub active: String,
    /// `P:Q:paused`: LIST of ready job ids while a BullMQ 5 queue is paused (a v5 pause renames
    /// `wait` to it); BullMQ 6 never writes it (see `lua/includes/readyListFor.lua`).
    pub paused: String,
    /// `P:Q:prioritized`: ZSET of ready jobs with a priority, scored `priority * 2^32 + pc`,
    /// so a lower priority number is claimed first.
    pub prioritized: String,
    /// `P:Q:pc`: the priority counter (INCR) that keeps jobs of one priority in FIFO order
    /// inside [`QueueKeys::prioritized`].
    pub pc: String,
    /// `P:Q:delayed`: ZSET of jobs waiting for a time (delays, retry backoffs), scored
    /// `due_ms * 4096` plus a sequence number; due ones are promoted on the next claim.
    pub delayed: String,
    /// `P:Q:completed`: ZSET of completed job ids scored by when they finished (ms), trimmed by
    /// `removeOnComplete`.
    pub completed: String,
    /// `P:Q:failed`: ZSET of job ids failed for good, scored by when they failed (ms), trimmed by
    /// `removeOnFail`.
    pub failed: String,
    /// `P:Q:stalled`: SET of the active ids seen by the last stalled check; one still active
    /// and without a lock at the next check has stalled.
    pub stalled: String,
    /// `P:Q:stalled-check`: a throttle key that lives one `stalledInterval`, so one worker of
    /// the fleet runs the stalled check per interval.
    pub stalled_check: String,
    /// `P:Q:limiter`: the rate limiter's count of jobs claimed in the current window; it
    /// expires with the window.
    pub limiter: String,
    /// `P:Q:meta`: HASH of queue-wide settings, mostly written by Node's `Queue`: `paused`,
    /// the global `concurrency` and rate limit (`max`, `duration`), `opts.maxLenEvents` and
    /// `version` (which BullMQ major's pause rule applies).
    pub meta: String,
    /// `P:Q:events`: the STREAM of queue events (`added`, `active`, `completed`, …) that Node's
    /// `QueueEvents` reads.
    pub events: String,
    /// `P:Q:marker`: ZSET that idle workers block on (BZPOPMIN); a member scored 0 means "a job
    /// can be claimed now", a later score the time the next delayed job is due.
    pub marker: String,
    /// `P:Q:repeat`: ZSET of job scheduler ids scored by their latest iteration's time; each
    /// scheduler's settings are in `P:Q:repeat:<id>`.
    pub repeat: String,
    /// `P:Q:id`: the counter Node's `Queue` INCRs for ids of jobs added without one; a
    /// scheduler's new iteration counts here too, as BullMQ's does.
    pub id: String,
    /// `P:Q:waiting-children`: parents waiting for their children (flows).
    pub waiting_children: String,
}

impl QueueKeys {
    /// Keys of queue `queue` under `prefix`.
    pub fn new(prefix: &str, queue: &str) -> QueueKeys {
        let base = format!("{prefix}:{queue}:");
        let k = |suffix: &str| format!("{base}{suffix}");
        QueueKeys {
            wait: k("wait"),
            active: k("active"),
            paused: k("paused"),
            prioritized: k("prioritized"),
            pc: k("pc"),
            delayed: k("delayed"),
            completed: k("completed"),
            failed: k("failed"),
            stalled: k("stalled"),
            stalled_check: k("stalled-check"),
            limiter: k("limiter"),
            meta: k("meta"),
            events: k("events"),
            marker: k("marker"),
            repeat: k("repeat"),
            id: k("id"),
            waiting_children: k("waiting-children"),
            base,
        }
    }

    /// The job hash `P:Q:<id>`.
    pub fn job(&self, id: &str) -> String {
        format!("{}{id}", self.base)
    }

    /// The job's lock `P:Q:<id>:lock`.
    pub fn lock(&self, id: &str) -> String {
        format!("{}{id}:lock", self.base)
    }

    /// The job's log list `P:Q:<id>:logs`.
    pub fn logs(&self, id: &str) -> String {
        format!("{}{id}:logs", self.base)
    }

    /// The job's pending children `P:Q:<id>:dependencies` (a set of child job keys).
    pub fn dependencies(&self, id: &str) -> String {
        format!("{}{id}:dependencies", self.base)
    }

    /// The job's completed children's return values `P:Q:<id>:processed` (child key → JSON).
    pub fn processed(&self, id: &str) -> String {
        format!("{}{id}:processed", self.base)
    }

    /// The job's ignored or tolerated child failures `P:Q:<id>:failed` (child key → reason).
    pub fn failed_children(&self, id: &str) -> String {
        format!("{}{id}:failed", self.base)
    }

    /// The job's children that failed with `failParentOnFailure`, `P:Q:<id>:unsuccessful`.
    pub fn unsuccessful(&self, id: &str) -> String {
        format!("{}{id}:unsuccessful", self.base)
    }

    /// Why a queue without a hash tag cannot run on a Redis Cluster, and what to set.
    pub const HASH_TAG_NEEDED: &'static str = "every key of a queue must hash to one slot: put a \
        hash tag in the prefix or the queue name, for example BULL_PREFIX={bull} (as BullMQ \
        requires of Node's Queue and Worker too)";

    /// True when the keys for `prefix` and `queue` (`prefix:queue:…`) carry a Redis Cluster
    /// hash tag: the first `{` followed, before the suffix, by a `}` with something between,
    /// so every key of the queue hashes to the same slot (Redis' own rule).
    pub fn has_hash_tag(prefix: &str, queue: &str) -> bool {
        let head = format!("{prefix}:{queue}:");
        match head.find('{') {
            Some(open) => head[open + 1..].find('}').is_some_and(|close| close > 0),
            None => false,
        }
    }

    /// The connection name Node gives its workers, `P:<base64(queue)>[:w:<name>]`, which
    /// `Queue.getWorkers()` (and so Bull Board) matches in `CLIENT LIST`.
    pub fn client_name(prefix: &str, queue: &str, worker: Option<&str>) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(queue);
        match worker {
            Some(w) => format!("{prefix}:{b64}:w:{w}"),
            None => format!("{prefix}:{b64}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_bullmq_layout() {
        let k = QueueKeys::new("bull", "fetch");
        assert_eq!(k.wait, "bull:fetch:wait");
        assert_eq!(k.stalled_check, "bull:fetch:stalled-check");
        assert_eq!(k.job("42"), "bull:fetch:42");
        assert_eq!(k.lock("42"), "bull:fetch:42:lock");
        assert_eq!(k.logs("42"), "bull:fetch:42:logs");
        assert_eq!(k.waiting_children, "bull:fetch:waiting-children");
        assert_eq!(k.dependencies("42"), "bull:fetch:42:dependencies");
        assert_eq!(k.processed("42"), "bull:fetch:42:processed");
        assert_eq!(k.failed_children("42"), "bull:fetch:42:failed");
        assert_eq!(k.unsuccessful("42"), "bull:fetch:42:unsuccessful");
    }

    #[test]
    fn hash_tags_are_found_as_redis_finds_them() {
        assert!(QueueKeys::has_hash_tag("{bull}", "fetch"));
        assert!(QueueKeys::has_hash_tag("bull", "{fetch}"));
        assert!(QueueKeys::has_hash_tag("app{x}", "fetch"));
        assert!(!QueueKeys::has_hash_tag("bull", "fetch"));
        // `{}` is no tag: Redis hashes the whole key.
        assert!(!QueueKeys::has_hash_tag("{}bull", "fetch"));
        assert!(!QueueKeys::has_hash_tag("{bull", "fetch"));
        assert!(!QueueKeys::has_hash_tag("bull}", "{fetch"));
    }

    #[test]
    fn client_name_matches_node() {
        assert_eq!(
            QueueKeys::client_name("bull", "fetch", None),
            "bull:ZmV0Y2g="
        );
        assert_eq!(
            QueueKeys::client_name("bull", "fetch", Some("w1")),
            "bull:ZmV0Y2g=:w:w1"
        );
    }
}
