# cakupan — see README.md. Every target installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A second, separate virtualenv with DuckDB 1.1.3: the serving file must open in 1.1 clients.
DUCKDB11 := .venv-duckdb11
SCALE  ?= 0.02
LANDING ?= data/landing

.PHONY: install run test dev bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(DUCKDB11)/.installed:
	@test -x $(DUCKDB11)/bin/python || $(PYTHON) -m venv $(DUCKDB11)
	$(DUCKDB11)/bin/python -m pip install -q --disable-pip-version-check duckdb==1.1.3
	@touch $@

install: $(STAMP)

# Without CAKUPAN_HMAC_KEY, the demo uses a local key in data/demo-hmac.key (0600, git-ignored).
KEY = CAKUPAN_HMAC_KEY="$${CAKUPAN_HMAC_KEY:-$$($(BIN)/cakupan demo-key)}"

run: install
	@test -f $(LANDING)/demo_manifest.json || $(BIN)/cakupan demo --out $(LANDING) --scale $(SCALE)
	@$(KEY) $(BIN)/cakupan run --landing $(LANDING)

test: install $(DUCKDB11)/.installed
	CAKUPAN_DUCKDB11_PYTHON=$(abspath $(DUCKDB11))/bin/python $(BIN)/python -m pytest -q $(PYTEST_ARGS)

dev: install
	@test -f $(LANDING)/demo_manifest.json || $(BIN)/cakupan demo --out $(LANDING) --scale $(SCALE)
	@$(KEY) CAKUPAN_LANDING=$(LANDING) $(BIN)/cakupan dev

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf data/warehouse data/serving data/dagster
