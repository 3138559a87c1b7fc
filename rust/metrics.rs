//! The hot-path metric aggregator: counters in atomic cells, histogram values in a bounded
//! buffer. The Python side drains it into OpenTelemetry instruments when the application's
//! metric reader collects, so a chat call never pays the SDK's per-record cost.
//!
//! Same API as `chatmodels/telemetry/_pymetrics.py` (its pure-Python twin).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

/// Histogram ids shared with the Python twin.
const DURATION: u32 = 0;
const TOKENS_INPUT: u32 = 1;
const TOKENS_OUTPUT: u32 = 2;

type Value = (u32, u32, f64);

/// The aggregator itself, in plain Rust.
pub struct Aggregator {
    counters: usize,
    max_keys: usize,
    capacity: usize,
    cells: Box<[AtomicU64]>,
    buffer: Mutex<Vec<Value>>,
    dropped: AtomicU64,
}

impl Aggregator {
    pub fn new(counters: usize, max_keys: usize, capacity: usize) -> Option<Self> {
        if max_keys == 0 || capacity == 0 {
            return None;
        }
        let cells = (0..counters.checked_mul(max_keys)?)
            .map(|_| AtomicU64::new(0))
            .collect();
        Some(Self {
            counters,
            max_keys,
            capacity,
            cells,
            buffer: Mutex::new(Vec::with_capacity(capacity.min(4096))),
            dropped: AtomicU64::new(0),
        })
    }

    fn cell(&self, counter: usize, key: usize) -> Option<&AtomicU64> {
        (counter < self.counters)
            .then(|| &self.cells[counter * self.max_keys + key.min(self.max_keys - 1)])
    }

    pub fn add(&self, counter: usize, key: usize, value: u64) -> bool {
        match self.cell(counter, key) {
            Some(cell) => {
                cell.fetch_add(value, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn counter_values(&self, counter: usize) -> Option<Vec<(usize, u64)>> {
        if counter >= self.counters {
            return None;
        }
        let base = counter * self.max_keys;
        Some(
            self.cells[base..base + self.max_keys]
                .iter()
                .enumerate()
                .filter_map(|(key, cell)| {
                    let total = cell.load(Ordering::Relaxed);
                    (total != 0).then_some((key, total))
                })
                .collect(),
        )
    }

    fn buffer(&self) -> MutexGuard<'_, Vec<Value>> {
        // A panic cannot happen while the lock is held; recover rather than poison forever.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Push as many of `values` as fit; count the rest as dropped.
    fn push(&self, values: impl ExactSizeIterator<Item = Value>) {
        let wanted = values.len();
        let mut buffer = self.buffer();
        let room = self.capacity.saturating_sub(buffer.len());
        buffer.extend(values.take(room));
        drop(buffer);
        if wanted > room {
            self.dropped
                .fetch_add((wanted - room) as u64, Ordering::Relaxed);
        }
    }

    pub fn record(&self, histogram: u32, key: u32, value: f64) {
        self.push(std::iter::once((histogram, key, value)));
    }

    pub fn record_many(&self, histogram: u32, key: u32, values: &[f64]) {
        self.push(values.iter().map(|&v| (histogram, key, v)));
    }

    pub fn record_call(&self, key: u32, duration: f64, input_tokens: i64, output_tokens: i64) {
        let mut values = [(DURATION, key, duration); 3];
        let mut n = 1;
        for (histogram, tokens) in [(TOKENS_INPUT, input_tokens), (TOKENS_OUTPUT, output_tokens)] {
            if tokens >= 0 {
                values[n] = (histogram, key, tokens as f64);
                n += 1;
            }
        }
        // All or nothing, like the twin: a call's values are never split across a drop.
        let mut buffer = self.buffer();
        if self.capacity.saturating_sub(buffer.len()) < n {
            drop(buffer);
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        buffer.extend_from_slice(&values[..n]);
    }

    pub fn drain(&self) -> Vec<Value> {
        std::mem::take(&mut *self.buffer())
    }

    pub fn pending(&self) -> usize {
        self.buffer().len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Counters in atomic cells and a bounded buffer of exact histogram values.
#[pyclass(frozen, name = "MetricAggregator", module = "chatmodels._core")]
pub struct MetricAggregator(Aggregator);

#[pymethods]
impl MetricAggregator {
    #[new]
    #[pyo3(signature = (counters, max_keys = 1024, capacity = 65536))]
    fn new(counters: usize, max_keys: usize, capacity: usize) -> PyResult<Self> {
        Aggregator::new(counters, max_keys, capacity)
            .map(Self)
            .ok_or_else(|| {
                PyValueError::new_err("counters >= 0, max_keys >= 1 and capacity >= 1 are required")
            })
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.0.capacity
    }

    fn add(&self, counter: usize, key: usize, value: u64) -> PyResult<()> {
        if self.0.add(counter, key, value) {
            Ok(())
        } else {
            Err(PyIndexError::new_err(format!(
                "counter {counter} out of range"
            )))
        }
    }

    fn counter_values(&self, counter: usize) -> PyResult<Vec<(usize, u64)>> {
        self.0
            .counter_values(counter)
            .ok_or_else(|| PyIndexError::new_err(format!("counter {counter} out of range")))
    }

    fn record(&self, histogram: u32, key: u32, value: f64) {
        self.0.record(histogram, key, value);
    }

    fn record_many(&self, histogram: u32, key: u32, values: Vec<f64>) {
        self.0.record_many(histogram, key, &values);
    }

    fn record_call(&self, key: u32, duration: f64, input_tokens: i64, output_tokens: i64) {
        self.0
            .record_call(key, duration, input_tokens, output_tokens);
    }

    fn drain(&self) -> Vec<(u32, u32, f64)> {
        self.0.drain()
    }

    fn pending(&self) -> usize {
        self.0.pending()
    }

    fn dropped(&self) -> u64 {
        self.0.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_buffers_and_drops() {
        let agg = Aggregator::new(2, 8, 4).unwrap();
        assert!(agg.add(0, 3, 2) && agg.add(0, 3, 5) && agg.add(1, 99, 1));
        assert!(!agg.add(2, 0, 1));
        assert_eq!(agg.counter_values(0).unwrap(), vec![(3, 7)]);
        assert_eq!(agg.counter_values(1).unwrap(), vec![(7, 1)]);
        agg.record_call(1, 0.5, 10, -1);
        agg.record_many(DURATION, 2, &[0.1, 0.2, 0.3]);
        assert_eq!(agg.drain().len(), 4);
        assert_eq!(agg.dropped(), 1);
        assert!(agg.drain().is_empty());
    }
}
