# Two set-up commands on a fresh machine: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_STAMP := .venv/.system-packages

export CONF CONF_FILE

.PHONY: demo run test test-fast hub-ls hub-token install system-packages lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the dependency declaration or the lock changes. torch is pinned to 2.13.0 in the
# lock, so pip takes the local CPU wheel instead of pulling several GB of CUDA packages.
# --no-compile: byte-compiling every module of torch, Airflow and transformers up front costs a fresh machine
# (and CI's clean clone) time for files never imported; Python compiles what it imports on first use.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --no-compile torch==2.13.0
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -e ".[airflow,demo,dev,bench]"
	touch $(STAMP)

install: $(STAMP)

# System packages the test suite needs (we run as root here), installed only when missing:
# docker-compose renders and checks docker-compose.yaml (no Docker engine needed for `config`);
# postgresql-15 provides the server the SQL-source tests start on loopback;
# chromium + chromium-driver drive the browser test of the UI plugin (Selenium never downloads a browser).
SYSTEM_PACKAGES := docker-compose postgresql-15 redis-server chromium chromium-driver
system-packages:
	@if [ -n "$(SYSTEM_PACKAGES)" ]; then \
	  missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi; \
	fi

demo: $(STAMP)
	$(PY) scripts/run_dag.py

run: $(STAMP)
	$(PY) scripts/run_dag.py

test: $(STAMP) system-packages
	$(PY) -m pytest tests

hub-ls: $(STAMP)
	@$(PY) -m hub_emulator ls --root .localhub

hub-token: $(STAMP)
	@$(PY) -m hub_emulator token --root .localhub

# Regenerate the lock from the current environment (after changing pyproject.toml).
lock: $(PY)
	$(PY) -m pip freeze --exclude-editable | grep -v '^reranker-tasks' > constraints.txt

clean:
	rm -rf .airflow artifacts .hf_home
