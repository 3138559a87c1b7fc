// Gives this crate PyO3's cfgs for the target interpreter (`Py_GIL_DISABLED` on a
// free-threaded build), which `rust/immortal.rs` depends on.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
