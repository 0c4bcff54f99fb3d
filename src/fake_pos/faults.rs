//! Injectable faults of the fake POS server: what goes wrong, for which requests, how often.
//!
//! A [`Faults`] handle is shared between the server and whoever controls it (a test holding
//! the handle, or the `POST /__faults` admin endpoint), so faults can be changed while the
//! server runs. Rules are JSON-serialisable; the same JSON is accepted by `--faults` and the
//! admin endpoint:
//!
//! ```json
//! [{"fault": "status", "status": 500, "target": "download", "path": "rd5000", "times": 2},
//!  {"fault": "delay", "ms": 1500, "target": "list"},
//!  {"fault": "truncate"}, {"fault": "chunked"}, {"fault": "reset", "times": 1},
//!  {"fault": "html"},
//!  {"fault": "error_body"}, {"fault": "list_body", "body": "../x,a_B_1_..."},
//!  {"fault": "status", "status": 503, "target": "list", "chance": 0.1},
//!  {"fault": "redirect", "location": "http://elsewhere/fetch_list2.php", "status": 302}]
//! ```
//!
//! # Matching
//!
//! A rule applies to a request when its `target` matches (`list`, `download` or `any`, the
//! default) and, if `path` is given, the request path contains it. `times` limits a rule to
//! the next N matching requests ("fail twice then succeed"); without it the rule applies to
//! every matching request. `chance` (0 to 1) makes a rule apply to each matching request with
//! that probability (`{"fault": "reset", "chance": 0.1}`: one request in ten, at random, as a
//! flaky network would); without it the rule always applies. For each request, every matching `delay` rule is applied (their
//! waits add up), then the **first** matching other rule decides the answer. Each rule that
//! applied uses up one of its `times`; a rule with none left is removed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Answer 200 with an HTML page (as a proxy or a PHP error page would).
    Html,
    /// Answer 200 with the error text the legacy endpoint was seen to return.
    ErrorBody,
    /// Answer 200 with this body instead of the real list (or file).
    ListBody {
        /// The body to send as is (names of other days, a malformed list, …).
        body: String,
    },
    /// Answer with this HTTP status and a short text body.
    Status {
        /// The status code.
        status: u16,
    },
    /// Wait this long before answering.
    Delay {
        /// How long to wait, in milliseconds.
        ms: u64,
    },
    /// Declare the full `Content-Length`, send half of the body, then close the connection.
    Truncate,
    /// Send the normal body without `Content-Length` (chunked, in 4 KiB pieces), as a
    /// streaming server would: the client cannot know the size in advance.
    Chunked,
    /// Reset the connection (TCP RST) without answering.
    Reset,
    /// Answer with a redirect to `location` (any URL: another server, another scheme, a path
    /// here), as a misconfigured or hijacked POS server would.
    Redirect {
        /// The `Location` header.
        location: String,
        /// The status: 301, 302 (the default), 303, 307 or 308.
        #[serde(default = "default_redirect_status")]
        status: u16,
    },
}

fn default_redirect_status() -> u16 {
    302
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The list call, `POST /fetch_list2.php`.
    List,
    /// `GET /<file name>`.
    Download,
    /// The list call and every download (the default).
    #[default]
    Any,
}

impl Target {
    fn covers(self, request: Target) -> bool {
        self == Target::Any || self == request
    }
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// What goes wrong.
    #[serde(flatten)]
    pub fault: Fault,
    /// Which kind of request.
    #[serde(default)]
    pub target: Target,
    /// Only requests whose path contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only the next N matching requests; every one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// The probability (0 to 1) that the rule applies to a matching request; always when
    /// absent. A request it skips uses none of its `times`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chance: Option<f64>,
}

