"""The project around the package: the CLI, the test servers of `chatmodels.testing`, the docs,
the release files and the repository's paths."""
