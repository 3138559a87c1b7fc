"""Routes declared in a TOML file: `load_config` and the checks behind `check-config`.

The file has one table per route under ``routes``, with the fields of `register_route` and
an array of deployments with the fields of `Deployment`::

    [routes.chat]
    strategy = "priority"
    timeout = 30.0

    [[routes.chat.deployments]]
    provider = "openai"
    options = { model = "gpt-4o-mini" }      # the key from OPENAI_API_KEY, as without a file
    rpm = 500

    [[routes.chat.deployments]]
    provider = "anthropic"
    options = { model = "claude-haiku-4-5", api_key = { env = "ANTHROPIC_KEY_EU" } }

An option written ``{ env = "NAME" }`` takes its value from that environment variable. Every
error names the file and the key path (``routes.chat.deployments[1].rpm``, counting from 0),
with a did-you-mean for a misspelt key; nothing from a refused file is registered.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ChatModelError, InvalidConfigError, suggest
from ._deployment import Deployment
from ._route import STRATEGIES, Route, _route_of
from ._types import Breaker

if TYPE_CHECKING:
    from .._registry import ProviderRegistry

__all__ = ["CONFIG_ENV", "RouteSpec", "load_config", "read_config"]

CONFIG_ENV = "CHATMODELS_CONFIG"
"""The environment variable naming a file that the global registry loads on first use."""

_ROUTE_KEYS = (
    "strategy",
    "timeout",
    "failover_on",
    "max_wait",
    "breaker",
    "state",
    "deployments",
)
_DEPLOYMENT_KEYS = (
    "provider",
    "options",
    "weight",
    "rpm",
    "tpm",
    "max_concurrency",
    "context_window",
)
_BREAKER_KEYS = ("failures", "window", "failure_rate", "min_calls", "cooldown", "max_cooldown")


class RouteSpec:
    """One route read from a file: the arguments of its `register_route` call."""

    __slots__ = ("deployments", "name", "settings")

    def __init__(self, name: str, deployments: list[Deployment], settings: dict[str, Any]):
        self.name = name
        self.deployments = deployments
        self.settings = settings

    def needs(self) -> set[str]:
        """The provider names its deployments use (some may be routes of the same file)."""
        return {d.provider for d in self.deployments}


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, where: str, detail: str) -> InvalidConfigError:
        return InvalidConfigError(f"{self.path}: {where}: {detail}", op="load_config")

    def table(self, value: object, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(where, f"must be a table, got {_kind(value)}")
        return value

    def keys(self, table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in known:
                hint = suggest(key, known)
                raise self.error(
                    f"{where}.{key}",
                    "unknown key"
                    + (f"; did you mean {hint!r}?" if hint else "")
                    + f" (known: {', '.join(known)})",
                )

    def number(self, value: object, where: str, *, integer: bool = False) -> float | int:
        if integer:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(where, f"must be an integer, got {_kind(value)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(where, f"must be a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise self.error(where, f"must be finite, got {value!r}")
        return value

    def option(self, value: object, where: str) -> object:
        if isinstance(value, Mapping) and set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or not name:
                raise self.error(f"{where}.env", "must be the name of an environment variable")
            found = os.environ.get(name)
            if found is None:
                raise self.error(where, f"the environment variable {name!r} is not set")
            return found
        return value

    def deployment(self, raw: object, where: str) -> Deployment:
        table = self.table(raw, where)
        self.keys(table, _DEPLOYMENT_KEYS, where)
        provider = table.get("provider")
        if not isinstance(provider, str) or not provider:
            raise self.error(f"{where}.provider", f"must be a provider name, got {_kind(provider)}")
        options: dict[str, Any] = {}
        if "options" in table:
            given = self.table(table["options"], f"{where}.options")
            options = {k: self.option(v, f"{where}.options.{k}") for k, v in given.items()}
        kwargs: dict[str, Any] = {}
        if "weight" in table:
            kwargs["weight"] = self.number(table["weight"], f"{where}.weight")
        for key in ("rpm", "tpm", "max_concurrency", "context_window"):
            if key in table:
                kwargs[key] = self.number(table[key], f"{where}.{key}", integer=True)
        try:
            return Deployment(provider, options, **kwargs)
        except InvalidConfigError as exc:
            field = exc.detail.split(" ", 1)[0].removeprefix("Deployment.")
            raise self.error(f"{where}.{field}", exc.detail) from None

    def breaker(self, raw: object, where: str) -> Breaker | None:
        if raw is False:
            return None
        table = self.table(raw, where)
        self.keys(table, _BREAKER_KEYS, where)
        kwargs = {
            k: self.number(v, f"{where}.{k}", integer=k in ("failures", "min_calls"))
            for k, v in table.items()
        }
        try:
            return Breaker(**kwargs)  # type: ignore[arg-type]
        except InvalidConfigError as exc:
            field = exc.detail.split(" ", 1)[0].removeprefix("Breaker.")
            raise self.error(f"{where}.{field}", exc.detail) from None

    def state(self, raw: object, where: str) -> object:
        """A `RedisState` for ``state = "redis://..."`` (or ``{env = NAME}``)."""
        value = self.option(raw, where)
        if not isinstance(value, str):
            raise self.error(
                where, f"must be a redis://, rediss:// or unix:// URL, got {_kind(value)}"
            )
        from ._redis import RedisState

        try:
            return RedisState(value)
        except InvalidConfigError as exc:
            raise self.error(where, exc.detail) from None

    def route(self, name: str, raw: object) -> RouteSpec:
        where = f"routes.{name}"
        table = self.table(raw, where)
        self.keys(table, _ROUTE_KEYS, where)
        settings: dict[str, Any] = {}
        if "strategy" in table:
            strategy = table["strategy"]
            if strategy not in STRATEGIES:
                hint = suggest(str(strategy), STRATEGIES)
                raise self.error(
                    f"{where}.strategy",
                    f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
                    + (f"; did you mean {hint!r}?" if hint else ""),
                )
            settings["strategy"] = strategy
        for key in ("timeout", "max_wait"):
            if key in table:
                settings[key] = self.number(table[key], f"{where}.{key}")
        if "failover_on" in table:
            codes = table["failover_on"]
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                raise self.error(f"{where}.failover_on", "must be a list of error codes")
            settings["failover_on"] = codes
        if "breaker" in table:
            settings["breaker"] = self.breaker(table["breaker"], f"{where}.breaker")
        if "state" in table:
            settings["state"] = self.state(table["state"], f"{where}.state")
        deployments = table.get("deployments")
        if not isinstance(deployments, list) or not deployments:
            raise self.error(f"{where}.deployments", "must be a non-empty array of tables")
        parsed = [
            self.deployment(d, f"{where}.deployments[{i}]") for i, d in enumerate(deployments)
        ]
        return RouteSpec(name, parsed, settings)


def _kind(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - Python 3.10 without the tomli backport
        raise InvalidConfigError(
            "reading a TOML config on Python 3.10 needs tomli: pip install tomli",
            op="load_config",
        ) from None
    return tomli


def read_config(path: str | os.PathLike[str]) -> list[RouteSpec]:
    """Parse and check a config file; the routes it declares, in dependency order."""
    shown = os.fspath(path)
    reader = _Reader(shown)
    toml = _toml()
    try:
        data = toml.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidConfigError(
            f"{shown}: cannot read the file: {exc.strerror or exc}", op="load_config"
        ) from None
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidConfigError(f"{shown}: not valid TOML: {exc}", op="load_config") from None
    reader.keys(data, ("routes",), "")
    routes = reader.table(data.get("routes", {}), "routes")
    specs = {name: reader.route(name, raw) for name, raw in routes.items()}
    # Routes of the same file that use each other are registered dependencies first.
    ordered: list[RouteSpec] = []
    visiting: set[str] = set()

    def visit(spec: RouteSpec) -> None:
        if spec in ordered:
            return
        if spec.name in visiting:
            raise reader.error(f"routes.{spec.name}", "its deployments form a cycle of routes")
        visiting.add(spec.name)
        for need in sorted(spec.needs()):
            if need in specs:
                visit(specs[need])
        visiting.discard(spec.name)
        ordered.append(spec)

    for spec in specs.values():
        visit(spec)
    return ordered


def load_config(
    path: str | os.PathLike[str],
    *,
    registry: ProviderRegistry | None = None,
    replace: bool = False,
) -> list[str]:
    """Register the routes a TOML file declares; their names, in the order registered.

    All or nothing: a file with any error (an unknown key, a wrong type, an unknown provider,
    a missing environment variable) raises invalid_config naming the file and the key path,
    and registers none of its routes. `replace=True` swaps routes already registered.
    Registers in `registry`, default: the global one.

    Example:
        >>> chatmodels.load_config("routes.toml")
        ['chat']
    """
    if registry is None:
        from .._global import get_global_registry

        registry = get_global_registry()
    shown = os.fspath(path)
    specs = read_config(path)
    known = set(registry.names()) | {s.name for s in specs}
    for spec in specs:
        for i, d in enumerate(spec.deployments):
            if d.provider not in known:
                hint = suggest(d.provider, sorted(known))
                raise InvalidConfigError(
                    f"{shown}: routes.{spec.name}.deployments[{i}].provider: no provider named"
                    f" {d.provider!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                    op="load_config",
                )
    done: list[str] = []
    previous: dict[str, Route] = {}
    try:
        for spec in specs:
            old = _route_of(registry, spec.name) if replace else None
            if old is not None:
                previous[spec.name] = old
            registry.register_route(spec.name, spec.deployments, replace=replace, **spec.settings)
            done.append(spec.name)
    except ChatModelError as exc:
        _undo(registry, done, previous)
        if not isinstance(exc, InvalidConfigError):
            raise
        raise InvalidConfigError(
            f"{shown}: routes.{spec.name}: {exc.detail}", op="load_config"
        ) from exc
    return done


def _undo(registry: ProviderRegistry, done: list[str], previous: dict[str, Route]) -> None:
    """Take back the routes a refused file registered; the ones it replaced come back (with
    new models and fresh state: the old ones were closed)."""
    for name in reversed(done):
        old = previous.get(name)
        if old is None:
            registry.unregister(name)
            continue
        registry.register_route(
            name,
            old.deployments,
            strategy=old.strategy,
            timeout=old.timeout,
            failover_on=old.failover_on,
            breaker=old.breaker,
            max_wait=old.max_wait,
            clock=old.clock,
            replace=True,
            state=old.state_source,
        )
