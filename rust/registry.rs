//! `RegistryTable`: the Python face of [`crate::table::Table`], twin of
//! `chatmodels._pytable.RegistryTable` (same methods, results and errors).
//!
//! Frozen: all mutability lives in the table (an atomic snapshot pointer and a writer
//! mutex), so no borrow flag and no GIL are involved. The writer mutex is only ever held
//! while pure Rust runs (no Python call, no reference count dropped to zero), so a thread
//! that blocks on it while attached to the interpreter cannot deadlock with one that holds
//! it; snapshots replaced by a write are dropped after the lock is released.
//!
//! Every `contains` and `get` is counted, found or not, in per-thread striped counters (see
//! [`crate::counter`]): one relaxed add to a cache line no other thread writes.

use std::sync::Arc;

use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use pyo3::PyTraverseError;

use crate::counter::StripedCounters;
use crate::errors::{already_registered_error, guarded, name_error, not_found_error};
use crate::table::{check_name, AlreadyRegistered, Snapshot, Table};

/// What the table stores per name: the name as the caller's str, and the opaque entry.
struct Stored {
    name: Py<PyString>,
    entry: Py<PyAny>,
}

type Value = Arc<Stored>;

/// name → (entry, capability bits), with lock-free reads and serialized writes.
#[pyclass(frozen, module = "chatmodels._core")]
pub struct RegistryTable {
    table: Table<Value>,
    /// Resolutions by outcome, [`FOUND`] and [`MISSED`].
    counts: StripedCounters<2>,
}

/// A `contains` that returned True or a `get` that returned an entry.
const FOUND: usize = 0;
/// Any other resolution: not registered, or an invalid name (raised invalid_provider_name).
const MISSED: usize = 1;

/// The name's text, read in place (no copy); None if it holds a lone surrogate, which no
/// Rust str can, and which `check_name` refuses, so no such name is ever stored.
#[inline]
fn text_of<'a>(name: &'a Bound<'_, PyString>) -> Option<&'a str> {
    name.to_str().ok()
}

/// The twin's `check_name`: the name as a plain str if acceptable, else invalid_provider_name.
fn checked<'py>(
    name: &Bound<'py, PyAny>,
    op: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyString>> {
    let Ok(text) = name.cast_exact::<PyString>() else {
        if name.is_instance_of::<PyString>() {
            return checked(name.str()?.as_any(), op); // a str subclass: check its plain value
        }
        return Err(name_error(op, name, "must be a str"));
    };
    let verdict = match text_of(text) {
        Some(utf8) => check_name(utf8.as_bytes()),
        None => check_name(surrogatepass(text)?.as_bytes()), // refused, for the right reason
    };
    match verdict {
        Ok(()) => Ok(text.clone()),
        Err(problem) => Err(name_error(op, name, problem.reason())),
    }
}

/// The name encoded as UTF-8 with lone surrogates kept (`str.encode("utf-8", "surrogatepass")`).
fn surrogatepass<'py>(text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyBytes>> {
    // SAFETY: `text` is a live str; both C strings are NUL-terminated literals.
    let encoded = unsafe {
        Bound::from_owned_ptr_or_err(
            text.py(),
            ffi::PyUnicode_AsEncodedString(
                text.as_ptr(),
                c"utf-8".as_ptr(),
                c"surrogatepass".as_ptr(),
            ),
        )?
    };
    Ok(encoded.cast_into::<PyBytes>()?)
}

/// A name that passed `checked` always has a text: this only guards against a bug.
fn text_of_checked<'a>(name: &'a Bound<'_, PyString>) -> &'a str {
    text_of(name).expect("a checked name is valid UTF-8")
}

impl RegistryTable {
    /// Counts one resolution by its outcome.
    #[inline]
    fn count(&self, found: bool) {
        self.counts.bump(if found { FOUND } else { MISSED });
    }
}

fn sorted_names<'py>(py: Python<'py>, snapshot: &Snapshot<Value>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        snapshot
            .sorted()
            .into_iter()
            .map(|(_, slot)| slot.value.name.bind(py)),
    )
}

#[pymethods]
impl RegistryTable {
    #[new]
    fn new() -> Self {
        RegistryTable {
            table: Table::new(),
            counts: StripedCounters::new(),
        }
    }

