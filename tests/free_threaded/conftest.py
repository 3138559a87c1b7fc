"""These tests only mean something on a free-threaded interpreter: elsewhere they are not
collected (`make test-free-threaded` runs them on CPython 3.13t)."""

import sysconfig

if not sysconfig.get_config_var("Py_GIL_DISABLED"):
    collect_ignore = ["test_gil.py"]
