//! Making process-lifetime objects immortal on free-threaded CPython.
//!
//! Without the GIL, every thread that takes a reference to a shared object (a module
//! function it calls, the global table, the table's method descriptors) updates that
//! object's shared reference count atomically, and two cores doing so contend on one cache
//! line: resolution then stops scaling with threads. CPython 3.13t skips reference counting
//! for immortal objects (a local count of `u32::MAX`), as it does for interned strings and
//! the built-in singletons. Objects marked here are never freed, so only objects that live
//! as long as the process anyway may be marked, and only before other threads use them.

use pyo3::prelude::*;

/// Mark `obj` immortal on a free-threaded build; returns whether anything was done.
#[cfg(Py_GIL_DISABLED)]
pub fn make_immortal(obj: &Bound<'_, PyAny>) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    // SAFETY: `obj` is a live object; its refcount fields are atomics in this build, and an
    // immortal local count makes every later incref/decref a no-op (Include/refcount.h).
    unsafe { (*obj.as_ptr()).ob_ref_local.store(u32::MAX, Relaxed) };
    true
}

/// With the GIL there is no contention to avoid: nothing to do.
#[cfg(not(Py_GIL_DISABLED))]
pub fn make_immortal(_obj: &Bound<'_, PyAny>) -> bool {
    false
}
