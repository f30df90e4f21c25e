# visitmail: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: run test install system-deps services lint typecheck pytest e2e bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: install, migrate, serve UI + API + worker with a local dev inbox on 127.0.0.1:8000
run: install
	$(BIN)/visitmail migrate
	$(BIN)/visitmail serve --dev-inbox --host 127.0.0.1 --port 8000

## Debian packages the tests need (installed as root when missing)
system-deps:
	scripts/install-system-deps.sh scripts/system-packages.txt

## the services the tests talk to (PostgreSQL), started if they do not answer
services: system-deps
	scripts/ensure-services.sh

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy --strict bench tests/bench

pytest: install services
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --cov --cov-report=term --cov-report=xml:test-artifacts/coverage.xml

## make test: everything CI runs, from a fresh clone
test: install services lint typecheck pytest

## the benchmark suite (docs/benchmarks.md): every scenario with its peers, full size, both
## databases; tables, test-artifacts/bench.json and test-artifacts/bench.png
bench: install services
	scripts/install-system-deps.sh bench/system-packages.txt
	command -v npm >/dev/null 2>&1 || scripts/install-system-deps.sh bench/npm-package.txt
	$(BIN)/visitmail bench --size full --databases sqlite,postgresql \
		--json test-artifacts/bench.json --chart test-artifacts/bench.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts .coverage*
