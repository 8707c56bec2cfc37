# Multi-Region Infrastructure Deployment: developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
LAMBDA_VENV := .venv-lambda
export SAM_CLI_TELEMETRY := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)
FUNCTIONS := $(wildcard functions/*/app.py)
# make demo SCENARIO=rejection MODE=retain ARGS=--ask  (python -m rehearsal run --help lists every option)
SCENARIO ?= demo
MODE ?= delete
ARGS ?=

# checkov runs from a virtual environment of its own (its pins clash with the development tools')
CHECKOV_VENV := .venv-checkov

.PHONY: help demo emulator venv lint typecheck template build unit e2e test audit benchmark clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-10s %s\n", $$1, $$2}'

demo: venv ## Rehearse the whole pipeline locally: a first release, then a second change, approved
	$(BIN)/python -m rehearsal run --scenario $(SCENARIO) --stage-mode $(MODE) $(ARGS)

emulator: venv ## Start the seeded local emulator and write events/env.json for sam local invoke
	$(BIN)/python -m rehearsal emulator --env-file events/env.json $(ARGS)

$(BIN)/activate: requirements-dev.txt layers/common/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/activate ## Create .venv with the pinned development tools

lint: venv ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy --strict on the layer, every handler, the rehearsal, local_aws, the tests and the benchmark
	$(BIN)/mypy layers/common/release_pipeline rehearsal local_aws tests benchmarks audit
	@for handler in $(FUNCTIONS); do echo "mypy $$handler"; $(BIN)/mypy $$handler || exit 1; done

template: venv ## cfn-lint on template.yaml and the target-account bootstrap; sam validate --lint
	$(BIN)/cfn-lint template.yaml bootstrap/target-account.yaml
	$(BIN)/sam validate --lint

build: venv ## sam build (needs python3.13 on PATH; .venv provides it)
	$(BIN)/sam build --cached --parallel

unit: venv ## pytest: unit and integration tests, without the whole-pipeline rehearsals (the fast path)
	$(BIN)/pytest -m "not e2e"

e2e: venv ## pytest: the whole-pipeline rehearsals (every scenario, both stage modes) and sam local invoke
	$(BIN)/pytest -m e2e

test: lint typecheck template build unit e2e ## Everything CI runs: lint, types, template checks, build, tests

# A python3.13 holding only what the Lambda runtime provides (boto3, botocore): the cold-start benchmark's
$(LAMBDA_VENV)/bin/activate: benchmarks/lambda-runtime.txt
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --no-deps -r benchmarks/lambda-runtime.txt
	touch $@

$(CHECKOV_VENV)/bin/checkov: audit/checkov-requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r audit/checkov-requirements.txt
	touch $@

audit: venv $(CHECKOV_VENV)/bin/checkov ## Fuzz, faults, IAM mutation, static scans, hostile artifacts: one table, fails on a breach
	CHECKOV=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov PYTHONPATH=layers/common:. $(BIN)/python -m audit

benchmark: venv build $(LAMBDA_VENV)/bin/activate ## Cold start as built (ratio to a boto3-only handler), memory, cost per release, rollout at scale
	$(BIN)/python benchmarks/cold_start.py
	PYTHONPATH=layers/common:. $(BIN)/python benchmarks/memory.py
	PYTHONPATH=layers/common:. $(BIN)/python benchmarks/release_cost.py
	PYTHONPATH=layers/common:. $(BIN)/python benchmarks/rollout_scale.py

clean: ## Remove the virtualenv and build output
	rm -rf $(VENV) $(LAMBDA_VENV) $(CHECKOV_VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache events/local events/env.json
