# The everyday commands (CONTRIBUTING.md). Every target uses the project's venv; `make venv` makes it.
PY ?= .venv/bin/python

.PHONY: venv lint format typecheck test-fast test bench

venv:
	python3 -m venv .venv
	.venv/bin/pip install -q -c .ci/constraints.txt -e '.[test]'

lint:  ## ruff: lint rules and formatting, checked (nothing rewritten)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:  ## ruff: fix what the lint rules can fix, then format
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck:  ## mypy --strict on processor/ and grammars/ (configured in pyproject.toml)
	$(PY) -m mypy --cache-dir /dev/null

test-fast:  ## the suite without the Kafka broker and the long profiles (a few minutes)
	$(PY) -m pytest -q -m "not kafka and not slow"

test:  ## the README's test command: the whole suite, broker included
	$(PY) -m pytest

bench:  ## the outage matrix (README's speed table): every driver, every failure share, from one run
	$(PY) benchmarks/bench_outage.py
