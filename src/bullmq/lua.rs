//! The script loader: our Lua files embedded at compile time, flattened once per process, run
//! by SHA. It knows how to run any script, not what one takes: the typed requests (KEYS and
//! ARGV of each script) are in [`scripts`](super::scripts).
//!
//! Each command lives in `lua/<verb>-<numKeys>.lua`; helpers live in
//! `lua/includes/<function>.lua`, one `local function` each. A line `--!include <name>` pulls a
//! helper in. Flattening inlines helpers depth first, each once, before the line that first
//! asks for it, so a helper's own includes are defined before it.
//!
//! Scripts run with `EVALSHA`; a `NOSCRIPT` reply (a fresh or restarted Redis) falls back to
//! `EVAL` with the body, which also caches it on the server.

use std::collections::HashSet;
use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, Value};

use super::error::Error;

/// The embedded sources: (file stem, text). Commands first, then includes.
pub(crate) const COMMANDS: &[(&str, &str)] = &[
    (
        "moveToActive-10",
        include_str!("../../lua/moveToActive-10.lua"),
    ),
    (
        "moveToFinished-13",
        include_str!("../../lua/moveToFinished-13.lua"),
    ),
    (
        "moveToFinishedBatch-13",
        include_str!("../../lua/moveToFinishedBatch-13.lua"),
    ),
    (
        "moveToDelayed-12",
        include_str!("../../lua/moveToDelayed-12.lua"),
    ),
    ("retryJob-11", include_str!("../../lua/retryJob-11.lua")),
    ("extendLocks-1", include_str!("../../lua/extendLocks-1.lua")),
    (
        "moveStalledJobsToWait-9",
        include_str!("../../lua/moveStalledJobsToWait-9.lua"),
    ),
    (
        "updateProgress-3",
        include_str!("../../lua/updateProgress-3.lua"),
    ),
    ("addLog-2", include_str!("../../lua/addLog-2.lua")),
    ("updateData-1", include_str!("../../lua/updateData-1.lua")),
    (
        "moveJobFromActiveToWait-10",
        include_str!("../../lua/moveJobFromActiveToWait-10.lua"),
    ),
    (
        "updateJobScheduler-12",
        include_str!("../../lua/updateJobScheduler-12.lua"),
    ),
    (
        "moveToWaitingChildren-8",
        include_str!("../../lua/moveToWaitingChildren-8.lua"),
    ),
    (
        "addStandardJob-7",
        include_str!("../../lua/addStandardJob-7.lua"),
    ),
];

/// The embedded helpers: (function name, text).
pub(crate) const INCLUDES: &[(&str, &str)] = &[
    (
        "addDelayMarker",
        include_str!("../../lua/includes/addDelayMarker.lua"),
    ),
    (
        "addWakeMarker",
        include_str!("../../lua/includes/addWakeMarker.lua"),
    ),
    (
        "claimJobs",
        include_str!("../../lua/includes/claimJobs.lua"),
    ),
    (
        "claimNextJob",
        include_str!("../../lua/includes/claimNextJob.lua"),
    ),
    (
        "collectMetrics",
        include_str!("../../lua/includes/collectMetrics.lua"),
    ),
    (
        "delayedScore",
        include_str!("../../lua/includes/delayedScore.lua"),
    ),
    (
        "deferParentFailure",
        include_str!("../../lua/includes/deferParentFailure.lua"),
    ),
    (
        "emitEvent",
        include_str!("../../lua/includes/emitEvent.lua"),
    ),
    (
        "finishJob",
        include_str!("../../lua/includes/finishJob.lua"),
    ),
    (
        "finishJobs",
        include_str!("../../lua/includes/finishJobs.lua"),
    ),
    (
        "leaveActive",
        include_str!("../../lua/includes/leaveActive.lua"),
    ),
    (
        "moveParentToWait",
        include_str!("../../lua/includes/moveParentToWait.lua"),
    ),
    (
        "promoteDueJobs",
        include_str!("../../lua/includes/promoteDueJobs.lua"),
    ),
    (
        "pushReady",
        include_str!("../../lua/includes/pushReady.lua"),
    ),
    (
        "readFinishJob",
        include_str!("../../lua/includes/readFinishJob.lua"),
    ),
    (
        "readFinishShared",
        include_str!("../../lua/includes/readFinishShared.lua"),
    ),
    (
        "readQueueState",
        include_str!("../../lua/includes/readQueueState.lua"),
    ),
    (
        "readyListFor",
        include_str!("../../lua/includes/readyListFor.lua"),
    ),
    (
        "releaseLock",
        include_str!("../../lua/includes/releaseLock.lua"),
    ),
    (
        "releaseParent",
        include_str!("../../lua/includes/releaseParent.lua"),
    ),
    (
        "requeueDeduplicatedNext",
        include_str!("../../lua/includes/requeueDeduplicatedNext.lua"),
    ),
    (
        "removeJobKeys",
        include_str!("../../lua/includes/removeJobKeys.lua"),
    ),
    (
        "trimFinishedJobs",
        include_str!("../../lua/includes/trimFinishedJobs.lua"),
    ),
    (
        "unlinkFromParent",
        include_str!("../../lua/includes/unlinkFromParent.lua"),
    ),
    (
        "updateParentOnFinish",
        include_str!("../../lua/includes/updateParentOnFinish.lua"),
    ),
];

