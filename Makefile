# Two entry points (see README): `make run` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test system-deps bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) app.py

# chromium (browser tests) and postgresql (storage tests) come from Debian's packages
system-deps:
	bash scripts/system_deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest -q tests

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b" >&2; $(PY) $$b || exit 1; done   # one JSON line per benchmark on stdout

clean:
	rm -rf $(VENV) .cache .pytest_cache test-output
