# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install demo test lint typecheck validate unit integration sam-local clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# checkov pins boto3 and packaging exactly (boto3==1.35.49, packaging<24), which aws-sam-cli (boto3==1.43.*) and
# pytest 9 (packaging>=24) cannot share: it gets its own environment, linked next to the project's python.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(BIN)/checkov
$(CHECKOV): | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	ln -sf ../checkov/bin/checkov $(CHECKOV)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/picsart-local demo --out out

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# sam validate --lint, cfn-lint and checkov, each run once: by tests/test_template.py (so `test` runs them too).
validate: $(STAMP) $(CHECKOV)
	$(BIN)/pytest tests/test_template.py

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/emulator

integration: $(STAMP)
	$(BIN)/pytest tests/integration

# What `sam local invoke` needs (tests/sam/): Docker (Debian's docker.io, as root), a daemon without a bridge that
# leaves the firewall alone, and the Lambda python3.13 image (pulled, or a stand-in built offline). Each is made
# only when missing and reused after; a working Docker with the official image is used as it is. A machine that
# cannot have Docker (not root, no apt-get) is told so, and tests/sam/ skip there; on CI (CI=true) it fails.
sam-local: $(STAMP)
	$(BIN)/python -m picsart_local.sam_local.prepare

test: lint typecheck $(CHECKOV) sam-local
	$(BIN)/pytest

# The tool catalogue and every tool's parameter model, generated from Picsart's spec (docs/picsart-api.md, "The tool
# catalogue"); the generator formats what it writes with `ruff format`. tests/unit/test_tool_models.py fails on drift.
.PHONY: tool-models
tool-models: $(STAMP)
	$(BIN)/python -m picsart_local.toolgen

# Rate-limit strategies compared under a burst of uploads (several minutes): a table, out/bench.json, out/bench.png;
# the table is written into docs/benchmark.md (between its bench markers) and the plot to docs/bench.png.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/picsart-local bench --out out --docs docs/benchmark.md

# Uploads with Picsart faults and killed invocations, every one accounted for (minutes): out/soak.json.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/picsart-local soak --out out/soak.json

clean:
	rm -rf $(VENV) .aws-sam out .pytest_cache .mypy_cache .ruff_cache
