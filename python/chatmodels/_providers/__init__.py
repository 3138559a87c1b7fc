"""Provider adapters, one module per wire format. Each module is imported on the first use of
one of its providers (see `chatmodels._builtins`), never by `import chatmodels`."""
