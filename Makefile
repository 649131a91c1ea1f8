# Two commands on a fresh machine (Python 3.11; torch comes from PyPI or the local wheel cache):
#   make serve   install into .venv and serve the bundled model on http://127.0.0.1:8000
#   make test    install into .venv (with the test extras), lint (ruff), type-check (mypy) and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

# python -m service (= fersnet serve) imports the service before PyTorch, so its OpenMP wait policy applies.
serve: $(VENV)/.installed
	$(PY) -m service --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest
