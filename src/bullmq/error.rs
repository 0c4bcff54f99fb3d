//! Errors of the BullMQ layer, and the one place negative script codes become errors.

/// A negative reply of one of our scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptCode {
    /// -1: the job hash does not exist.
    JobMissing,
    /// -2: the job has no lock.
    LockMissing,
    /// -3: the job is not in the state the script expects (usually `active`).
    NotInState,
    /// -4: the job still has pending children.
    PendingChildren,
    /// -6: the lock belongs to another worker.
    LockMismatch,
    /// -9: the job has failed children.
    FailedChildren,
    /// Any other negative code.
    Other(i64),
}

impl ScriptCode {
    /// Maps a script's integer reply; `None` for non-negative replies.
    pub fn from_reply(code: i64) -> Option<ScriptCode> {
        Some(match code {
            0.. => return None,
            -1 => ScriptCode::JobMissing,
            -2 => ScriptCode::LockMissing,
            -3 => ScriptCode::NotInState,
            -4 => ScriptCode::PendingChildren,
            -6 => ScriptCode::LockMismatch,
            -9 => ScriptCode::FailedChildren,
            other => ScriptCode::Other(other),
        })
    }

    /// True when the code means this worker no longer owns the job: another worker may have
    /// taken it after its lock expired. Such jobs are left alone.
    pub fn is_lock_lost(self) -> bool {
        matches!(
            self,
            ScriptCode::LockMissing | ScriptCode::LockMismatch | ScriptCode::NotInState
        )
    }
}

impl std::fmt::Display for ScriptCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptCode::JobMissing => f.write_str("missing key for job"),
            ScriptCode::LockMissing => f.write_str("missing lock for job"),
            ScriptCode::NotInState => f.write_str("job is not in the expected state"),
            ScriptCode::PendingChildren => f.write_str("job has pending dependencies"),
            ScriptCode::LockMismatch => f.write_str("lock mismatch for job"),
            ScriptCode::FailedChildren => f.write_str("job has failed children"),
            ScriptCode::Other(c) => write!(f, "unknown script code {c}"),
        }
    }
}

/// An error of the BullMQ layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The Redis URL or its TLS files cannot be used.
    #[error("redis URL: {0}")]
    Target(#[from] crate::redis_conn::TargetError),
    /// A script refused the move.
    #[error("{script} for job {job_id}: {code}")]
    Script {
        /// The script name.
        script: &'static str,
        /// What it said.
        code: ScriptCode,
        /// The job the call was about, so logs and `failedReason` name it.
        job_id: String,
    },
    /// A script's reply had an unexpected shape.
    #[error("{script}: unexpected reply: {reason}")]
    Reply {
        /// The script name.
        script: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A job hash field could not be decoded.
    #[error("job {job_id}: cannot decode field {field}: {reason}")]
    Decode {
        /// The job hash field that did not decode.
        field: &'static str,
        /// The job whose hash holds it.
        job_id: String,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Turns a script's integer reply into `Ok(code)` or the matching [`Error::Script`].
    ///
    /// # Errors
    ///
    /// [`Error::Script`] for negative replies.
    pub fn check(script: &'static str, job_id: &str, reply: i64) -> Result<i64, Error> {
        match ScriptCode::from_reply(reply) {
            None => Ok(reply),
            Some(code) => Err(Error::Script {
                script,
                code,
                job_id: job_id.to_string(),
            }),
        }
    }

    /// True for failures worth retrying after a pause: connection trouble, a failover in
    /// progress, a loading or full server (see [`crate::redis_conn::is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Redis(e) => crate::redis_conn::is_transient(e),
            _ => false,
        }
    }
}
