# The README's two commands are `make demo` and `make test`; each sets up everything it needs.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYO3_PYTHON := $(abspath $(PY))
# mkdocs-material prints a banner about its successor on every build; keep the logs to the build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: help
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@# the Redis state tests start a real redis-server on loopback
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --group dev
	touch $@

.PHONY: install
install: $(VENV)/.installed  ## create .venv with the development tools

.PHONY: build-dev
build-dev: install  ## build the extension into .venv (release mode)
	$(VENV)/bin/maturin develop --release -q

.PHONY: demo
demo: build-dev  ## build, then run the demo
	$(PY) examples/demo.py

.PHONY: lint
lint: build-dev lint-workflows  ## ruff, mypy --strict, the stub checked against the binary, clippy, workflows
	$(VENV)/bin/ruff check python tests benches examples scripts
	$(VENV)/bin/ruff format --check python tests benches examples scripts
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest chatmodels._core
	cargo clippy --all-targets -q -- -D warnings

.PHONY: lint-workflows
lint-workflows: install  ## actionlint and zizmor (offline) on .github/workflows
	$(VENV)/bin/actionlint
	$(VENV)/bin/zizmor --offline --config .github/zizmor.yml .github/workflows

.PHONY: wheels
wheels: install  ## manylinux_2_17 wheels (CPython python3 and 3.13t) and the sdist, into dist/
	scripts/build-wheels.sh $(PYTHON)

.PHONY: check-dist
check-dist: install  ## auditwheel and twine check --strict on what dist/ holds
	$(PY) scripts/check_dist.py dist

.PHONY: test-rust
test-rust: install  ## cargo test
	cargo test -q

.PHONY: test-python
test-python: wheels  ## check dist/, install the manylinux wheel in a fresh venv, pytest, docs --strict
	scripts/test-wheel.sh $(PYTHON)

.PHONY: test-sdist
test-sdist: wheels  ## build the sdist in a fresh venv (pip), smoke-test it on both backends
	scripts/test-sdist.sh $(PYTHON)

.PHONY: test-free-threaded
test-free-threaded: wheels  ## the registry suite on CPython 3.13t without the GIL (the cp313t wheel)
	scripts/test-free-threaded.sh

.PHONY: test
test: test-rust test-python test-sdist lint test-free-threaded  ## everything CI runs

.PHONY: docs
docs: install  ## build the documentation site into site/ (mkdocs --strict)
	$(VENV)/bin/mkdocs build --strict

.PHONY: docs-serve
docs-serve: install  ## serve the documentation site on http://127.0.0.1:8000, rebuilt on edits
	$(VENV)/bin/mkdocs serve --strict

.PHONY: bench
bench: build-dev  ## the benchmark tables (ratios measured in the same run)
	$(PY) benches/bench_registry.py
	$(PY) benches/bench_chat.py
	$(PY) benches/bench_telemetry.py
	$(PY) benches/bench_telemetry_cycles.py
	$(PY) benches/bench_routes.py
	$(PY) benches/bench_routes_cycles.py
	$(PY) benches/bench_routes_redis.py

.PHONY: clean
clean:  ## remove build outputs and virtual environments
	rm -rf target dist site .venv .venv-test .venv-ft .venv-sdist
