//! The alert policy: which occurrences alert, which are held and which are folded into digests.
//! Pure logic over `Instant`s, so it is tested with synthetic time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use strata_core::{ErrorClass, Severity};

/// When an alert sink alerts.
///
/// - **Business** errors never alert (they are the user's mistake, not the system's).
/// - **CRITICAL** alerts at once: no escalation threshold applies.
/// - **External** errors alert only when repeated: after `threshold` occurrences of the same
///   fingerprint within `window` (default 5 within 5 minutes); the alert says how many.
/// - Other ERRORs (and whatever else is routed to the sink) alert on their first occurrence.
/// - **Throttling** for every class: after an alert, further occurrences of the same
///   fingerprint within the throttle window (default 5 minutes) are counted, not sent; when the
///   window ends one digest says "occurred 37 more times in the last 5 min". A crash loop
///   therefore pages once, then once per window, never once per crash.
/// - **A budget** per sink (default 20 alerts a minute) for when many *different* errors fire
///   at once (a dependency down, hostile input making every message unique): alerts beyond it
///   are held, and one summary at the end of the minute says how many.
///
/// Severity is part of the fingerprint's identity only through the message and error type: a
/// CRITICAL and an ERROR with the same type and message share a throttle window.
///
/// ```
/// use std::time::Duration;
/// use strata_router::AlertPolicy;
///
/// let policy = AlertPolicy::default()
///     .with_throttle(Duration::from_secs(600))
///     .with_escalation(3, Duration::from_secs(120));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    pub(crate) throttle: Duration,
    pub(crate) threshold: u32,
    pub(crate) window: Duration,
    pub(crate) max_fingerprints: usize,
    pub(crate) budget: u32,
    pub(crate) budget_window: Duration,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            throttle: Duration::from_secs(300),
            threshold: 5,
            window: Duration::from_secs(300),
            max_fingerprints: 1000,
            budget: 20,
            budget_window: Duration::from_secs(60),
        }
    }
}

impl AlertPolicy {
    /// Repeats of a fingerprint within this long after an alert are folded into one digest.
    /// Default: 5 minutes. Zero sends every occurrence.
    #[must_use]
    pub fn with_throttle(mut self, window: Duration) -> Self {
        self.throttle = window;
        self
    }

    /// External errors alert once `threshold` of the same fingerprint occur within `window`.
    /// Default: 5 within 5 minutes. A threshold of 1 alerts on the first; a zero window is
    /// taken as one second.
    #[must_use]
    pub fn with_escalation(mut self, threshold: u32, window: Duration) -> Self {
        self.threshold = threshold.max(1);
        self.window = window.max(Duration::from_secs(1));
        self
    }

    /// At most `alerts` new alerts (first occurrences and escalations; digests are bounded by
    /// them) per `window`; the rest are held and summarised once per window. Default: 20 a
    /// minute. Zero removes the budget.
    #[must_use]
    pub fn with_budget(mut self, alerts: u32, window: Duration) -> Self {
        self.budget = alerts;
        self.budget_window = window.max(Duration::from_secs(1));
        self
    }

    /// How many fingerprints are remembered (those with nothing pending are forgotten first).
    /// Default: 1000.
    #[must_use]
    pub fn with_max_fingerprints(mut self, n: usize) -> Self {
        self.max_fingerprints = n.max(1);
        self
    }
}

/// Why an alert goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The first occurrence.
    First,
    /// An external error that reached the escalation threshold: `count` within `window`.
    Escalated { count: u32, window: Duration },
    /// Repeats folded during a throttle window.
    Digest { count: u64, window: Duration },
    /// Alerts held back by the budget during `window` (`limit` per window).
    Overflow {
        count: u64,
        window: Duration,
        limit: u32,
    },
}

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send an alert now.
    Send(Kind),
    /// Counted into the next digest.
    Fold,
    /// Held: an external error below the escalation threshold.
    Hold,
    /// Never alerts (business class).
    Suppress,
    /// Over the sink's budget: counted into the next summary.
    OverBudget,
}

#[derive(Debug)]
struct Entry<T> {
    last_sent: Option<Instant>,
    folded: u64,
    /// Occurrences of an external error not yet escalated, within the escalation window.
    recent: VecDeque<Instant>,
    last_seen: Instant,
    /// The latest occurrence, shown in the digest.
    sample: Option<T>,
}

