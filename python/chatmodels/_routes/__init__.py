"""Routes: one registered name over several deployments (private package).

`_types` holds the public value types (`Breaker`, `DeploymentStatus`), `_state` the
per-deployment state interface, `_pystate` its pure-Python implementation; the Rust one is
`chatmodels._core.RouteState`.
"""
