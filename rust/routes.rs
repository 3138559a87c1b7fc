//! The route state: per-deployment circuit, sliding rate-limit logs, calls in flight and
//! latency average, for a route's N deployments.
//!
//! Same API, results and errors as `chatmodels/_routes/_pystate.py` (its pure-Python twin);
//! the rules are written out in `chatmodels/_routes/_state.py`. Each deployment's state sits
//! behind its own mutex, held for one decision's few operations of pure Rust (no Python
//! call, no allocation beyond a log push), so a thread that blocks on it while attached to
//! the interpreter cannot deadlock with the holder. `in_flight` and `latency` are mirrored in
//! atomics and read without the lock, so choosing a deployment never waits behind a caller.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

/// The rate limits' sliding window, in seconds.
pub const WINDOW: f64 = 60.0;
/// The weight of a new sample in the latency moving average.
pub const LATENCY_ALPHA: f64 = 0.25;
/// Failed trials in a row beyond which the cooldown stops doubling (it is capped long before).
const MAX_LEVEL: i32 = 64;
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Why an acquisition was refused; the values are the twin's `Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Admitted = 0,
    CircuitOpen = 1,
    TrialTaken = 2,
    Concurrency = 3,
    Rpm = 4,
    Tpm = 5,
}

/// How an admitted call ended; the values are the twin's `Outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    NotCounted,
}

/// The answer of an acquisition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Admission {
    pub reason: Reason,
    pub index: i64,
    pub ticket: i64,
    pub wait: Option<f64>,
    pub trial: bool,
}

impl Admission {
    fn refused(reason: Reason, index: usize, wait: Option<f64>) -> Self {
        Admission {
            reason,
            index: index as i64,
            ticket: -1,
            wait,
            trial: false,
        }
    }
}

/// A deployment's limits; None means unlimited.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrency: Option<u64>,
}

/// The breaker's settings (validated by the caller).
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    pub failures: u64,
    pub window: f64,
    pub failure_rate: f64,
    pub min_calls: u64,
    pub cooldown: f64,
    pub max_cooldown: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    pub fn name(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// One deployment's state at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub circuit: Circuit,
    pub seconds_until_close: f64,
    pub in_flight: u64,
    pub rpm_left: Option<u64>,
    pub tpm_left: Option<u64>,
    pub latency: Option<f64>,
}

struct Entry {
    time: f64,
    ticket: u64,
    tokens: u64,
}

/// Everything one decision reads and writes, behind the deployment's mutex.
struct Inner {
    now: f64,
    next_ticket: u64,
    in_flight: u64,
    /// One entry per admitted request still in the window, oldest (and lowest ticket) first.
    log: VecDeque<Entry>,
    log_tokens: u64,
    latency: Option<f64>,
    state: Circuit,
    open_until: f64,
    level: i32,
    streak: u64,
    /// Counted outcomes in the breaker's window: (time, failed), oldest first.
    outcomes: VecDeque<(f64, bool)>,
    failed: u64,
    /// The first ticket of the current closed period: older calls do not count.
    closed_since: u64,
    trial: Option<u64>,
}

impl Inner {
    /// The later of `now` and the latest time seen, which becomes the latest.
    fn advance(&mut self, now: f64) -> f64 {
        if now < self.now {
            self.now
        } else {
            self.now = now;
            now
        }
    }

    fn expire(&mut self, now: f64) {
        while let Some(front) = self.log.front() {
            if front.time + WINDOW > now {
                break;
            }
            self.log_tokens = self.log_tokens.wrapping_sub(front.tokens);
            self.log.pop_front();
        }
    }

    /// None when the rate limits have room for `est` tokens, else (Rpm or Tpm, wait).
    fn rate_wait(&self, limits: &Limits, now: f64, est: u64) -> Option<(Reason, f64)> {
        let mut refusal = None;
        if let Some(rpm) = limits.rpm {
            let count = self.log.len() as u64;
            if count >= rpm {
                let entry = &self.log[(count - rpm) as usize];
                refusal = Some((Reason::Rpm, entry.time + WINDOW - now));
            }
        }
        if let Some(tpm) = limits.tpm {
            let wanted = u128::from(self.log_tokens) + u128::from(est);
            if wanted > u128::from(tpm) {
                let need = wanted - u128::from(tpm);
                let mut wait = f64::INFINITY;
                if est <= tpm {
                    let mut freed: u128 = 0;
                    for entry in &self.log {
                        freed += u128::from(entry.tokens);
                        if freed >= need {
                            wait = entry.time + WINDOW - now;
                            break;
                        }
                    }
                }
                refusal = Some(match refusal {
                    None => (Reason::Tpm, wait),
                    Some((reason, rpm_wait)) => (reason, rpm_wait.max(wait)),
                });
            }
        }
        refusal
    }

