//! The route state: per-deployment circuit, sliding rate-limit logs, calls in flight and
//! latency average, for a route's N deployments.
//!
//! Same API, results and errors as `chatmodels/_routes/_pystate.py` (its pure-Python twin);
//! the rules are written out in `chatmodels/_routes/_state.py`. Each deployment's state sits
//! behind its own mutex, held for one decision's few operations of pure Rust (no Python
//! call, no allocation beyond a log push), so a thread that blocks on it while attached to
//! the interpreter cannot deadlock with the holder. `in_flight` and `latency` are mirrored in
//! atomics and read without the lock, so choosing a deployment never waits behind a caller.
//!
//! A routed call makes two calls into this module on its usual path: `choose` (the strategy's
//! order over the eligible deployments, then the first admission, in one call) and `finish`
//! (the outcome, the actual tokens, the latency and the slot, in one call, answering whether
//! the circuit opened or closed).

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

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

/// How `choose` orders the eligible deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Declaration order.
    Priority,
    /// At random by weight (weighted sampling without replacement).
    Weighted,
    /// The fewest calls in flight first.
    LeastBusy,
    /// No latency sample first, then the lowest average; sometimes a random one first.
    Latency,
}

/// The share of `Latency` choices that put a random deployment first (the twin's
/// `LATENCY_EXPLORE`).
pub const LATENCY_EXPLORE: f64 = 0.05;

/// What `choose` knows of each deployment besides its state: the strategy, the weights, the
/// capability bits it has and its declared context window (None: not declared).
#[derive(Debug, Clone)]
pub struct Plan {
    pub strategy: Strategy,
    pub weights: Box<[f64]>,
    pub masks: Box<[u64]>,
    pub windows: Box<[Option<u64>]>,
}

impl Plan {
    /// Priority over `n` deployments that each have every capability and no window.
    pub fn plain(n: usize) -> Self {
        Plan {
            strategy: Strategy::Priority,
            weights: vec![1.0; n].into(),
            masks: vec![u64::MAX; n].into(),
            windows: vec![None; n].into(),
        }
    }
}

/// What one `choose` asks for: the capability bits the call needs, its estimated tokens,
/// the deployments it already tried, and the declared window a deployment must exceed
/// (after a context_length_exceeded).
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub needs: u64,
    pub est: u64,
    pub tried: &'a [usize],
    pub min_window: Option<u64>,
}

/// What `finish` did to the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None = 0,
    Closed = 1,
    Opened = 2,
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
    /// Replaced whole when a deployment's model is (its capabilities may change); read
    /// without a lock or a shared counter.
    plan: ArcSwap<Plan>,
    /// The choosing draws (weighted keys, latency exploration), apart from the jitter's.
    pick_rng: AtomicU64,
}

impl State {
    /// `jitter` must be in [0, 1); the settings must be valid (the Python glue checks).
    pub fn new(
        limits: &[Limits],
        breaker: Option<BreakerSettings>,
        jitter: f64,
        seed: Option<u64>,
    ) -> Self {
        Self::with_plan(limits, breaker, jitter, seed, Plan::plain(limits.len()))
    }

