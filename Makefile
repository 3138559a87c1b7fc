# The README's two commands are `make demo` and `make test`; each sets up everything it needs.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYO3_PYTHON := $(abspath $(PY))

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
lint: build-dev  ## ruff, mypy --strict, the stub checked against the binary, clippy
	$(VENV)/bin/ruff check python tests benches examples
	$(VENV)/bin/ruff format --check python tests benches examples
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest chatmodels._core
	cargo clippy --all-targets -q -- -D warnings

.PHONY: test-rust
test-rust: install  ## cargo test
	cargo test -q

.PHONY: test-python
test-python: install  ## build a wheel, install it in a fresh venv, run pytest against it
	scripts/test-wheel.sh $(PYTHON)

.PHONY: test-free-threaded
test-free-threaded: install  ## the registry suite on CPython 3.13t without the GIL
	scripts/test-free-threaded.sh

.PHONY: test
test: test-rust test-python lint test-free-threaded  ## everything CI runs

.PHONY: bench
bench: build-dev  ## the benchmark tables (ratios measured in the same run)
	$(PY) benches/bench_registry.py
	$(PY) benches/bench_chat.py
	$(PY) benches/bench_telemetry.py
	$(PY) benches/bench_telemetry_cycles.py

.PHONY: clean
clean:  ## remove build outputs and virtual environments
	rm -rf target dist .venv .venv-test .venv-ft