impl FaultRule {
    /// A rule applying `fault` to every request.
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            target: Target::Any,
            path: None,
            times: None,
            chance: None,
        }
    }

    /// Only for requests of this kind.
    pub fn on(mut self, target: Target) -> FaultRule {
        self.target = target;
        self
    }

    /// Only for requests whose path contains `part`.
    pub fn path(mut self, part: impl Into<String>) -> FaultRule {
        self.path = Some(part.into());
        self
    }

    /// Only for the next `n` matching requests.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }

    /// Only for each matching request with probability `p` (clamped to 0..=1).
    pub fn chance(mut self, p: f64) -> FaultRule {
        self.chance = Some(p.clamp(0.0, 1.0));
        self
    }

    fn matches(&self, target: Target, path: &str) -> bool {
        self.times != Some(0)
            && self.target.covers(target)
            && self.path.as_deref().is_none_or(|p| path.contains(p))
    }
}

/// A `--faults` or `POST /__faults` value that is not valid JSON of rules.
#[derive(Debug, thiserror::Error)]
#[error("invalid fault spec: {0}")]
pub struct FaultSpecError(#[from] serde_json::Error);

/// What the server does for one request, decided by [`Faults::plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Wait this long first.
    pub delay: Duration,
    /// Then answer this way instead of normally.
    pub fault: Option<Fault>,
}

/// A shared, changeable set of fault rules. Clones share the same rules.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRule>>>,
}

impl Faults {
    /// An empty rule set: every request is answered normally until rules are set.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// A rule set holding `rules` from the start, as [`Faults::set`] would.
    pub fn with_rules(rules: Vec<FaultRule>) -> Faults {
        let faults = Faults::new();
        faults.set(rules);
        faults
    }

