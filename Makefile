# Two commands for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facespace-installed
OUT ?= outputs/demo

.PHONY: demo test setup clean-cache

setup: $(STAMP)

# torch is pinned first so that the project's `torch>=2.4` finds the CPU wheel and pulls no CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/facespace demo --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

clean-cache:
	rm -rf $${FACESPACE_CACHE:-$$HOME/.cache/facespace}
