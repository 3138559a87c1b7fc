//! Errors raised from Rust: built by the Python factories in `chatmodels._errors`, so both
//! backends raise the same classes with the same messages. Rust defines no exception types.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

const MODULE: &str = "chatmodels._errors";

static NAME_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static NOT_FOUND_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ALREADY_REGISTERED_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static INTERNAL_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Calls the factory `attr` of `chatmodels._errors` (imported once) and returns its
/// exception; if the factory itself fails, that failure is what gets raised.
fn build<'py>(
    py: Python<'py>,
    cell: &PyOnceLock<Py<PyAny>>,
    attr: &str,
    call: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>,
) -> PyErr {
    match cell.import(py, MODULE, attr).and_then(call) {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// invalid_provider_name: `name_error(op, name, reason)`.
pub fn name_error(op: &Bound<'_, PyAny>, name: &Bound<'_, PyAny>, reason: &str) -> PyErr {
    build(op.py(), &NAME_ERROR, "name_error", |f| {
        f.call1((op, name, reason))
    })
}

/// provider_not_found: `not_found_error(op, name, known)`.
pub fn not_found_error(
    op: &Bound<'_, PyAny>,
    name: &Bound<'_, PyAny>,
    known: &Bound<'_, PyAny>,
) -> PyErr {
    build(op.py(), &NOT_FOUND_ERROR, "not_found_error", |f| {
        f.call1((op, name, known))
    })
}

/// provider_already_registered: `already_registered_error(op, name)`.
pub fn already_registered_error(op: &Bound<'_, PyAny>, name: &Bound<'_, PyAny>) -> PyErr {
    build(
        op.py(),
        &ALREADY_REGISTERED_ERROR,
        "already_registered_error",
        |f| f.call1((op, name)),
    )
}

/// internal: `InternalError(detail, op=op)`.
fn internal_error(op: &Bound<'_, PyAny>, detail: &str) -> PyErr {
    let py = op.py();
    build(py, &INTERNAL_ERROR, "InternalError", |f| {
        let kwargs = PyDict::new(py);
        kwargs.set_item("op", op)?;
        f.call((detail,), Some(&kwargs))
    })
}

/// Runs `body`, turning a Rust panic into `InternalError` for `op` instead of an abort or
/// PyO3's `PanicException` (a BaseException that `except Exception` would not catch).
#[inline]
pub fn guarded<T>(op: &Bound<'_, PyAny>, body: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => Err(internal_error(op, &panic_detail(payload.as_ref()))),
    }
}

fn panic_detail(payload: &(dyn Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("the Rust core panicked: {message}")
}
