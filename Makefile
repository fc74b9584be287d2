# trtllm-operator — the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN_DIR = $(shell bash hack/build-binaries.sh 2>/dev/null | tail -1)
export KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig

.PHONY: help venv binaries cluster-up cluster-down manifests lint test test-unit test-integration demo run gpu-validation bench bench-scale clean

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(PY): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(PY)

venv: $(PY) ## create .venv with the package and dev tools

binaries: ## build (or reuse) etcd, kube-*, kubectl, kwok, helm from the Go module proxy (ADDONS=all: add-ons too)
	bash hack/build-binaries.sh $(if $(ADDONS),--addons $(ADDONS))

cluster-up: $(PY) ## start the local control plane + simulated GPU fleet (ADDONS=metrics,lws for more)
	$(PY) -m trtllm_operator.dev cluster up $(if $(FLEET),--fleet $(FLEET)) $(if $(ADDONS),--addons $(ADDONS))

cluster-down: ## stop exactly the processes cluster-up started and remove .cluster/
	@if [ -x $(PY) ]; then $(PY) -m trtllm_operator.dev cluster down; else echo "no venv: nothing started"; fi

manifests: $(PY) ## regenerate crds/ from the pydantic models (and the chart's copy)
	$(PY) -m trtllm_operator.cli crds -o crds
	cp crds/*.yaml charts/trtllm-operator/files/crds/

lint: $(PY) ## ruff + mypy --strict
	$(VENV)/bin/ruff check operator tests benchmarks hack
	$(VENV)/bin/ruff format --check operator tests benchmarks hack
	$(VENV)/bin/mypy --config-file pyproject.toml
	$(VENV)/bin/lint-imports

test: lint ## lint, then every test (unit + integration on the local cluster, started if needed)
	$(PY) -m pytest

test-unit: $(PY) ## unit tests only (no cluster)
	$(PY) -m pytest tests/unit

test-integration: $(PY) ## integration tests on the local cluster
	$(PY) -m pytest tests/integration

demo: $(PY) ## the main job: local GPU cluster + operator + samples, end to end
	$(PY) -m trtllm_operator.dev demo

run: $(PY) ## run the operator against $$KUBECONFIG
	$(PY) -m trtllm_operator.cli run

gpu-validation: ## on the GPU machine: real preflight + ModelOpt quantization + accuracy gate
	bash hack/gpu-validation.sh

bench: $(PY) ## operator latency vs the API server's floor (see docs/benchmarks.md)
	$(PY) benchmarks/run.py

bench-scale: $(PY) ## 1,000 engines on 1,000 nodes: latency, steady-state requests, RSS, restart, failover
	$(PY) benchmarks/scale.py --json benchmarks/scale-results-latest.json

clean: cluster-down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
