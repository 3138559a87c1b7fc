"""The providers: `_builtins` (the built-in providers' metadata, registered with lazy
creators), `_http` (`HTTPChatModel`, a `ChatModel` driven by a wire-format adapter over the
transport), `_common` (what the adapters share) and one adapter module per wire format. An
adapter module is imported on the first use of one of its providers, never by
`import chatmodels`."""
