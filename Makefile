# `make demo` and `make test` are the whole set-up: each (re)creates .venv when it is missing or
# when requirements.txt / setup.py changed (the stamp file name carries their hash).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.stamp-$(shell cat requirements.txt setup.py | sha256sum | cut -c1-16)
DEMO_DIR ?= demo_output

.PHONY: venv test demo lint clean

venv: $(STAMP)

$(STAMP):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --no-input -r requirements.txt -e .
	touch $@

test: venv
	$(VENV)/bin/python -m pytest -q tests

# The demo refuses a non-empty output folder; `make demo` owns $(DEMO_DIR), so a rerun starts afresh.
demo: venv
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/brainmvp demo --output $(DEMO_DIR)

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
