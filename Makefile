# cakupan — see README.md. Every target installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A second, separate virtualenv with DuckDB 1.1.3: the serving file must open in 1.1 clients.
DUCKDB11 := .venv-duckdb11
SCALE  ?= 0.02
LANDING ?= data/landing

.PHONY: install run test test-long dev daemon prod-home browser bench bench-scale clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(DUCKDB11)/.installed:
	@test -x $(DUCKDB11)/bin/python || $(PYTHON) -m venv $(DUCKDB11)
	$(DUCKDB11)/bin/python -m pip install -q --disable-pip-version-check duckdb==1.1.3
	@touch $@

install: $(STAMP)

# Without CAKUPAN_HMAC_KEY, the demo uses a local key in data/demo-hmac.key (0600, git-ignored);
# never under CAKUPAN_PROFILE=production, which then refuses to start without the real key.
KEY = CAKUPAN_HMAC_KEY="$${CAKUPAN_HMAC_KEY:-$$(test "$$CAKUPAN_PROFILE" = production || \
      $(BIN)/cakupan demo-key)}"

run: install
	@test -f $(LANDING)/demo_manifest.json || $(BIN)/cakupan demo --out $(LANDING) --scale $(SCALE)
	@$(KEY) $(BIN)/cakupan run --landing $(LANDING)

# The browser test (tests/test_ui.py) drives Debian's Chromium; CI runs as root and installs it.
# Nothing downloads a browser at run time (no `playwright install`).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	fi

# `make test`: the whole suite but the long samples (a fast sample of each stays in it);
# `make test-long`: those long samples (20 seeded kills, ...).
# Three workers (many tests wait on services, sensors and readers: three keep two cores busy),
# one test module each at a time (--dist loadfile: a module's fixtures are built once);
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3
PYTEST = CAKUPAN_DUCKDB11_PYTHON=$(abspath $(DUCKDB11))/bin/python $(BIN)/python -m pytest -q \
         --durations=25 $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
test: install $(DUCKDB11)/.installed browser
	$(PYTEST) -m "not long" $(PYTEST_ARGS)

test-long: install $(DUCKDB11)/.installed browser
	$(PYTEST) -m long $(PYTEST_ARGS)

dev: install
	@test -f $(LANDING)/demo_manifest.json || $(BIN)/cakupan demo --out $(LANDING) --scale $(SCALE)
	@$(KEY) CAKUPAN_LANDING=$(LANDING) $(BIN)/cakupan dev

# The daemon runs the sensors, backfills, the run queue and run monitoring. With
# CAKUPAN_PROFILE=production it uses deploy/dagster.yaml (see docs/operations.md); an exported
# CAKUPAN_LANDING wins over LANDING.
daemon: install
	@$(KEY) CAKUPAN_LANDING="$${CAKUPAN_LANDING:-$(LANDING)}" $(BIN)/cakupan daemon

# A DAGSTER_HOME holding the production profile (PostgreSQL; CAKUPAN_PG_* in the environment).
PROD_HOME ?= data/dagster-production
prod-home: install
	@CAKUPAN_PROFILE=production DAGSTER_HOME=$(PROD_HOME) $(BIN)/python -c \
	  'from pipelines.instance import dagster_home; print(f"export DAGSTER_HOME={dagster_home()} CAKUPAN_PROFILE=production")'

# Benchmarks (bench/README.md): `bench` runs the full, incremental and history scenarios,
# `bench-scale` the scale scenario (0.2, 1, 5). The bench sets its own fixed, non-secret HMAC key;
# landing zones are generated once into data/bench/. E.g. BENCH_ARGS='--repeat 5 --update-readme'.
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-scale: install
	$(BIN)/python bench/run.py --scenario scale $(BENCH_ARGS)

clean:
	rm -rf data/warehouse data/serving
