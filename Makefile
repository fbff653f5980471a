# Two commands for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facespace-installed
OUT ?= outputs/demo

.PHONY: demo test setup browser clean-cache

setup: $(STAMP)

# torch is pinned first so that the project's `torch>=2.4` finds the CPU wheel and pulls no CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,dlib,cluster]'
	touch $(STAMP)

# make demo DATA=~/Pictures also indexes and searches your own photos
demo: $(STAMP)
	$(VENV)/bin/facespace demo --out $(OUT) $(if $(DATA),--data $(DATA),)

test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 --dist loadfile

# The web app's end-to-end test drives Debian's headless Chromium; install it where missing
# (needs root and Debian's registry; without them that one test skips with the reason).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "note: could not install chromium; the browser test will skip"; \
	    else echo "note: chromium/chromedriver missing and not root; the browser test will skip"; fi; }

clean-cache:
	rm -rf $${FACESPACE_CACHE:-$$HOME/.cache/facespace}