    fn open(&mut self, now: f64, duration: f64) {
        self.state = Circuit::Open;
        self.open_until = now + duration;
        self.streak = 0;
        self.outcomes.clear();
        self.failed = 0;
    }
}

struct Deployment {
    limits: Limits,
    logging: bool,
    inner: Mutex<Inner>,
    /// Mirrors of `Inner::in_flight` and `Inner::latency` (f64 bits, NaN for none).
    in_flight: AtomicU64,
    latency: AtomicU64,
}

impl Deployment {
    fn new(limits: Limits) -> Self {
        Deployment {
            limits,
            logging: limits.rpm.is_some() || limits.tpm.is_some(),
            inner: Mutex::new(Inner {
                now: f64::NEG_INFINITY,
                next_ticket: 0,
                in_flight: 0,
                log: VecDeque::new(),
                log_tokens: 0,
                latency: None,
                state: Circuit::Closed,
                open_until: 0.0,
                level: 0,
                streak: 0,
                outcomes: VecDeque::new(),
                failed: 0,
                closed_since: 0,
                trial: None,
            }),
            in_flight: AtomicU64::new(0),
            latency: AtomicU64::new(f64::NAN.to_bits()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held; recover rather than poison forever.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state of one route's deployments, in plain Rust.
pub struct State {
    deployments: Box<[Deployment]>,
    breaker: Option<BreakerSettings>,
    jitter: f64,
    rng: AtomicU64,
}

impl State {
    /// `jitter` must be in [0, 1); the settings must be valid (the Python glue checks).
    pub fn new(
        limits: &[Limits],
        breaker: Option<BreakerSettings>,
        jitter: f64,
        seed: Option<u64>,
    ) -> Self {
        let seed = seed.unwrap_or_else(|| RandomState::new().build_hasher().finish());
        State {
            deployments: limits.iter().map(|&l| Deployment::new(l)).collect(),
            breaker,
            jitter,
            rng: AtomicU64::new(seed),
        }
    }

    pub fn len(&self) -> usize {
        self.deployments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deployments.is_empty()
    }

    /// The next splitmix64 draw as a float in [0, 1), the twin's `_unit`.
    fn unit(&self) -> f64 {
        let state = self
            .rng
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        let mut z = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Take a request, `est` tokens and a slot of deployment `index` (in range), or nothing.
    pub fn try_acquire(&self, index: usize, now: f64, est: u64) -> Admission {
        let d = &self.deployments[index];
        let mut inner = d.lock();
        let now = inner.advance(now);
        let mut trial = false;
        if inner.state != Circuit::Closed {
            if inner.state == Circuit::Open {
                if now < inner.open_until {
                    let wait = inner.open_until - now;
                    return Admission::refused(Reason::CircuitOpen, index, Some(wait));
                }
                inner.state = Circuit::HalfOpen;
            }
            if inner.trial.is_some() {
                return Admission::refused(Reason::TrialTaken, index, None);
            }
            trial = true;
        }
        if d.limits
            .max_concurrency
            .is_some_and(|cap| inner.in_flight >= cap)
        {
            return Admission::refused(Reason::Concurrency, index, None);
        }
        let ticket = inner.next_ticket;
        if d.logging {
            inner.expire(now);
            if let Some((reason, wait)) = inner.rate_wait(&d.limits, now, est) {
                return Admission::refused(reason, index, Some(wait));
            }
            inner.log.push_back(Entry {
                time: now,
                ticket,
                tokens: est,
            });
            inner.log_tokens = inner.log_tokens.wrapping_add(est);
        }
        inner.next_ticket = ticket + 1;
        inner.in_flight += 1;
        d.in_flight.store(inner.in_flight, Ordering::Relaxed);
        if trial {
            inner.trial = Some(ticket);
        }
        Admission {
            reason: Reason::Admitted,
            index: index as i64,
            ticket: ticket as i64,
            wait: None,
            trial,
        }
    }

    /// `try_acquire` on each of `order` (all in range) in turn: the first admission, else
    /// the rate-limited refusal with the shortest wait, else the first refusal.
    pub fn acquire_first(&self, order: &[usize], now: f64, est: u64) -> Admission {
        let mut first: Option<Admission> = None;
        let mut best: Option<Admission> = None;
        for &index in order {
            let answer = self.try_acquire(index, now, est);
            if answer.reason == Reason::Admitted {
                return answer;
            }
            first.get_or_insert(answer);
            let shorter = match best {
                None => true,
                Some(b) => answer.wait.unwrap_or(0.0) < b.wait.unwrap_or(0.0),
            };
            if matches!(answer.reason, Reason::Rpm | Reason::Tpm) && shorter {
                best = Some(answer);
            }
        }
        best.or(first).unwrap_or(Admission {
            reason: Reason::CircuitOpen,
            index: -1,
            ticket: -1,
            wait: None,
            trial: false,
        })
    }

    /// End the admitted call `ticket` (None: not a ticket this state issued) of `index`.
    #[allow(clippy::too_many_arguments)]
    pub fn release(
        &self,
        index: usize,
        ticket: Option<u64>,
        now: f64,
        outcome: Outcome,
        actual: Option<u64>,
        latency: Option<f64>,
        retry_after: Option<f64>,
    ) {
        let d = &self.deployments[index];
        let mut inner = d.lock();
        let now = inner.advance(now);
        inner.in_flight = inner.in_flight.saturating_sub(1);
        d.in_flight.store(inner.in_flight, Ordering::Relaxed);
        if d.logging {
            inner.expire(now);
            if let (Some(ticket), Some(actual)) = (ticket, actual) {
                if let Ok(at) = inner.log.binary_search_by_key(&ticket, |e| e.ticket) {
                    let old = std::mem::replace(&mut inner.log[at].tokens, actual);
                    inner.log_tokens = inner.log_tokens.wrapping_sub(old).wrapping_add(actual);
                }
            }
        }
        if let (Outcome::Success, Some(sample)) = (outcome, latency) {
            let avg = match inner.latency {
                None => sample,
                Some(avg) => avg + LATENCY_ALPHA * (sample - avg),
            };
            inner.latency = Some(avg);
            d.latency.store(avg.to_bits(), Ordering::Relaxed);
        }
        if let Some(settings) = self.breaker {
            self.record(&mut inner, &settings, ticket, now, outcome, retry_after);
        }
    }

    fn record(
        &self,
        inner: &mut Inner,
        s: &BreakerSettings,
        ticket: Option<u64>,
        now: f64,
        outcome: Outcome,
        retry_after: Option<f64>,
    ) {
        let Some(ticket) = ticket else { return };
        if inner.trial == Some(ticket) {
            inner.trial = None;
            match outcome {
                Outcome::Success => {
                    inner.state = Circuit::Closed;
                    inner.level = 0;
                    inner.closed_since = inner.next_ticket;
                }
                Outcome::Failure => {
                    inner.level = (inner.level + 1).min(MAX_LEVEL);
                    let duration = retry_after.unwrap_or_else(|| {
                        let base = (s.cooldown * 2f64.powi(inner.level)).min(s.max_cooldown);
                        base * (1.0 - self.jitter * self.unit())
                    });
                    inner.open(now, duration);
                }
                Outcome::NotCounted => {}
            }
            return;
        }
        if outcome == Outcome::NotCounted
            || inner.state != Circuit::Closed
            || ticket < inner.closed_since
        {
            return;
        }
        let failed = outcome == Outcome::Failure;
        inner.outcomes.push_back((now, failed));
        if failed {
            inner.failed += 1;
            inner.streak += 1;
        } else {
            inner.streak = 0;
        }
        while let Some(&(time, was_failed)) = inner.outcomes.front() {
            if time + s.window > now {
                break;
            }
            inner.outcomes.pop_front();
            if was_failed {
                inner.failed -= 1;
            }
        }
        if !failed {
            return;
        }
        let calls = inner.outcomes.len() as u64;
        if let Some(duration) = retry_after {
            inner.level = 0;
            inner.open(now, duration);
        } else if inner.streak >= s.failures
            || (calls >= s.min_calls && inner.failed as f64 / calls as f64 >= s.failure_rate)
        {
            inner.level = 0;
            inner.open(now, s.cooldown);
        }
    }

    pub fn in_flight(&self, index: usize) -> u64 {
        self.deployments[index].in_flight.load(Ordering::Relaxed)
    }

    pub fn latency(&self, index: usize) -> Option<f64> {
        let avg = f64::from_bits(self.deployments[index].latency.load(Ordering::Relaxed));
        (!avg.is_nan()).then_some(avg)
    }

    pub fn snapshot(&self, index: usize, now: f64) -> Snapshot {
        let d = &self.deployments[index];
        let mut inner = d.lock();
        let now = inner.advance(now);
        let (mut circuit, mut until) = (inner.state, 0.0);
        if circuit == Circuit::Open {
            if now < inner.open_until {
                until = inner.open_until - now;
            } else {
                circuit = Circuit::HalfOpen;
            }
        }
        let (mut rpm_left, mut tpm_left) = (None, None);
        if d.logging {
            inner.expire(now);
            rpm_left = d
                .limits
                .rpm
                .map(|rpm| rpm.saturating_sub(inner.log.len() as u64));
            tpm_left = d.limits.tpm.map(|tpm| tpm.saturating_sub(inner.log_tokens));
        }
        Snapshot {
            circuit,
            seconds_until_close: until,
            in_flight: inner.in_flight,
            rpm_left,
            tpm_left,
            latency: inner.latency,
        }
    }
}

/// The answer of `RouteState.try_acquire`.
#[pyclass(frozen, name = "RouteAdmission", module = "chatmodels._core")]
pub struct RouteAdmission(Admission);

#[pymethods]
impl RouteAdmission {
    #[getter]
    fn reason(&self) -> u8 {
        self.0.reason as u8
    }

    #[getter]
    fn index(&self) -> i64 {
        self.0.index
    }

    #[getter]
    fn ticket(&self) -> i64 {
        self.0.ticket
    }

    #[getter]
    fn wait(&self) -> Option<f64> {
        self.0.wait
    }

    #[getter]
    fn trial(&self) -> bool {
        self.0.trial
    }

    #[getter]
    fn admitted(&self) -> bool {
        self.0.reason == Reason::Admitted
    }

    fn __repr__(&self) -> String {
        let a = &self.0;
        let wait = a
            .wait
            .map_or_else(|| "None".to_owned(), |w| format!("{w:?}"));
        let trial = if a.trial { "True" } else { "False" };
        format!(
            "RouteAdmission(reason={}, index={}, ticket={}, wait={wait}, trial={trial})",
            a.reason as u8, a.index, a.ticket
        )
    }
}

/// One deployment's state at a time.
#[pyclass(frozen, name = "RouteSnapshot", module = "chatmodels._core")]
pub struct RouteSnapshot(Snapshot);

#[pymethods]
impl RouteSnapshot {
    #[getter]
    fn circuit(&self) -> &'static str {
        self.0.circuit.name()
    }

    #[getter]
    fn seconds_until_close(&self) -> f64 {
        self.0.seconds_until_close
    }

    #[getter]
    fn in_flight(&self) -> u64 {
        self.0.in_flight
    }

    #[getter]
    fn rpm_left(&self) -> Option<u64> {
        self.0.rpm_left
    }

    #[getter]
    fn tpm_left(&self) -> Option<u64> {
        self.0.tpm_left
    }

    #[getter]
    fn latency(&self) -> Option<f64> {
        self.0.latency
    }

    fn __repr__(&self) -> String {
        let s = &self.0;
        let opt = |v: Option<u64>| v.map_or_else(|| "None".to_owned(), |v| v.to_string());
        let lat = s
            .latency
            .map_or_else(|| "None".to_owned(), |v| format!("{v:?}"));
        format!(
            "RouteSnapshot(circuit='{}', seconds_until_close={:?}, in_flight={}, rpm_left={}, \
             tpm_left={}, latency={lat})",
            s.circuit.name(),
            s.seconds_until_close,
            s.in_flight,
            opt(s.rpm_left),
            opt(s.tpm_left),
        )
    }
}

type LimitRow = (Option<i64>, Option<i64>, Option<i64>);
type BreakerRow = (i64, f64, f64, i64, f64, f64);

fn limit(value: Option<i64>, what: &str) -> PyResult<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v) if v >= 1 => Ok(Some(v as u64)),
        Some(_) => Err(PyValueError::new_err(format!(
            "{what} must be None or an int >= 1"
        ))),
    }
}

fn time(now: f64) -> PyResult<f64> {
    if now.is_finite() {
        Ok(now)
    } else {
        Err(PyValueError::new_err("now must be a finite number"))
    }
}

fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<f64>> {
    match value {
        Some(v) if !(v.is_finite() && v >= 0.0) => Err(PyValueError::new_err(format!(
            "{what} must be None or a finite number >= 0"
        ))),
        _ => Ok(value),
    }
}

/// The in-process state of a route's deployments.
#[pyclass(frozen, name = "RouteState", module = "chatmodels._core")]
pub struct RouteState(State);

impl RouteState {
    fn index(&self, index: i64) -> PyResult<usize> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.0.len())
            .ok_or_else(|| PyIndexError::new_err(format!("deployment {index} out of range")))
    }
}