/// The sink-wide budget.
#[derive(Debug)]
struct Budget<T> {
    /// When the alerts of the current budget window went out.
    sent: VecDeque<Instant>,
    held: u64,
    held_since: Option<Instant>,
    sample: Option<T>,
}

impl<T> Budget<T> {
    /// Takes one alert from the budget, or counts it as held.
    fn take(&mut self, p: &AlertPolicy, sample: &mut Option<T>, now: Instant) -> bool {
        if p.budget == 0 {
            return true;
        }
        while self
            .sent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= p.budget_window)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < p.budget as usize {
            self.sent.push_back(now);
            return true;
        }
        self.held += 1;
        self.held_since.get_or_insert(now);
        self.sample = sample.take();
        false
    }
}

/// Per-fingerprint state; `T` is the occurrence a digest shows.
#[derive(Debug)]
pub(crate) struct PolicyState<T> {
    policy: AlertPolicy,
    entries: HashMap<u64, Entry<T>>,
    budget: Budget<T>,
}

/// `t + d`, or "never" when that overflows (a huge throttle means "alert once").
fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

impl<T> PolicyState<T> {
    pub(crate) fn new(policy: AlertPolicy) -> Self {
        PolicyState {
            policy,
            entries: HashMap::new(),
            budget: Budget {
                sent: VecDeque::new(),
                held: 0,
                held_since: None,
                sample: None,
            },
        }
    }

    /// Decides about one occurrence of fingerprint `fp` at `now`.
    pub(crate) fn observe(
        &mut self,
        fp: u64,
        severity: Severity,
        class: Option<ErrorClass>,
        sample: T,
        now: Instant,
    ) -> Decision {
        if class == Some(ErrorClass::Business) {
            return Decision::Suppress;
        }
        if !self.entries.contains_key(&fp) && self.entries.len() >= self.policy.max_fingerprints {
            self.evict(now);
        }
        let p = self.policy;
        let e = self.entries.entry(fp).or_insert_with(|| Entry {
            last_sent: None,
            folded: 0,
            recent: VecDeque::new(),
            last_seen: now,
            sample: None,
        });
        e.last_seen = now;
        if e.last_sent
            .is_some_and(|t| now.duration_since(t) < p.throttle)
        {
            e.folded += 1;
            e.sample = Some(sample);
            return Decision::Fold;
        }
        let escalates = class == Some(ErrorClass::External) && severity < Severity::Critical;
        let mut sample = Some(sample);
        let kind = if escalates && p.threshold > 1 {
            while e
                .recent
                .front()
                .is_some_and(|&t| now.duration_since(t) >= p.window)
            {
                e.recent.pop_front();
            }
            e.recent.push_back(now);
            // Bounded even while the budget holds the alert back.
            while e.recent.len() > p.threshold as usize {
                e.recent.pop_front();
            }
            if e.recent.len() < p.threshold as usize {
                return Decision::Hold;
            }
            Kind::Escalated {
                count: p.threshold,
                window: p.window,
            }
        } else {
            Kind::First
        };
        // CRITICAL is never held back by the budget.
        if severity < Severity::Critical && !self.budget.take(&p, &mut sample, now) {
            return Decision::OverBudget;
        }
        e.recent.clear();
        e.last_sent = Some(now);
        e.folded = 0;
        e.sample = None;
        Decision::Send(kind)
    }

    /// Forgets expired entries, then (if still full) the least recently seen one.
    fn evict(&mut self, now: Instant) {
        let p = self.policy;
        self.entries.retain(|_, e| {
            e.folded > 0
                || e.last_sent
                    .is_some_and(|t| now.duration_since(t) < p.throttle)
                || e.recent
                    .back()
                    .is_some_and(|&t| now.duration_since(t) < p.window)
        });
        // Still full: forget the least recently seen, preferring one with no digest pending.
        if self.entries.len() >= p.max_fingerprints
            && let Some(&oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| (e.folded > 0, e.last_seen))
                .map(|(k, _)| k)
        {
            self.entries.remove(&oldest);
        }
    }

