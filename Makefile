# Quick start: `make demo` runs the main job on the embedded defaults; `make test` passes the tests.
# Both install what they need on a fresh machine: the venv, the Kafka jars (Maven), PostgreSQL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native
NATIVE_SOURCES := $(shell $(PYTHON) -P domain/_compiled.py)

.PHONY: native system-deps install jars postgres lint typecheck test test-fast demo bench dashboard clean infra-up infra-down chaos

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) $(NATIVE)

# The rules and the per-record path compiled with mypyc (infra/native.py; the modules are listed
# in domain/_compiled.py), again whenever one of their sources changed.
# A build that fails leaves the Python sources to run: the service and the tests work either way.
$(NATIVE): $(STAMP) $(NATIVE_SOURCES)
	-$(BIN)/python -m infra.native build
	@touch $(NATIVE)

native: $(NATIVE)

system-deps:
	bash infra/system-deps.sh

jars: $(STAMP)
	@command -v java >/dev/null && command -v mvn >/dev/null || bash infra/system-deps.sh
	$(BIN)/python -c "from infra.kafka_local import ensure_jars; from infra.settings import get_settings; print(ensure_jars(get_settings()))"

postgres:
	bash infra/postgres.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite: lint, types, unit, property, integration (real Kafka), SQLite and PostgreSQL.
# The rules run compiled where they were built: the unit and property tests run once more on
# their Python sources (SPACES_PURE_DOMAIN=1), so both forms pass the same tests.
test: system-deps $(STAMP) $(NATIVE) jars
	@PG_URL=$$(bash infra/postgres.sh | tail -n 1) && \
	$(MAKE) --no-print-directory lint typecheck && \
	$(BIN)/python -m infra.native status && \
	SPACES_TEST_POSTGRES_URL=$$PG_URL $(BIN)/python -m pytest -ra --durations=8 $(PYTEST_ARGS) && \
	SPACES_TEST_POSTGRES_URL=$$PG_URL SPACES_PURE_DOMAIN=1 $(BIN)/python -m pytest -m "not integration and not browser" -q

test-fast: $(STAMP) $(NATIVE)
	$(BIN)/python -m pytest -m "not integration and not browser" -q

demo: $(STAMP) $(NATIVE) jars
	$(BIN)/spaces demo

dashboard: $(STAMP) $(NATIVE)
	$(BIN)/spaces dashboard

bench: $(STAMP) $(NATIVE) jars
	$(BIN)/python -m bench.run

# The service under faults, then the checker (docs/chaos.md): 100,000 inputs over 500 rooms,
# 12 SIGKILLs, a broker restart, rebalances. BROKERS=3 runs it on a three-node cluster and
# kills one node mid-stream. CHAOS_ARGS passes more options (python -m chaos --help).
BROKERS ?= 1
chaos: $(STAMP) $(NATIVE) jars
	$(BIN)/python -m chaos --brokers $(BROKERS) $(CHAOS_ARGS)

infra-up: $(STAMP) jars
	$(BIN)/spaces infra up

infra-down: $(STAMP)
	$(BIN)/spaces infra down

clean:
	-$(BIN)/spaces infra down
	rm -rf .spaces artifacts
