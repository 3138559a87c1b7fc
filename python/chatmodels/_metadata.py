"""What a provider declares (`ProviderMetadata`) and what an instance is created with
(`ProviderOptions`), with the secret type that keeps API keys out of every output."""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import InvalidConfigError, suggest

__all__ = ["Capability", "ProviderMetadata", "ProviderOptions", "Secret"]


class Capability(str, enum.Enum):
    """What a provider can do. The order is the bit order of the registry's capability sets."""

    CHAT = "chat"
    STREAMING = "streaming"
    TOOL_CALLING = "tool_calling"
    STRUCTURED_OUTPUT = "structured_output"
    JSON_MODE = "json_mode"
    VISION = "vision"
    AUDIO_INPUT = "audio_input"
    REASONING = "reasoning"
    SYSTEM_PROMPT = "system_prompt"
    EMBEDDINGS = "embeddings"

    def __str__(self) -> str:
        return self.value

    @property
    def bit(self) -> int:
        """This capability's bit in a capability mask."""
        return _BITS[self]


_BITS = {cap: 1 << i for i, cap in enumerate(Capability)}


def capability_mask(capabilities: Iterable[Capability]) -> int:
    """The bitset of a set of capabilities."""
    mask = 0
    for cap in capabilities:
        mask |= _BITS[cap]
    return mask


class Secret:
    """A credential that never shows itself: repr, str and format all print ``'**********'``.

    Call `get_secret_value()` at the one place that must send it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def get_secret_value(self) -> str:
        """The credential itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self  # immutable: a copy holds the same secret

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def _tuple_of_str(value: Iterable[str] | None, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        raise TypeError(f"ProviderMetadata.{field} takes a list or tuple of str, not a str")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"ProviderMetadata.{field} takes str items, got {type(item).__name__}")
    return items


@dataclasses.dataclass(frozen=True)
class ProviderMetadata:
    """What a provider declares about itself. Immutable; every field but `name` has a default.

    Sequences may be given as lists or tuples; they are stored as tuples, and `capabilities`
    as a frozenset of `Capability` (plain strings such as ``"chat"`` are accepted).
    """

    name: str
    description: str = ""
    version: str = "0"
    capabilities: frozenset[Capability] = frozenset({Capability.CHAT})
    gen_ai_provider_name: str | None = None
    default_model: str | None = None
    models: tuple[str, ...] = ()
    required_options: tuple[str, ...] = ()
    optional_options: tuple[str, ...] = ()
    supports_health_check: bool = False
    default_timeout: float | None = None
    max_retries: int = 2
    api_key_env: str | None = None
    default_base_url: str | None = None
    provider_specific: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, str):
            raise TypeError("ProviderMetadata.name must be a str")
        caps = self.capabilities
        if isinstance(caps, str):
            raise TypeError("ProviderMetadata.capabilities takes a collection, not a str")
        try:
            set_(self, "capabilities", frozenset(Capability(c) for c in caps))
        except ValueError as exc:
            known = ", ".join(c.value for c in Capability)
            raise ValueError(f"unknown capability ({exc}); known: {known}") from None
        for field in ("models", "required_options", "optional_options"):
            set_(self, field, _tuple_of_str(getattr(self, field), field))
        if self.default_timeout is not None and not _positive_number(self.default_timeout):
            raise ValueError("ProviderMetadata.default_timeout must be a positive number")
        if type(self.max_retries) is not int or self.max_retries < 0:
            raise ValueError("ProviderMetadata.max_retries must be a non-negative int")
        for field in ("description", "version"):
            if not isinstance(getattr(self, field), str):
                raise TypeError(f"ProviderMetadata.{field} must be a str")
        for field in ("gen_ai_provider_name", "default_model", "api_key_env", "default_base_url"):
            if not isinstance(getattr(self, field), (str, type(None))):
                raise TypeError(f"ProviderMetadata.{field} must be a str or None")
        if type(self.supports_health_check) is not bool:
            raise TypeError("ProviderMetadata.supports_health_check must be a bool")
        set_(self, "provider_specific", types.MappingProxyType(dict(self.provider_specific)))

    @property
    def capability_mask(self) -> int:
        """The capabilities as the registry's bitset."""
        return capability_mask(self.capabilities)

    def supports(self, capability: Capability | str) -> bool:
        """Whether the provider declares `capability`."""
        return Capability(capability) in self.capabilities

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.capabilities))