    /// The digests due at `now` (or all pending ones, when `all`), each with the latest
    /// occurrence. A digest starts a new throttle window.
    pub(crate) fn due(&mut self, now: Instant, all: bool) -> Vec<(T, Kind)> {
        let p = self.policy;
        let mut out = Vec::new();
        for e in self.entries.values_mut() {
            let Some(sent) = e.last_sent else { continue };
            let due = after(sent, p.throttle).is_some_and(|t| now >= t);
            if e.folded > 0 && (all || due) {
                if let Some(sample) = e.sample.take() {
                    out.push((
                        sample,
                        Kind::Digest {
                            count: e.folded,
                            window: now.duration_since(sent),
                        },
                    ));
                }
                e.folded = 0;
                e.last_sent = Some(now);
            }
        }
        let b = &mut self.budget;
        if let Some(since) = b.held_since
            && (all || after(since, p.budget_window).is_some_and(|t| now >= t))
        {
            if let Some(sample) = b.sample.take() {
                out.push((
                    sample,
                    Kind::Overflow {
                        count: b.held,
                        window: now.duration_since(since),
                        limit: p.budget,
                    },
                ));
            }
            b.held = 0;
            b.held_since = None;
        }
        out
    }

    /// When the next digest or budget summary falls due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let p = self.policy;
        self.entries
            .values()
            .filter(|e| e.folded > 0)
            .filter_map(|e| e.last_sent.and_then(|t| after(t, p.throttle)))
            .chain(
                self.budget
                    .held_since
                    .and_then(|t| after(t, p.budget_window)),
            )
            .min()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn state() -> (PolicyState<u32>, Instant) {
        (
            PolicyState::new(AlertPolicy::default().with_budget(0, MIN)),
            Instant::now(),
        )
    }

    #[test]
    fn business_never_alerts() {
        let (mut s, t0) = state();
        for i in 0..10 {
            let d = s.observe(1, Severity::Critical, Some(ErrorClass::Business), i, t0);
            assert_eq!(d, Decision::Suppress);
        }
    }

    #[test]
    fn critical_alerts_at_once_then_folds_into_a_digest() {
        let (mut s, t0) = state();
        let d = s.observe(1, Severity::Critical, Some(ErrorClass::System), 0, t0);
        assert_eq!(d, Decision::Send(Kind::First));
        for i in 1..=37 {
            let d = s.observe(1, Severity::Critical, Some(ErrorClass::System), i, t0 + MIN);
            assert_eq!(d, Decision::Fold);
        }
        assert!(s.due(t0 + 4 * MIN, false).is_empty());
        assert_eq!(s.next_due(), Some(t0 + 5 * MIN));
        let due = s.due(t0 + 5 * MIN, false);
        assert_eq!(
            due,
            vec![(
                37,
                Kind::Digest {
                    count: 37,
                    window: 5 * MIN
                }
            )]
        );
        // The digest started a new window: a repeat right after is folded again…
        assert_eq!(
            s.observe(1, Severity::Critical, None, 38, t0 + 6 * MIN),
            Decision::Fold
        );
        // …and after a quiet window the next occurrence alerts at once.
        assert_eq!(s.due(t0 + 10 * MIN, false).len(), 1);
        assert_eq!(
            s.observe(1, Severity::Critical, None, 39, t0 + 16 * MIN),
            Decision::Send(Kind::First)
        );
    }

    #[test]
    fn external_escalates_after_threshold_within_window() {
        let (mut s, t0) = state();
        let ext = Some(ErrorClass::External);
        // Four in the window: held.
        for i in 0..4 {
            let d = s.observe(7, Severity::Error, ext, i, t0 + MIN * i);
            assert_eq!(d, Decision::Hold, "occurrence {i}");
        }
        // The first one slid out of the window: still four, held.
        assert_eq!(
            s.observe(7, Severity::Error, ext, 4, t0 + 5 * MIN),
            Decision::Hold
        );
        // Fifth within five minutes: alert, saying how many.
        assert_eq!(
            s.observe(
                7,
                Severity::Error,
                ext,
                5,
                t0 + 5 * MIN + Duration::from_secs(1)
            ),
            Decision::Send(Kind::Escalated {
                count: 5,
                window: 5 * MIN
            })
        );
        // Then throttled like everything else.
        assert_eq!(
            s.observe(7, Severity::Error, ext, 6, t0 + 6 * MIN),
            Decision::Fold
        );
        // A CRITICAL external error skips escalation.
        assert_eq!(
            s.observe(8, Severity::Critical, ext, 0, t0),
            Decision::Send(Kind::First)
        );
    }