#[pymethods]
impl RouteState {
    #[new]
    #[pyo3(signature = (limits, breaker = None, jitter = 0.1, seed = None))]
    fn new(
        limits: Vec<LimitRow>,
        breaker: Option<BreakerRow>,
        jitter: f64,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let limits = limits
            .into_iter()
            .map(|(rpm, tpm, cap)| {
                Ok(Limits {
                    rpm: limit(rpm, "rpm")?,
                    tpm: limit(tpm, "tpm")?,
                    max_concurrency: limit(cap, "max_concurrency")?,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let breaker = match breaker {
            None => None,
            Some((failures, window, failure_rate, min_calls, cooldown, max_cooldown)) => {
                if failures < 1 || min_calls < 1 {
                    return Err(PyValueError::new_err("failures and min_calls must be >= 1"));
                }
                if [window, failure_rate, cooldown, max_cooldown]
                    .iter()
                    .any(|v| !(v.is_finite() && *v > 0.0))
                {
                    return Err(PyValueError::new_err(
                        "breaker times and rate must be positive and finite",
                    ));
                }
                if failure_rate > 1.0 || max_cooldown < cooldown {
                    return Err(PyValueError::new_err(
                        "failure_rate <= 1 and max_cooldown >= cooldown are required",
                    ));
                }
                Some(BreakerSettings {
                    failures: failures as u64,
                    window,
                    failure_rate,
                    min_calls: min_calls as u64,
                    cooldown,
                    max_cooldown,
                })
            }
        };
        if !(0.0..1.0).contains(&jitter) {
            return Err(PyValueError::new_err("jitter must be in [0, 1)"));
        }
        Ok(RouteState(State::new(&limits, breaker, jitter, seed)))
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn try_acquire(&self, index: i64, now: f64, est_tokens: i64) -> PyResult<RouteAdmission> {
        let index = self.index(index)?;
        let now = time(now)?;
        let est = u64::try_from(est_tokens)
            .map_err(|_| PyValueError::new_err("est_tokens must be >= 0"))?;
        Ok(RouteAdmission(self.0.try_acquire(index, now, est)))
    }

    fn acquire_first(
        &self,
        order: Vec<i64>,
        now: f64,
        est_tokens: i64,
    ) -> PyResult<RouteAdmission> {
        let order = order
            .into_iter()
            .map(|i| self.index(i))
            .collect::<PyResult<Vec<_>>>()?;
        let now = time(now)?;
        let est = u64::try_from(est_tokens)
            .map_err(|_| PyValueError::new_err("est_tokens must be >= 0"))?;
        Ok(RouteAdmission(self.0.acquire_first(&order, now, est)))
    }

    #[pyo3(signature = (index, ticket, now, outcome, actual_tokens = None, latency = None, retry_after = None))]
    #[allow(clippy::too_many_arguments)]
    fn release(
        &self,
        index: i64,
        ticket: i64,
        now: f64,
        outcome: i64,
        actual_tokens: Option<i64>,
        latency: Option<f64>,
        retry_after: Option<f64>,
    ) -> PyResult<()> {
        let index = self.index(index)?;
        let now = time(now)?;
        let outcome = match outcome {
            0 => Outcome::Success,
            1 => Outcome::Failure,
            2 => Outcome::NotCounted,
            _ => {
                return Err(PyValueError::new_err(
                    "outcome must be 0 (success), 1 (failure) or 2 (not counted)",
                ))
            }
        };
        let actual = actual_tokens
            .map(u64::try_from)
            .transpose()
            .map_err(|_| PyValueError::new_err("actual_tokens must be None or >= 0"))?;
        let latency = seconds(latency, "latency")?;
        let retry_after = seconds(retry_after, "retry_after")?;
        let ticket = u64::try_from(ticket).ok();
        self.0
            .release(index, ticket, now, outcome, actual, latency, retry_after);
        Ok(())
    }

    fn in_flight(&self, index: i64) -> PyResult<u64> {
        Ok(self.0.in_flight(self.index(index)?))
    }

    fn latency(&self, index: i64) -> PyResult<Option<f64>> {
        Ok(self.0.latency(self.index(index)?))
    }

    fn snapshot(&self, index: i64, now: f64) -> PyResult<RouteSnapshot> {
        let index = self.index(index)?;
        Ok(RouteSnapshot(self.0.snapshot(index, time(now)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BREAKER: BreakerSettings = BreakerSettings {
        failures: 2,
        window: 30.0,
        failure_rate: 0.5,
        min_calls: 10,
        cooldown: 10.0,
        max_cooldown: 25.0,
    };

    #[test]
    fn rpm_is_a_sliding_window() {
        let limits = [Limits {
            rpm: Some(2),
            ..Limits::default()
        }];
        let state = State::new(&limits, None, 0.0, Some(1));
        assert!(state.try_acquire(0, 59.0, 1).reason == Reason::Admitted);
        assert!(state.try_acquire(0, 59.5, 1).reason == Reason::Admitted);
        let refused = state.try_acquire(0, 60.0, 1);
        assert_eq!((refused.reason, refused.wait), (Reason::Rpm, Some(59.0)));
        assert!(state.try_acquire(0, 119.0, 1).reason == Reason::Admitted);
        assert!(state.try_acquire(0, 119.0, 1).reason == Reason::Rpm);
    }

    #[test]
    fn tpm_is_corrected_by_actual_usage() {
        let limits = [Limits {
            tpm: Some(100),
            ..Limits::default()
        }];
        let state = State::new(&limits, None, 0.0, Some(1));
        let a = state.try_acquire(0, 0.0, 80);
        assert_eq!(state.try_acquire(0, 1.0, 30).reason, Reason::Tpm);
        state.release(
            0,
            Some(a.ticket as u64),
            2.0,
            Outcome::Success,
            Some(20),
            None,
            None,
        );
        assert_eq!(state.try_acquire(0, 3.0, 80).reason, Reason::Admitted);
        assert_eq!(state.snapshot(0, 3.0).tpm_left, Some(0));
        assert_eq!(state.try_acquire(0, 3.0, 101).wait, Some(f64::INFINITY));
    }

    #[test]
    fn breaker_opens_trials_and_doubles() {
        let state = State::new(&[Limits::default()], Some(BREAKER), 0.0, Some(1));
        for t in [0.0, 1.0] {
            let a = state.try_acquire(0, t, 0);
            state.release(
                0,
                Some(a.ticket as u64),
                t,
                Outcome::Failure,
                None,
                None,
                None,
            );
        }
        let refused = state.try_acquire(0, 2.0, 0);
        assert_eq!(
            (refused.reason, refused.wait),
            (Reason::CircuitOpen, Some(9.0))
        );
        let trial = state.try_acquire(0, 11.0, 0);
        assert!(trial.trial);
        assert_eq!(state.try_acquire(0, 11.0, 0).reason, Reason::TrialTaken);
        state.release(
            0,
            Some(trial.ticket as u64),
            12.0,
            Outcome::Failure,
            None,
            None,
            None,
        );
        assert_eq!(state.snapshot(0, 12.0).seconds_until_close, 20.0);
        let trial = state.try_acquire(0, 32.0, 0);
        state.release(
            0,
            Some(trial.ticket as u64),
            32.0,
            Outcome::Failure,
            None,
            None,
            None,
        );
        assert_eq!(state.snapshot(0, 32.0).seconds_until_close, 25.0); // capped
        let trial = state.try_acquire(0, 57.0, 0);
        state.release(
            0,
            Some(trial.ticket as u64),
            57.0,
            Outcome::Success,
            None,
            None,
            None,
        );
        assert_eq!(state.snapshot(0, 57.0).circuit, Circuit::Closed);
    }
}