def _positive_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_stop(value: object) -> bool:
    return isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value)
    )


_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _is_key(value: object) -> bool:
    """Whether `value` is a key that can be sent in an HTTP header: latin-1 text without
    control characters (CR, LF, a trailing newline, ...)."""
    if isinstance(value, Secret):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return False
    if not value.isascii():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return False
    return not _HEADER_UNSAFE.search(value)


# field → (check, what the value must be)
_CHECKS: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, str) and v != "", "a non-empty str"),
    "api_key": (
        _is_key,
        "a str that can be sent in an HTTP header (latin-1, no control characters)",
    ),
    "base_url": (
        lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
        "an http:// or https:// URL",
    ),
    "timeout": (_positive_number, "a positive number of seconds"),
    "max_retries": (lambda v: _is_int(v) and 0 <= v <= 100, "an int from 0 to 100"),
    "temperature": (lambda v: _is_number(v) and 0 <= v <= 2, "a number from 0 to 2"),
    "max_tokens": (lambda v: _is_int(v) and v > 0, "a positive int"),
    "top_p": (lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "stop": (_is_stop, "a str or a list of str"),
    "seed": (_is_int, "an int"),
    "enable_metrics": (lambda v: isinstance(v, bool), "a bool"),
    "enable_tracing": (lambda v: isinstance(v, bool), "a bool"),
    "enable_logging": (lambda v: isinstance(v, bool), "a bool"),
    "provider_specific": (lambda v: isinstance(v, Mapping), "a mapping"),
    "stream_idle_timeout": (_positive_number, "a positive number of seconds"),
    "max_response_bytes": (lambda v: _is_int(v) and v > 0, "a positive int"),
    "max_event_bytes": (lambda v: _is_int(v) and v > 0, "a positive int"),
}