    #[test]
    fn unclassified_error_alerts_on_first_and_fingerprints_are_independent() {
        let (mut s, t0) = state();
        assert_eq!(
            s.observe(1, Severity::Error, None, 0, t0),
            Decision::Send(Kind::First)
        );
        assert_eq!(
            s.observe(2, Severity::Error, None, 0, t0),
            Decision::Send(Kind::First)
        );
        assert_eq!(s.observe(1, Severity::Error, None, 1, t0), Decision::Fold);
        assert_eq!(s.due(t0, true).len(), 1, "shutdown sends pending digests");
    }

    #[test]
    fn zero_throttle_sends_every_occurrence() {
        let mut s = PolicyState::new(
            AlertPolicy::default()
                .with_throttle(Duration::ZERO)
                .with_budget(0, MIN),
        );
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(
                s.observe(1, Severity::Error, None, i, t0),
                Decision::Send(Kind::First)
            );
        }
    }

    #[test]
    fn the_budget_holds_back_a_flood_of_distinct_alerts_and_summarises_it() {
        let mut s = PolicyState::new(AlertPolicy::default().with_budget(3, MIN));
        let t0 = Instant::now();
        let sent = (0..10u64)
            .filter(|&fp| {
                s.observe(fp, Severity::Error, None, fp, t0) == Decision::Send(Kind::First)
            })
            .count();
        assert_eq!(sent, 3);
        assert!(s.due(t0 + Duration::from_secs(59), false).is_empty());
        assert_eq!(s.next_due(), Some(t0 + MIN));
        assert_eq!(
            s.due(t0 + MIN, false),
            vec![(
                9,
                Kind::Overflow {
                    count: 7,
                    window: MIN,
                    limit: 3
                }
            )]
        );
        // CRITICAL is never held back.
        assert_eq!(
            s.observe(99, Severity::Critical, None, 99, t0),
            Decision::Send(Kind::First)
        );
        // A new window has room again; a held fingerprint can alert now.
        assert_eq!(
            s.observe(5, Severity::Error, None, 5, t0 + MIN),
            Decision::Send(Kind::First)
        );
    }

    #[test]
    fn a_huge_throttle_means_alert_once_without_overflow() {
        let mut s = PolicyState::new(AlertPolicy::default().with_throttle(Duration::MAX));
        let t0 = Instant::now();
        assert_eq!(
            s.observe(1, Severity::Error, None, 0u32, t0),
            Decision::Send(Kind::First)
        );
        assert_eq!(
            s.observe(1, Severity::Error, None, 1, t0 + MIN),
            Decision::Fold
        );
        assert_eq!(s.next_due(), None);
        assert!(s.due(t0 + 1000 * MIN, false).is_empty());
        assert_eq!(s.due(t0, true).len(), 1, "shutdown still sends the digest");
    }

    #[test]
    fn eviction_keeps_pending_digests() {
        let mut s = PolicyState::new(
            AlertPolicy::default()
                .with_max_fingerprints(2)
                .with_budget(0, MIN),
        );
        let t0 = Instant::now();
        let _ = s.observe(1, Severity::Error, None, 0u32, t0);
        let _ = s.observe(1, Severity::Error, None, 1, t0); // folded: a digest is pending
        let _ = s.observe(2, Severity::Error, None, 0, t0 + Duration::from_secs(1));
        let _ = s.observe(3, Severity::Error, None, 0, t0 + Duration::from_secs(2));
        assert_eq!(
            s.due(t0, true).len(),
            1,
            "fingerprint 1's digest survived eviction"
        );
    }

    #[test]
    fn state_is_bounded() {
        let mut s = PolicyState::new(
            AlertPolicy::default()
                .with_max_fingerprints(100)
                .with_budget(0, MIN),
        );
        let t0 = Instant::now();
        for fp in 0..10_000u64 {
            let _ = s.observe(
                fp,
                Severity::Error,
                None,
                0u32,
                t0 + Duration::from_millis(fp),
            );
        }
        assert!(s.len() <= 100, "{} entries", s.len());
    }
}