    /// Whether `name` is registered; raises invalid_provider_name for a bad name.
    fn contains(&self, name: &Bound<'_, PyAny>, op: &Bound<'_, PyAny>) -> PyResult<bool> {
        let found = guarded(op, || {
            if let Some(text) = name.cast_exact::<PyString>().ok().and_then(text_of) {
                if self.table.snapshot().contains(text) {
                    return Ok(true);
                }
            }
            // Only a miss (or a str subclass) pays for validation.
            let text = checked(name, op)?;
            Ok(self.table.snapshot().contains(text_of_checked(&text)))
        });
        self.count(matches!(found, Ok(true)));
        found
    }

    /// The entry registered as `name`; raises provider_not_found with a suggestion.
    fn get<'py>(&self, name: &Bound<'py, PyAny>, op: &Bound<'py, PyAny>) -> PyResult<Py<PyAny>> {
        let py = name.py();
        let found = guarded(op, || {
            let lookup = |text: &str| {
                let snapshot = self.table.snapshot();
                snapshot
                    .get(text)
                    .map(|slot| slot.value.entry.clone_ref(py))
            };
            if let Some(text) = name.cast_exact::<PyString>().ok().and_then(text_of) {
                if let Some(entry) = lookup(text) {
                    return Ok(entry);
                }
            }
            let text = checked(name, op)?;
            if let Some(entry) = lookup(text_of_checked(&text)) {
                return Ok(entry);
            }
            let known = sorted_names(py, &self.table.snapshot())?;
            Err(not_found_error(op, text.as_any(), known.as_any()))
        });
        self.count(found.is_ok());
        found
    }

    /// Registers `entry` as `name`; returns the table version after the write.
    fn insert(
        &self,
        name: &Bound<'_, PyAny>,
        entry: &Bound<'_, PyAny>,
        capabilities: u64,
        replace: bool,
        op: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        guarded(op, || {
            let text = checked(name, op)?;
            let value = Arc::new(Stored {
                name: text.clone().unbind(),
                entry: entry.clone().unbind(),
            });
            let key = text_of_checked(&text);
            match self.table.insert(key, value, capabilities, replace) {
                Ok(written) => Ok(written.version), // the replaced snapshot drops here, unlocked
                Err(AlreadyRegistered(_value)) => Err(already_registered_error(op, text.as_any())),
            }
        })
    }

    /// Unregisters `name` and returns its entry; raises provider_not_found.
    fn remove(&self, name: &Bound<'_, PyAny>, op: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = name.py();
        guarded(op, || {
            let text = checked(name, op)?;
            match self.table.remove(text_of_checked(&text)) {
                Some((removed, _written)) => Ok(removed.entry.clone_ref(py)),
                None => {
                    let known = sorted_names(py, &self.table.snapshot())?;
                    Err(not_found_error(op, text.as_any(), known.as_any()))
                }
            }
        })
    }

    /// Unregisters everything.
    fn clear(&self) {
        drop(self.table.clear());
    }

    /// Every registered name, sorted.
    fn names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        sorted_names(py, &self.table.snapshot())
    }

    /// The sorted names whose capability bits include every bit of `mask`.
    fn names_with<'py>(&self, py: Python<'py>, mask: u64) -> PyResult<Bound<'py, PyList>> {
        let snapshot = self.table.snapshot();
        PyList::new(
            py,
            snapshot
                .sorted_with(mask)
                .into_iter()
                .map(|(_, slot)| slot.value.name.bind(py)),
        )
    }

    /// (name, entry) pairs from one snapshot, sorted by name.
    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snapshot = self.table.snapshot();
        let pairs = snapshot.sorted().into_iter().map(|(_, slot)| {
            PyTuple::new(
                py,
                [slot.value.name.bind(py).as_any(), slot.value.entry.bind(py)],
            )
        });
        PyList::new(py, pairs.collect::<PyResult<Vec<_>>>()?)
    }

    /// How many writes the table has seen.
    #[getter]
    fn version(&self) -> u64 {
        self.table.snapshot().version()
    }

    /// How many `contains` and `get` calls the table has answered, found or not (a call
    /// refused with invalid_provider_name included).
    #[getter]
    fn resolutions(&self) -> u64 {
        self.counts.sum(FOUND).wrapping_add(self.counts.sum(MISSED))
    }

    /// How many of those found nothing: `contains` returned False, or `contains` or `get`
    /// raised (provider_not_found, invalid_provider_name).
    #[getter]
    fn resolution_misses(&self) -> u64 {
        self.counts.sum(MISSED)
    }

    fn __len__(&self) -> usize {
        self.table.snapshot().len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for slot in self.table.snapshot().slots() {
            visit.call(&slot.value.name)?;
            visit.call(&slot.value.entry)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        drop(self.table.take());
    }
}
