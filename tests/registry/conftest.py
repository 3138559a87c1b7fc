"""The registry suite: both tables (the Rust core and the Python twin) through the `backend`,
`registry` and `global_registry` fixtures of tests/conftest.py."""
