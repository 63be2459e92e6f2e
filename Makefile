VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

demo: $(STAMP)
	$(VENV)/bin/invoice-sync demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check connectors store workers bench tests
	$(PY) -m mypy connectors store workers tests --ignore-missing-imports

bench: $(STAMP)
	$(PY) bench/sync_bench.py
	$(PY) bench/api_bench.py
	$(PY) bench/bank_bench.py
	$(PY) bench/reconcile_bench.py
	$(PY) bench/push_bench.py

clean:
	rm -rf $(VENV) invoice-sync-demo.db* invoice-sync-demo-rabobank.csv .pytest_cache