const INCLUDE_MARK: &str = "--!include ";

/// A flattened script ready to run: its name, key count, body and SHA1.
#[derive(Debug)]
pub struct Script {
    name: &'static str,
    num_keys: usize,
    body: String,
    sha: String,
}

impl Script {
    /// Flattens the embedded command `stem` (for example `moveToActive-10`).
    ///
    /// # Panics
    ///
    /// Panics when `stem` is not embedded or an include does not resolve. Both are programming
    /// errors caught by this module's unit tests, never by input.
    fn embedded(stem: &'static str) -> Script {
        let (_, text) = COMMANDS
            .iter()
            .find(|(name, _)| *name == stem)
            .unwrap_or_else(|| panic!("script {stem} is not embedded"));
        let body = flatten(text).unwrap_or_else(|missing| panic!("{stem}: {missing}"));
        let (name, keys) = stem
            .rsplit_once('-')
            .expect("script names end in -<numKeys>");
        let sha = redis::Script::new(&body).get_hash().to_string();
        Script {
            name,
            num_keys: keys.parse().expect("script names end in -<numKeys>"),
            body,
            sha,
        }
    }

    /// The script's name without the key count (`moveToActive`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How many KEYS the script takes: the number its file name ends in
    /// (`moveToFinished-13.lua` → 13). Each wrapper's `keys()` must build exactly this many,
    /// which the wrappers' unit tests check.
    pub fn num_keys(&self) -> usize {
        self.num_keys
    }

    /// Runs the script with `keys` and `args`: `EVALSHA`, then `EVAL` on `NOSCRIPT`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] for connection and server errors; [`Error::Reply`] when the reply does
    /// not decode as `T`.
    pub async fn run<C, T>(
        &self,
        con: &mut C,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<T, Error>
    where
        C: ConnectionLike + Send,
        T: FromRedisValue,
    {
        debug_assert_eq!(keys.len(), self.num_keys, "{}: key count", self.name);
        let call = |verb: &str, first: &str| {
            let mut cmd = Cmd::new();
            cmd.arg(verb).arg(first).arg(keys.len()).arg(keys);
            for a in args {
                cmd.arg(a.as_slice());
            }
            cmd
        };
        tracing::trace!(script = self.name, "eval");
        let reply: Value = match call("EVALSHA", &self.sha).query_async(con).await {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOSCRIPT") => {
                call("EVAL", &self.body).query_async(con).await?
            }
            Err(e) => return Err(e.into()),
        };
        T::from_redis_value(reply).map_err(|e| Error::Reply {
            script: self.name,
            reason: e.to_string(),
        })
    }
}