    /// `new` with a plan for `choose` (one entry per deployment in each of its slices).
    pub fn with_plan(
        limits: &[Limits],
        breaker: Option<BreakerSettings>,
        jitter: f64,
        seed: Option<u64>,
        plan: Plan,
    ) -> Self {
        let seed = seed.unwrap_or_else(|| RandomState::new().build_hasher().finish());
        State {
            deployments: limits.iter().map(|&l| Deployment::new(l)).collect(),
            breaker,
            jitter,
            rng: AtomicU64::new(seed),
            plan: ArcSwap::from_pointee(plan),
            // The twin's `PICK_SALT`: the choosing draws apart from the jitter's.
            pick_rng: AtomicU64::new(seed ^ 0x6A09_E667_F3BC_C909),
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
        splitmix(&self.rng)
    }

    /// Replace the plan (`plan` must have one entry per deployment).
    pub fn set_plan(&self, plan: Plan) {
        self.plan.store(Arc::new(plan));
    }

    /// Whether deployment `i` may take the call `ask` describes (its state aside).
    fn eligible(plan: &Plan, i: usize, ask: &Ask<'_>) -> bool {
        if plan.masks[i] & ask.needs != ask.needs || ask.tried.contains(&i) {
            return false;
        }
        let window = plan.windows[i];
        if window.is_some_and(|w| w < ask.est) {
            return false;
        }
        match ask.min_window {
            None => true,
            Some(floor) => window.is_some_and(|w| w > floor),
        }
    }

    /// The eligible deployments of `ask` in the strategy's order, then `acquire_first` over
    /// them, in one call (see `acquire_first` for the refusal).
    pub fn choose(&self, now: f64, ask: &Ask<'_>) -> Admission {
        let n = self.deployments.len();
        let plan = self.plan.load();
        if plan.strategy == Strategy::Priority {
            let mut refusals = Refusals::default();
            for i in 0..n {
                if Self::eligible(&plan, i, ask) {
                    let answer = self.try_acquire(i, now, ask.est);
                    if answer.reason == Reason::Admitted {
                        return answer;
                    }
                    refusals.note(answer);
                }
            }
            return refusals.answer();
        }
        let mut keyed: Vec<(f64, usize)> = Vec::with_capacity(n);
        for i in 0..n {
            if !Self::eligible(&plan, i, ask) {
                continue;
            }
            let key = match plan.strategy {
                // Efraimidis-Spirakis keys u^(1/w), largest first: negated to sort ascending.
                Strategy::Weighted => -splitmix(&self.pick_rng).powf(1.0 / plan.weights[i]),
                Strategy::LeastBusy => self.in_flight(i) as f64,
                // No sample yet sorts first.
                _ => self.latency(i).unwrap_or(f64::NEG_INFINITY),
            };
            keyed.push((key, i));
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        if plan.strategy == Strategy::Latency
            && keyed.len() > 1
            && splitmix(&self.pick_rng) < LATENCY_EXPLORE
        {
            let at = (splitmix(&self.pick_rng) * keyed.len() as f64) as usize;
            let picked = keyed.remove(at.min(keyed.len() - 1));
            keyed.insert(0, picked);
        }
        let mut refusals = Refusals::default();
        for &(_, i) in &keyed {
            let answer = self.try_acquire(i, now, ask.est);
            if answer.reason == Reason::Admitted {
                return answer;
            }
            refusals.note(answer);
        }
        refusals.answer()
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
        let mut refusals = Refusals::default();
        for &index in order {
            let answer = self.try_acquire(index, now, est);
            if answer.reason == Reason::Admitted {
                return answer;
            }
            refusals.note(answer);
        }
        refusals.answer()
    }

    /// End the admitted call `ticket` (None: not a ticket this state issued) of `index`;
    /// what it did to the circuit.
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
    ) -> Transition {
        let d = &self.deployments[index];
        let mut inner = d.lock();
        let before = inner.state;
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
        match (before, inner.state) {
            (Circuit::Open, _) => Transition::None,
            (_, Circuit::Open) => Transition::Opened,
            (Circuit::HalfOpen, Circuit::Closed) => Transition::Closed,
            _ => Transition::None,
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

/// The next splitmix64 draw of `rng` as a float in [0, 1).
fn splitmix(rng: &AtomicU64) -> f64 {
    let state = rng.fetch_add(GOLDEN, Ordering::Relaxed).wrapping_add(GOLDEN);
    let mut z = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The refusals of an acquisition over several deployments: the answer is the rate-limited
/// one with the shortest wait, else the first, else (no candidate) CircuitOpen at index -1.
#[derive(Default)]
struct Refusals {
    first: Option<Admission>,
    best: Option<Admission>,
}

impl Refusals {
    fn note(&mut self, answer: Admission) {
        self.first.get_or_insert(answer);
        let shorter = match self.best {
            None => true,
            Some(b) => answer.wait.unwrap_or(0.0) < b.wait.unwrap_or(0.0),
        };
        if matches!(answer.reason, Reason::Rpm | Reason::Tpm) && shorter {
            self.best = Some(answer);
        }
    }

    fn answer(self) -> Admission {
        self.best.or(self.first).unwrap_or(Admission {
            reason: Reason::CircuitOpen,
            index: -1,
            ticket: -1,
            wait: None,
            trial: false,
        })
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
type PlanRow = (String, Vec<f64>, Vec<u64>, Vec<Option<i64>>);

fn plan(row: Option<PlanRow>, n: usize) -> PyResult<Plan> {
    let Some((strategy, weights, masks, windows)) = row else {
        return Ok(Plan::plain(n));
    };
    let strategy = match strategy.as_str() {
        "priority" => Strategy::Priority,
        "weighted" => Strategy::Weighted,
        "least_busy" => Strategy::LeastBusy,
        "latency" => Strategy::Latency,
        _ => {
            return Err(PyValueError::new_err(
                "strategy must be priority, weighted, least_busy or latency",
            ))
        }
    };
    if weights.len() != n || masks.len() != n || windows.len() != n {
        return Err(PyValueError::new_err(
            "the plan needs one weight, mask and window per deployment",
        ));
    }
    if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(PyValueError::new_err("weights must be positive and finite"));
    }
    let windows = windows
        .into_iter()
        .map(|w| limit(w, "a context window"))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Plan {
        strategy,
        weights: weights.into(),
        masks: masks.into(),
        windows: windows.into(),
    })
}

fn outcome_of(outcome: i64) -> PyResult<Outcome> {
    match outcome {
        0 => Ok(Outcome::Success),
        1 => Ok(Outcome::Failure),
        2 => Ok(Outcome::NotCounted),
        _ => Err(PyValueError::new_err(
            "outcome must be 0 (success), 1 (failure) or 2 (not counted)",
        )),
    }
}

fn tokens_of(actual_tokens: Option<i64>) -> PyResult<Option<u64>> {
    actual_tokens
        .map(u64::try_from)
        .transpose()
        .map_err(|_| PyValueError::new_err("actual_tokens must be None or >= 0"))
}

fn estimate(est_tokens: i64) -> PyResult<u64> {
    u64::try_from(est_tokens).map_err(|_| PyValueError::new_err("est_tokens must be >= 0"))
}

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
    #[pyo3(signature = (limits, breaker = None, jitter = 0.1, seed = None, plan = None))]
    fn new(
        limits: Vec<LimitRow>,
        breaker: Option<BreakerRow>,
        jitter: f64,
        seed: Option<u64>,
        plan: Option<PlanRow>,
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
        let plan = self::plan(plan, limits.len())?;
        Ok(RouteState(State::with_plan(
            &limits, breaker, jitter, seed, plan,
        )))
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn try_acquire(&self, index: i64, now: f64, est_tokens: i64) -> PyResult<RouteAdmission> {
        let index = self.index(index)?;
        let now = time(now)?;
        Ok(RouteAdmission(self.0.try_acquire(index, now, estimate(est_tokens)?)))
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
        Ok(RouteAdmission(self.0.acquire_first(
            &order,
            now,
            estimate(est_tokens)?,
        )))
    }

    /// Replace the plan `choose` orders by (a `Plan.row()`).
    fn set_plan(&self, plan: PlanRow) -> PyResult<()> {
        self.0.set_plan(self::plan(Some(plan), self.0.len())?);
        Ok(())
    }

    /// The strategy's choice among the eligible deployments, admitted, in one call.
    #[pyo3(signature = (now, est_tokens, needs = 0, tried = Vec::new(), min_window = None))]
    fn choose(
        &self,
        now: f64,
        est_tokens: i64,
        needs: u64,
        tried: Vec<i64>,
        min_window: Option<i64>,
    ) -> PyResult<RouteAdmission> {
        let tried = tried
            .into_iter()
            .map(|i| self.index(i))
            .collect::<PyResult<Vec<_>>>()?;
        let now = time(now)?;
        let ask = Ask {
            needs,
            est: estimate(est_tokens)?,
            tried: &tried,
            min_window: min_window.map(|w| w.max(0) as u64),
        };
        Ok(RouteAdmission(self.0.choose(now, &ask)))
    }

    /// `release` of an admission; 1 when it closed the circuit, 2 when it opened it, else 0.
    #[pyo3(signature = (admission, now, outcome, actual_tokens = None, latency = None, retry_after = None))]
    fn finish(
        &self,
        admission: &Bound<'_, RouteAdmission>,
        now: f64,
        outcome: i64,
        actual_tokens: Option<i64>,
        latency: Option<f64>,
        retry_after: Option<f64>,
    ) -> PyResult<u8> {
        let a = admission.get().0;
        let index = self.index(a.index)?;
        let transition = self.0.release(
            index,
            u64::try_from(a.ticket).ok(),
            time(now)?,
            outcome_of(outcome)?,
            tokens_of(actual_tokens)?,
            seconds(latency, "latency")?,
            seconds(retry_after, "retry_after")?,
        );
        Ok(transition as u8)
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
        let outcome = outcome_of(outcome)?;
        let actual = tokens_of(actual_tokens)?;
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

/// The retired flag of a `CallGate`'s word (the rest counts calls in flight).
const RETIRED: u64 = 1 << 63;

/// A route's calls in flight and whether it is retired, in one atomic word: a call counts
/// itself in (`enter`, refused once retired) and out (`exit`), and exactly one of `retire`
/// and the last `exit` after it answers True, the one that closes the route's models.
#[pyclass(frozen, name = "CallGate", module = "chatmodels._core")]
#[derive(Default)]
pub struct CallGate(AtomicU64);

impl CallGate {
    pub fn enter(&self) -> bool {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            if word & RETIRED != 0 {
                return false;
            }
            match self
                .0
                .compare_exchange_weak(word, word + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    pub fn exit(&self) -> bool {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            if word & !RETIRED == 0 {
                return false; // no call to count out
            }
            match self
                .0
                .compare_exchange_weak(word, word - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return word == RETIRED | 1,
                Err(now) => word = now,
            }
        }
    }

    pub fn retire(&self) -> bool {
        self.0.fetch_or(RETIRED, Ordering::AcqRel) == 0
    }
}

#[pymethods]
impl CallGate {
    #[new]
    fn py_new() -> Self {
        CallGate::default()
    }

    /// Count a call in; False once retired (nothing counted).
    #[pyo3(name = "enter")]
    fn py_enter(&self) -> bool {
        self.enter()
    }

    /// Count a call out; True for the last call out of a retired gate.
    #[pyo3(name = "exit")]
    fn py_exit(&self) -> bool {
        self.exit()
    }

    /// Refuse calls from now on; True when this retired it with no call in flight.
    #[pyo3(name = "retire")]
    fn py_retire(&self) -> bool {
        self.retire()
    }

    /// Calls in flight.
    #[getter]
    fn active(&self) -> u64 {
        self.0.load(Ordering::Acquire) & !RETIRED
    }

    /// Whether `retire` was called.
    #[getter]
    fn retired(&self) -> bool {
        self.0.load(Ordering::Acquire) & RETIRED != 0
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
    fn a_gate_closes_once_after_its_last_call() {
        let gate = CallGate::default();
        assert!(gate.enter() && gate.enter());
        assert!(!gate.retire()); // two in flight
        assert!(!gate.enter()); // retired: refused
        assert!(!gate.exit());
        assert!(gate.exit()); // the last one out
        assert!(!gate.exit()); // nothing left to count out
        let idle = CallGate::default();
        assert!(idle.retire());
        assert!(!idle.retire());
    }

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