    /// Parses JSON: one rule object or an array of them.
    ///
    /// # Errors
    ///
    /// [`FaultSpecError`] for anything else.
    pub fn parse_rules(spec: &str) -> Result<Vec<FaultRule>, FaultSpecError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<FaultRule>),
            One(FaultRule),
        }
        let rules = match serde_json::from_str::<OneOrMany>(spec)? {
            OneOrMany::Many(rules) => rules,
            OneOrMany::One(rule) => vec![rule],
        };
        // A typo such as `10` for 10 % would otherwise silently mean "always".
        if let Some(p) = rules
            .iter()
            .filter_map(|r| r.chance)
            .find(|p| !(0.0..=1.0).contains(p))
        {
            return Err(FaultSpecError(serde::de::Error::custom(format!(
                "chance must be between 0 and 1, got {p}"
            ))));
        }
        Ok(rules)
    }

    /// The rules, poisoning ignored: a panicking holder cannot leave them half-changed, since
    /// every change is a single assignment or push.
    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    /// Replaces all rules.
    pub fn set(&self, rules: Vec<FaultRule>) {
        *self.lock() = rules;
    }

    /// Removes all rules.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The rules still in force (with their remaining `times`).
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// Decides what to do for one request, using up the rules that apply.
    pub fn plan(&self, target: Target, path: &str) -> Plan {
        let mut rules = self.lock();
        let mut plan = Plan::default();
        let mut used = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !rule.matches(target, path) {
                continue;
            }
            // `fastrand::f64()` is in [0, 1): a chance of 1 always applies, 0 never.
            if rule.chance.is_some_and(|p| fastrand::f64() >= p) {
                continue;
            }
            match &rule.fault {
                Fault::Delay { ms } => {
                    plan.delay += Duration::from_millis(*ms);
                    used.push(i);
                }
                other if plan.fault.is_none() => {
                    plan.fault = Some(other.clone());
                    used.push(i);
                }
                _ => {}
            }
        }
        for &i in used.iter().rev() {
            if let Some(n) = rules[i].times.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    rules.remove(i);
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_rule_applies_n_times_then_disappears() {
        let faults = Faults::with_rules(vec![
            FaultRule::new(Fault::Status { status: 500 })
                .on(Target::Download)
                .times(2),
        ]);
        let hit = Some(Fault::Status { status: 500 });
        assert_eq!(faults.plan(Target::List, "/fetch_list2.php").fault, None);
        assert_eq!(faults.plan(Target::Download, "/a").fault, hit);
        assert_eq!(faults.plan(Target::Download, "/b").fault, hit);
        assert_eq!(faults.plan(Target::Download, "/c").fault, None);
        assert!(faults.rules().is_empty());
    }

    #[test]
    fn delays_add_up_and_the_first_other_rule_wins() {
        let faults = Faults::with_rules(vec![
            FaultRule::new(Fault::Delay { ms: 100 }),
            FaultRule::new(Fault::Truncate).path("rd5000").times(1),
            FaultRule::new(Fault::Reset),
            FaultRule::new(Fault::Delay { ms: 50 }).times(1),
        ]);
        let plan = faults.plan(Target::Download, "/a_B_1_rd5000_x");
        assert_eq!(plan.delay, Duration::from_millis(150));
        assert_eq!(plan.fault, Some(Fault::Truncate));
        let plan = faults.plan(Target::Download, "/a_B_1_rd5000_x");
        assert_eq!(plan.delay, Duration::from_millis(100));
        assert_eq!(plan.fault, Some(Fault::Reset));
        assert_eq!(faults.rules().len(), 2);
    }

    #[test]
    fn a_rule_with_a_chance_applies_to_about_that_share_of_requests() {
        let never = Faults::with_rules(vec![FaultRule::new(Fault::Reset).chance(0.0).times(5)]);
        let always = Faults::with_rules(vec![FaultRule::new(Fault::Reset).chance(1.0)]);
        let tenth = Faults::with_rules(vec![
            FaultRule::new(Fault::Reset).on(Target::List).chance(0.1),
        ]);
        let mut hits = 0;
        for _ in 0..10_000 {
            assert_eq!(never.plan(Target::List, "/l").fault, None);
            assert_eq!(always.plan(Target::List, "/l").fault, Some(Fault::Reset));
            assert_eq!(tenth.plan(Target::Download, "/d").fault, None);
            hits += usize::from(tenth.plan(Target::List, "/l").fault.is_some());
        }
        // 1,000 expected, standard deviation 30: these bounds are ten deviations wide.
        assert!(
            (700..=1300).contains(&hits),
            "{hits} of 10,000 requests faulted"
        );
        // A skipped request uses none of the rule's `times`.
        assert_eq!(never.rules()[0].times, Some(5));
    }

    #[test]
    fn a_chance_parses_and_must_be_a_probability() {
        let rules =
            Faults::parse_rules(r#"{"fault":"status","status":503,"target":"list","chance":0.1}"#)
                .expect("rule");
        assert_eq!(
            rules,
            [FaultRule::new(Fault::Status { status: 503 })
                .on(Target::List)
                .chance(0.1)]
        );
        assert_eq!(
            Faults::parse_rules(r#"{"fault":"html"}"#).expect("rule")[0].chance,
            None
        );
        let err = Faults::parse_rules(r#"{"fault":"html","chance":10}"#).expect_err("10");
        assert!(
            err.to_string().contains("chance must be between 0 and 1"),
            "{err}"
        );
        assert!(Faults::parse_rules(r#"{"fault":"html","chance":-0.5}"#).is_err());
    }

    #[test]
    fn rules_parse_from_json_one_or_many() {
        let rules = Faults::parse_rules(
            r#"[{"fault":"status","status":503,"target":"list","times":2},
                {"fault":"list_body","body":"../x"},{"fault":"html"}]"#,
        )
        .expect("rules");
        assert_eq!(
            rules[0],
            FaultRule::new(Fault::Status { status: 503 })
                .on(Target::List)
                .times(2)
        );
        assert_eq!(
            rules[1].fault,
            Fault::ListBody {
                body: "../x".into()
            }
        );
        assert_eq!(rules[2].target, Target::Any);
        let one = Faults::parse_rules(r#"{"fault":"delay","ms":5,"path":"rd"}"#).expect("one");
        assert_eq!(one, [FaultRule::new(Fault::Delay { ms: 5 }).path("rd")]);
        assert!(Faults::parse_rules(r#"{"fault":"nope"}"#).is_err());
        let round = serde_json::to_string(&rules).expect("json");
        assert_eq!(Faults::parse_rules(&round).expect("again"), rules);
    }
}