/// An `--!include` line naming a helper that is not embedded (a typo, or a file missing from
/// `INCLUDES`).
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("no include named `{0}`")]
pub(crate) struct MissingInclude(String);

/// Inlines `--!include` lines recursively, each helper once.
///
/// # Errors
///
/// [`MissingInclude`] for the first include that is not embedded.
pub(crate) fn flatten(text: &str) -> Result<String, MissingInclude> {
    let mut out = String::with_capacity(text.len() * 4);
    let mut seen = HashSet::new();
    inline(text, &mut out, &mut seen)?;
    Ok(out)
}

fn inline<'a>(
    text: &'a str,
    out: &mut String,
    seen: &mut HashSet<&'a str>,
) -> Result<(), MissingInclude> {
    for line in text.lines() {
        match line.strip_prefix(INCLUDE_MARK) {
            Some(name) => {
                let name = name.trim();
                let (known, helper) = INCLUDES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| MissingInclude(name.to_string()))?;
                if seen.insert(known) {
                    inline(helper, out, seen)?;
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// Every embedded command, flattened and hashed once per process: each call then sends only
/// the SHA, and the body only after a `NOSCRIPT`.
#[derive(Debug)]
pub struct Scripts {
    /// `lua/moveToActive-10.lua`, run by
    /// [`MoveToActive`](super::scripts::move_to_active::MoveToActive).
    pub move_to_active: Script,
    /// `lua/moveToFinished-13.lua`, run by
    /// [`MoveToFinished`](super::scripts::move_to_finished::MoveToFinished).
    pub move_to_finished: Script,
    /// `lua/moveToFinishedBatch-13.lua`, run by
    /// [`MoveToFinishedBatch`](super::scripts::move_to_finished_batch::MoveToFinishedBatch).
    pub move_to_finished_batch: Script,
    /// `lua/moveToDelayed-12.lua`, run by
    /// [`MoveToDelayed`](super::scripts::move_to_delayed::MoveToDelayed).
    pub move_to_delayed: Script,
    /// `lua/retryJob-11.lua`, run by
    /// [`RetryJob`](super::scripts::retry_job::RetryJob).
    pub retry_job: Script,
    /// `lua/extendLocks-1.lua`, run by
    /// [`ExtendLocks`](super::scripts::extend_locks::ExtendLocks).
    pub extend_locks: Script,
    /// `lua/moveStalledJobsToWait-9.lua`, run by
    /// [`MoveStalledJobsToWait`](super::scripts::move_stalled_jobs_to_wait::MoveStalledJobsToWait).
    pub move_stalled_jobs_to_wait: Script,
    /// `lua/updateProgress-3.lua`, run by
    /// [`UpdateProgress`](super::scripts::update_progress::UpdateProgress).
    pub update_progress: Script,
    /// `lua/addLog-2.lua`, run by
    /// [`AddLog`](super::scripts::add_log::AddLog).
    pub add_log: Script,
    /// `lua/updateData-1.lua`, run by
    /// [`UpdateData`](super::scripts::update_data::UpdateData).
    pub update_data: Script,
    /// `lua/addStandardJob-7.lua`, run by
    /// [`AddStandardJob`](super::scripts::add_standard_job::AddStandardJob).
    pub add_standard_job: Script,
    /// `lua/moveJobFromActiveToWait-10.lua`, run by
    /// [`MoveJobFromActiveToWait`](super::scripts::move_job_from_active_to_wait::MoveJobFromActiveToWait).
    pub move_job_from_active_to_wait: Script,
    /// `lua/updateJobScheduler-12.lua`, run by
    /// [`UpdateJobScheduler`](super::scripts::update_job_scheduler::UpdateJobScheduler).
    pub update_job_scheduler: Script,
    /// `lua/moveToWaitingChildren-8.lua`, run by
    /// [`MoveToWaitingChildren`](super::scripts::move_to_waiting_children::MoveToWaitingChildren).
    pub move_to_waiting_children: Script,
}

/// The process-wide table, built on first use; a bad file or include fails the first test that
/// touches it (`every_command_flattens_and_has_no_include_left`).
pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    move_to_active: Script::embedded("moveToActive-10"),
    move_to_finished: Script::embedded("moveToFinished-13"),
    move_to_finished_batch: Script::embedded("moveToFinishedBatch-13"),
    move_to_delayed: Script::embedded("moveToDelayed-12"),
    retry_job: Script::embedded("retryJob-11"),
    extend_locks: Script::embedded("extendLocks-1"),
    move_stalled_jobs_to_wait: Script::embedded("moveStalledJobsToWait-9"),
    update_progress: Script::embedded("updateProgress-3"),
    add_log: Script::embedded("addLog-2"),
    update_data: Script::embedded("updateData-1"),
    move_job_from_active_to_wait: Script::embedded("moveJobFromActiveToWait-10"),
    update_job_scheduler: Script::embedded("updateJobScheduler-12"),
    move_to_waiting_children: Script::embedded("moveToWaitingChildren-8"),
    add_standard_job: Script::embedded("addStandardJob-7"),
});

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> &str {
        text.split("]]").next().unwrap_or("")
    }

    #[test]
    fn every_command_flattens_and_has_no_include_left() {
        for (stem, text) in COMMANDS {
            let flat = flatten(text).unwrap();
            assert!(!flat.contains(INCLUDE_MARK), "{stem}");
            assert!(flat.starts_with("--[["), "{stem} must open with its header");
        }
        // Forces every LazyLock entry, so a missing file or a bad name fails here.
        assert_eq!(SCRIPTS.move_to_finished.name(), "moveToFinished");
    }

    #[test]
    fn every_header_has_its_sections_in_order() {
        let sections = ["KEYS:", "ARGV:", "Returns:", "Emits:", "Compat:"];
        for (name, text) in COMMANDS.iter().chain(INCLUDES) {
            let h = header(text);
            assert!(text.starts_with("--[["), "{name}: header first");
            let mut at = 0;
            for s in sections {
                let pos = h[at..].find(s).unwrap_or_else(|| panic!("{name}: no {s}"));
                at += pos;
            }
        }
    }

    #[test]
    fn header_key_count_matches_the_file_name() {
        for (stem, text) in COMMANDS {
            let (_, n) = stem.rsplit_once('-').unwrap();
            let n: usize = n.parse().unwrap();
            let h = header(text);
            let keys = h
                .split("KEYS:")
                .nth(1)
                .unwrap()
                .split("ARGV:")
                .next()
                .unwrap();
            let listed = keys
                .lines()
                .filter(|l| l.trim_start().starts_with('['))
                .count();
            assert_eq!(listed, n, "{stem}: KEYS listed in the header");
            let used = (1..=n).all(|i| text.contains(&format!("KEYS[{i}]")));
            assert!(
                used && !text.contains(&format!("KEYS[{}]", n + 1)),
                "{stem}: KEYS used"
            );
        }
    }

    #[test]
    fn every_include_defines_its_one_function_and_is_used() {
        for (name, text) in INCLUDES {
            let defs = text.matches("local function ").count();
            assert_eq!(defs, 1, "{name}: exactly one local function");
            assert!(text.contains(&format!("local function {name}(")), "{name}");
            let used = COMMANDS.iter().chain(INCLUDES).any(|(_, t)| {
                t.lines()
                    .any(|l| l.trim() == format!("{INCLUDE_MARK}{name}"))
            });
            assert!(used, "{name} is never included");
        }
    }

    #[test]
    fn a_missing_include_is_reported() {
        assert_eq!(
            flatten("--!include nope\n"),
            Err(MissingInclude("nope".to_string()))
        );
    }

    #[test]
    fn helpers_are_inlined_once_and_before_use() {
        let flat = flatten(COMMANDS[1].1).unwrap();
        assert_eq!(flat.matches("local function emitEvent(").count(), 1);
        let def = flat.find("local function readyListFor(").unwrap();
        let use_ = flat.find("local function promoteDueJobs(").unwrap();
        assert!(def < use_);
    }
}
