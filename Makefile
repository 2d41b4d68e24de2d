# threshold studio: `make run` starts the app on the demo data, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PORT   ?= 8501
STUDIO_DB ?= data/studio.duckdb
export STUDIO_DB

.PHONY: run test bench lint demo clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

$(STUDIO_DB): $(VENV)/.runtime
	$(PY) -m data.generate --out data/demo --db $(STUDIO_DB)

demo: $(VENV)/.runtime   ## rebuild the demo CSVs and database from the seeded generator
	rm -f $(STUDIO_DB) $(STUDIO_DB).wal
	$(PY) -m data.generate --out data/demo --db $(STUDIO_DB)

run: $(VENV)/.runtime $(STUDIO_DB)
	$(PY) -m ui.serve run app.py --server.port $(PORT)

test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

bench: $(VENV)/.dev   ## long benchmarks; each prints its figures
	$(PY) -m pytest -m bench -s
	for b in bench/*.py; do $(PY) $$b || exit 1; done

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) data/demo data/bench $(STUDIO_DB) $(STUDIO_DB).wal
