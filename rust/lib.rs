//! `chatmodels._core`: the Rust core of chatmodels, built with PyO3.
//!
//! `table` is the registry table in plain Rust (tested by `cargo test` without Python),
//! `registry` its Python class, `errors` the bridge to `chatmodels._errors`; `metrics` the
//! telemetry's metric aggregator; `routes` the per-deployment route state.

use pyo3::prelude::*;

pub mod counter;
mod errors;
mod immortal;
mod metrics;
mod registry;
pub mod routes;
pub mod table;

/// Panics on purpose, inside the same guard as the table's methods: for the test that a
/// Rust panic reaches Python as `InternalError`, never as an abort.
#[pyfunction]
fn _panic_for_tests(op: &Bound<'_, PyAny>) -> PyResult<()> {
    errors::guarded(op, || panic!("deliberate panic for a test"))
}

/// Mark process-lifetime objects immortal on free-threaded CPython, so that threads sharing
/// them do not contend on their reference counts (see `immortal.rs`). Returns whether it did.
#[pyfunction]
fn _make_immortal(obj: &Bound<'_, PyAny>) -> bool {
    immortal::make_immortal(obj)
}

/// The Rust core of chatmodels: the provider registry table, the metric aggregator and the
/// route state.
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<registry::RegistryTable>()?;
    m.add_class::<metrics::MetricAggregator>()?;
    m.add_class::<routes::RouteState>()?;
    m.add_class::<routes::RouteAdmission>()?;
    m.add_class::<routes::RouteSnapshot>()?;
    m.add_class::<routes::CallGate>()?;
    // An attribute, not an export: it stays out of `__all__`.
    m.setattr("_panic_for_tests", wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.setattr("_make_immortal", wrap_pyfunction!(_make_immortal, m)?)?;
    Ok(())
}
