"""`ChatModel`: the base every provider instance derives from."""

from __future__ import annotations

from types import TracebackType

from ._metadata import ProviderMetadata, ProviderOptions

__all__ = ["ChatModel"]


class ChatModel:
    """A provider instance: what a registered creator returns.

    It knows its provider's name and metadata, the options it was created with and its
    default model. `close()` releases what it holds (connections); it is also a sync and an
    async context manager.
    """

    def __init__(self, metadata: ProviderMetadata, options: ProviderOptions | None = None) -> None:
        self.metadata = metadata
        self.options = options if options is not None else ProviderOptions()
        self._closed = False

    @property
    def provider(self) -> str:
        """The registered name of the provider."""
        return self.metadata.name

    @property
    def model(self) -> str | None:
        """The default model of this instance."""
        return self.options.model or self.metadata.default_model

    @property
    def closed(self) -> bool:
        """Whether `close()` has run."""
        return self._closed

    def close(self) -> None:
        """Release connections and other resources. Safe to call twice."""
        self._closed = True

    async def aclose(self) -> None:
        """Async `close()`."""
        self.close()

    def __enter__(self) -> ChatModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> ChatModel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider!r} model={self.model!r}>"
