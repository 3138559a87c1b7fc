"""The dependency-injection container: the tracer, meter and logger providers, the logger and
the settings, and the observer built from them.

    container = (
        Container()
        .with_tracer_provider(provider)
        .with_meter_provider(meter_provider)
        .with_observability_level("standard")
    )
    configure(container=container)  # or chatmodels.configure(tracer_provider=..., ...)

Without providers, the container uses OpenTelemetry's global ones: no-ops until the
application installs an SDK. OpenTelemetry is imported only when something resolves them.
What the calls do with them is not here: `Runtime` (``_runtime``) resolves them for the hot
path, and the observer (``_observer``, whose factory the package registers under
`ObserverKey`) reports each call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._logging import get_logger
from ._otel_private import global_logger_provider
from ._runtime import Runtime
from ._settings import CONTENT_MODES, Level, Settings

if TYPE_CHECKING:
    from .._observe import CallObserver

__all__ = [
    "Container",
    "LoggerProviderKey",
    "MeterProviderKey",
    "ObserverKey",
    "TracerProviderKey",
    "configure",
    "get_container",
    "set_container",
    "set_default",
]

T = TypeVar("T")


class TracerProviderKey:
    """Container key of the OpenTelemetry TracerProvider."""


class MeterProviderKey:
    """Container key of the OpenTelemetry MeterProvider."""


class LoggerProviderKey:
    """Container key of the OpenTelemetry LoggerProvider (for the content event only)."""


class ObserverKey:
    """Container key of the call observer (a `CallObserver`) that models and registries given
    the container report to; by default a `TelemetryObserver` of the container."""


class Container:
    """A small DI container: factories and singletons keyed by type.

    `resolve(Settings)`, `resolve(logging.Logger)`, `resolve(TracerProviderKey)` and
    `resolve(MeterProviderKey)` always succeed (with defaults); other types need `register`
    or `singleton` first.
    """

    def __init__(self) -> None:
        self._factories: dict[type[Any], Callable[[Container], Any]] = {}
        self._instances: dict[type[Any], Any] = {}
        self._lock = threading.RLock()
        self._runtime: Runtime | None = None
        self._observer: CallObserver | None = None
        self._explicit: set[type[Any]] = set()  # the keys given a singleton
        self._settings_args: dict[str, Any] = {}  # the level / capture_content `configure` set
        self._install_defaults()

    def _install_defaults(self) -> None:
        self._factories.update(_DEFAULT_FACTORIES)

    def _derive(self) -> Container:
        """A new container with what was set on this one: its registrations and singletons,
        and the instances its own factories built (not those of the defaults)."""
        new = Container()
        with self._lock:
            new._factories.update(self._factories)
            for key, value in self._instances.items():
                if key in self._explicit or self._factories.get(key) is not _DEFAULT_FACTORIES.get(
                    key
                ):
                    new._instances[key] = value
            new._explicit = set(self._explicit)
            new._settings_args = dict(self._settings_args)
        return new

    # -- the container API ---------------------------------------------------------------

    def register(self, key: type[T], factory: Callable[[Container], T]) -> Container:
        """Make `resolve(key)` call `factory(container)` once and keep the result."""
        if not callable(factory):
            raise TypeError("factory must be callable")
        with self._lock:
            self._factories[key] = factory
            self._instances.pop(key, None)
            self._runtime = None
        return self

    def singleton(self, instance: Any, key: type[Any] | None = None) -> Container:
        """Make `resolve(key)` (default: the instance's type) return `instance`."""
        with self._lock:
            self._instances[key or type(instance)] = instance
            self._explicit.add(key or type(instance))
            self._runtime = None
        return self

    def resolve(self, key: type[T]) -> T:
        """The instance for `key`, built by its factory on first use."""
        try:
            return cast(T, self._instances[key])
        except KeyError:
            pass
        with self._lock:
            if key in self._instances:
                return cast(T, self._instances[key])
            factory = self._factories.get(key) or _DEFAULT_FACTORIES.get(key)
            if factory is None:
                raise LookupError(f"nothing is registered for {key.__name__}")
            instance = factory(self)
            self._instances[key] = instance
            return cast(T, instance)

    def has(self, key: type[Any]) -> bool:
        """Whether `resolve(key)` can succeed."""
        return key in self._instances or key in self._factories

    def clear(self) -> None:
        """Forget every registration and instance; back to the defaults."""
        with self._lock:
            self._factories.clear()
            self._instances.clear()
            self._explicit.clear()
            self._settings_args.clear()
            self._runtime = None
            self._install_defaults()

    def health_check(self) -> dict[str, str]:
        """Try to resolve everything registered: "ok" or the error, per type name."""
        report: dict[str, str] = {}
        for key in list(self._factories) + [k for k in self._instances if k not in self._factories]:
            try:
                self.resolve(key)
            except Exception as exc:  # a report, never a raise
                report[key.__name__] = f"error: {type(exc).__name__}: {exc}"
            else:
                report[key.__name__] = "ok"
        return report

    # -- builders ------------------------------------------------------------------------

    def with_logger(self, logger: logging.Logger) -> Container:
        """Use `logger` for chatmodels' log records."""
        return self.singleton(logger, logging.Logger)

    def with_tracer_provider(self, tracer_provider: Any) -> Container:
        """Use this OpenTelemetry TracerProvider instead of the global one."""
        return self.singleton(tracer_provider, TracerProviderKey)

    def with_meter_provider(self, meter_provider: Any) -> Container:
        """Use this OpenTelemetry MeterProvider instead of the global one."""
        return self.singleton(meter_provider, MeterProviderKey)

    def with_logger_provider(self, logger_provider: Any) -> Container:
        """Use this OpenTelemetry LoggerProvider (for the content event) instead of the
        global one."""
        return self.singleton(logger_provider, LoggerProviderKey)

    def with_observability_level(
        self, level: Level | str, *, capture_content: bool | str | None = None
    ) -> Container:
        """Set the level (off, metrics, standard, debug) and, optionally, content capture."""
        self._settings_args["level"] = level
        if capture_content is not None:
            self._settings_args["capture_content"] = capture_content
        return self.singleton(Settings.from_env(level=level, capture_content=capture_content))

    # -- for the observer ----------------------------------------------------------------

    def observer(self) -> CallObserver:
        """The call observer of this container (one, built on first use by the factory of
        `ObserverKey`): what a model or registry given this container reports its calls to."""
        observer = self._observer
        if observer is None:
            observer = self._observer = cast("CallObserver", self.resolve(ObserverKey))
        return observer

    def runtime(self) -> Runtime:
        """The resolved tracer, metrics, logger and settings (built once)."""
        runtime = self._runtime
        if runtime is None:
            with self._lock:
                if self._runtime is None:
                    self._runtime = Runtime(
                        self.resolve(Settings),
                        self.resolve(logging.Logger),
                        lambda: self.resolve(TracerProviderKey),
                        lambda: self.resolve(MeterProviderKey),
                        lambda: self.resolve(LoggerProviderKey),
                    )
                runtime = self._runtime
        return runtime


def _global_tracer_provider(_: Container) -> Any:
    from opentelemetry import trace

    return trace.get_tracer_provider()


def _global_meter_provider(_: Container) -> Any:
    from opentelemetry import metrics

    return metrics.get_meter_provider()


def _global_logger_provider(_: Container) -> Any:
    return global_logger_provider()


def _env_settings(_: Container) -> Settings:
    return Settings.from_env()


def _default_logger(_: Container) -> logging.Logger:
    return get_logger()


_DEFAULT_FACTORIES: dict[type[Any], Callable[[Container], Any]] = {
    Settings: _env_settings,
    logging.Logger: _default_logger,
    TracerProviderKey: _global_tracer_provider,
    MeterProviderKey: _global_meter_provider,
    LoggerProviderKey: _global_logger_provider,
}


def set_default(key: type[Any], factory: Callable[[Container], Any]) -> None:
    """Make `factory` build `key` in every container without a registration of its own (the
    package registers the observer's factory here: this module knows no observer)."""
    _DEFAULT_FACTORIES[key] = factory


_global: Container | None = None
_global_lock = threading.Lock()


def get_container() -> Container:
    """The global container (created with the defaults on first use)."""
    container = _global
    if container is None:
        with _global_lock:
            if _global is None:
                set_container(Container())
            container = _global
    assert container is not None
    return container


def set_container(container: Container) -> Container | None:
    """Install `container` as the global one; returns the previous one."""
    global _global
    previous, _global = _global, container
    return previous


def configure(
    *,
    tracer_provider: Any | None = None,
    meter_provider: Any | None = None,
    logger: logging.Logger | None = None,
    level: Level | str | None = None,
    capture_content: bool | str | None = None,
    container: Container | None = None,
    reset: bool = False,
    logger_provider: Any | None = None,
) -> Container:
    """Set up chatmodels' telemetry and install it as the global container.

    Each call changes only what it names and keeps what earlier calls set: after
    ``configure(tracer_provider=tp)``, ``configure(capture_content=True)`` still sends spans to
    `tp`. ``reset=True`` starts over from the defaults first: ``configure(reset=True)`` alone
    puts every default back. The defaults: OpenTelemetry's global providers, the level
    ``standard`` (or CHATMODELS_OBSERVABILITY_LEVEL; OTEL_SDK_DISABLED=true forces ``off``),
    content capture from OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.

    `capture_content`: True (content on spans), False, or where the content goes:
    ``"NO_CONTENT"``, ``"SPAN_ONLY"``, ``"EVENT_ONLY"`` or ``"SPAN_AND_EVENT"`` (the
    event is the conventions' ``gen_ai.client.inference.operation.details``, emitted through
    `logger_provider`, default OpenTelemetry's global one). `container` installs that
    container instead (the other arguments applied to it).

    Example:
        >>> chatmodels.configure(tracer_provider=provider, level="metrics")
        >>> chatmodels.configure(capture_content=True)  # still `provider`, still "metrics"
        >>> chatmodels.configure(reset=True)            # back to the defaults
    """
    if container is not None:
        built = container
    elif reset:
        built = Container()
    else:
        current = _global
        built = current._derive() if current is not None else Container()
    if tracer_provider is not None:
        built.with_tracer_provider(tracer_provider)
    if meter_provider is not None:
        built.with_meter_provider(meter_provider)
    if logger_provider is not None:
        built.with_logger_provider(logger_provider)
    if logger is not None:
        built.with_logger(logger)
    if level is not None or capture_content is not None:
        args = built._settings_args
        if not args and Settings in built._explicit:  # a Settings given as a singleton
            given = built.resolve(Settings)
            on = (given.capture_content, given.capture_content_events)
            mode = next(name for name, value in CONTENT_MODES.items() if value == on)
            args.update(level=given.level, capture_content=mode)
        if level is not None:
            args["level"] = level
        if capture_content is not None:
            args["capture_content"] = capture_content
        built.singleton(Settings.from_env(**args))
    set_container(built)
    return built
