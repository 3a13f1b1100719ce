# wikibot: `make run` starts the platform, `make test` runs the whole suite (`make test-postgres`: on PostgreSQL), `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= var

.PHONY: install run test test-postgres bench clean

install: $(STAMP)

# One install step for every target; constraints.txt pins torch to the CPU wheel on disk.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: install
	$(VENV)/bin/wikibot init --data $(DATA)
	$(VENV)/bin/wikibot serve --data $(DATA)

test: install
	$(PY) -m pytest -q

# The whole suite again with every platform it starts on PostgreSQL (a throwaway server: initdb on PATH).
test-postgres: install
	WIKIBOT_TEST_STORE=postgres $(PY) -m pytest -q

bench: install
	$(PY) bench/bench_git.py --pages 500 --runs 5
	$(PY) bench/bench_git.py --pages 5000 --runs 3
	$(PY) bench/bench_search.py
	$(PY) bench/bench_mcp.py
	$(PY) bench/bench_tenants.py
	$(PY) bench/bench_web.py
	$(PY) bench/bench_dashboard.py
	$(PY) bench/bench_history.py

clean:
	rm -rf $(VENV) build *.egg-info
