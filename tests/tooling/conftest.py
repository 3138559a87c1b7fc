"""The project around the package: the CLI, the test servers of `chatmodels.testing`, the docs,
the release files, the repository's paths and the package's import graph."""