@dataclasses.dataclass(frozen=True, repr=False)
class ProviderOptions:
    """The options a provider instance is created with.

    `api_key` is held as a `Secret`: it never appears in a repr, a log record or an error.
    Options that only one provider understands travel in `provider_specific`.

    `timeout` is a deadline for a whole call, retries included; a stream's runs to its first
    event, then `stream_idle_timeout` (default: the call's timeout) bounds each wait for the
    next. `max_response_bytes` (default 32 MiB) bounds a reply's decoded body and
    `max_event_bytes` (default 4 MiB) one stream line or event: past them, invalid_response.
    """

    model: str | None = None
    api_key: Secret | None = None
    base_url: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: str | tuple[str, ...] | None = None
    seed: int | None = None
    enable_metrics: bool = True
    enable_tracing: bool = True
    enable_logging: bool = True
    provider_specific: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    stream_idle_timeout: float | None = None
    max_response_bytes: int | None = None
    max_event_bytes: int | None = None

    def __post_init__(self) -> None:
        values = self.__dict__  # (a frozen dataclass: its fields are set through the dict)
        _check_and_convert(values, _FIELD_NAMES, "ProviderOptions", None)
        values["provider_specific"] = types.MappingProxyType(dict(self.provider_specific))

    def __repr__(self) -> str:
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "api_key":
                shown.append(f"api_key={'Secret(**********)' if value else None}")
            elif value != field.default and not (field.name == "provider_specific" and not value):
                shown.append(f"{field.name}={value!r}")
        return f"ProviderOptions({', '.join(shown)})"

    def __deepcopy__(self, memo: dict[int, Any]) -> ProviderOptions:
        # A mapping proxy cannot be deep-copied: copy the mapping behind it (the key, a
        # Secret, copies as itself).
        import copy

        specific = copy.deepcopy(dict(self.provider_specific), memo)
        return dataclasses.replace(self, provider_specific=specific)

    def api_key_value(self) -> str | None:
        """The API key itself, for the one place that sends it."""
        return self.api_key.get_secret_value() if self.api_key else None

    def replace(self, **changes: Any) -> ProviderOptions:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def validate(
        cls,
        options: ProviderOptions | Mapping[str, Any] | None,
        metadata: ProviderMetadata,
        *,
        op: str,
    ) -> ProviderOptions:
        """Check options against what `metadata` requires and allows.

        Refuses a missing required option, an unknown option (suggesting the closest known
        one) and a value of the wrong type, naming the option. Options that the provider
        declares but that are not standard fields move into `provider_specific`. A missing
        `api_key` is read from the provider's `api_key_env` variable.
        """
        provider = metadata.name
        if options is None:
            raw: dict[str, Any] = {}
        elif isinstance(options, ProviderOptions):
            raw = {name: getattr(options, name) for name in _FIELD_NAMES}
        elif isinstance(options, Mapping):
            raw = dict(options)
        else:
            raise InvalidConfigError(
                f"options must be a ProviderOptions or a mapping, got {type(options).__name__}",
                op=op,
                provider=provider,
            )
        given = raw.pop("provider_specific", None)
        if given is not None and not isinstance(given, Mapping):
            raise InvalidConfigError(
                f"option 'provider_specific' must be a mapping, got {type(given).__name__}",
                op=op,
                provider=provider,
            )
        specific = dict(given or {})
        for key in list(raw):
            if not isinstance(key, str):
                raise InvalidConfigError(
                    f"option names must be str, got {type(key).__name__}", op=op, provider=provider
                )
            if key in _STANDARD:
                continue
            declared = set(metadata.required_options) | set(metadata.optional_options)
            if key in declared:
                specific[key] = raw.pop(key)
                continue
            hint = suggest(key, sorted(_STANDARD | declared))
            raise InvalidConfigError(
                f"unknown option {key!r} for provider {provider!r}"
                + (f"; did you mean {hint!r}?" if hint else ""),
                op=op,
                provider=provider,
            )
        if raw.get("api_key") is None and metadata.api_key_env:
            from_env = os.environ.get(metadata.api_key_env)
            if from_env:
                raw["api_key"] = from_env
        if raw.get("model") is None and metadata.default_model:
            raw["model"] = metadata.default_model
        if raw.get("base_url") is None and metadata.default_base_url:
            raw["base_url"] = metadata.default_base_url
        for required in metadata.required_options:
            value = raw.get(required) if required in _STANDARD else specific.get(required)
            if value is None:
                where = (
                    f" (or set {metadata.api_key_env})"
                    if required == "api_key" and metadata.api_key_env
                    else ""
                )
                raise InvalidConfigError(
                    f"provider {provider!r} requires option {required!r}{where}",
                    op=op,
                    provider=provider,
                )
        if cls is not ProviderOptions:  # a subclass may add fields and checks of its own
            try:
                return cls(**raw, provider_specific=specific)
            except InvalidConfigError as exc:
                raise InvalidConfigError(exc.detail, op=op, provider=provider) from None
        # What `cls(**raw)` does, without the frozen dataclass's setattr per field, and checking
        # only the options given (in field order, as `__post_init__` reports them): a
        # registry creation counts 32,300 instructions this way, 61,900 through `cls(**raw)`
        # (callgrind, CPython 3.11; a Lock+dict lookup is 3,400).
        given = raw if len(raw) < 2 else sorted(raw, key=_FIELD_ORDER.__getitem__)
        values = {**_DEFAULTS, **raw}
        _check_and_convert(values, given, op, provider)
        values["provider_specific"] = types.MappingProxyType(specific)
        made = object.__new__(cls)
        made.__dict__.update(values)
        return made


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ProviderOptions))
_FIELD_ORDER = {name: i for i, name in enumerate(_FIELD_NAMES)}
_STANDARD = frozenset(_FIELD_NAMES) - {"provider_specific"}
_DEFAULTS = {name: ProviderOptions.__dataclass_fields__[name].default for name in _STANDARD}


def _check_and_convert(
    values: dict[str, Any], names: Iterable[str], op: str, provider: str | None
) -> None:
    """Check the options `names` of `values` (a `ProviderOptions`' fields) and convert in
    place: the api key into a `Secret`, `stop` into a tuple."""
    for name in names:
        value = values[name]
        if value is None:
            continue
        check, expected = _CHECKS[name]
        if not check(value):
            raise InvalidConfigError(
                f"option {name!r} must be {expected}, got {type(value).__name__}",
                op=op,
                provider=provider,
            )
    if isinstance(values["api_key"], str):
        values["api_key"] = Secret(values["api_key"])
    if isinstance(values["stop"], list):
        values["stop"] = tuple(values["stop"])
