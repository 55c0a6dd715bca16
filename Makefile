# Two entry points for a fresh clone: `make preview` and `make test`. Both set up .venv and the
# Debian packages the checks need; nothing has to be installed beforehand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# cloud-init: `cloud-init schema` checks the rendered user-data. XRootD: the cache's config is
# run by a real xrootd, and the credential sidecar's xrdgsiproxy makes a real proxy. systemd and
# gpg: `systemd-analyze verify` checks GPU nodes' units, gpg runs their signing-key check.
# graphviz: `afctl graph` draws a stack with its `dot`. iproute2: `ip` and `tc` emulate the WAN of
# bench_cache_wan.py and its smoke test.
DEBS := cloud-init xrootd-server xrootd-client xrootd-scitokens-plugins systemd gpg graphviz iproute2
STACK ?= dev
# configurable-http-proxy: the real proxy of the JupyterHub integration tests, pinned in
# tests/support/package-lock.json. npm comes with nodejs from Debian (or NodeSource).
CHP := tests/support/node_modules/.bin/configurable-http-proxy

.PHONY: preview test lint bench system-deps venv clean autoscaler-image wan-tools kube-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(STAMP)

system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(CHP): tests/support/package.json tests/support/package-lock.json
	@command -v npm >/dev/null || { echo "installing Debian packages: nodejs npm"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	npm ci --prefix tests/support --no-audit --no-fund --loglevel=error
	touch $@

preview: $(STAMP)
	$(VENV)/bin/afctl preview $(STACK)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) system-deps $(CHP) wan-tools kube-tools lint
	$(PY) -m pytest

# Toxiproxy, the WAN latency of bench_cache_wan.py and its smoke test, from the pinned module in tools/wan (built
# once into a cache outside the work tree; Go needed the first time).
wan-tools:
	@tools/go-tools tools/wan >/dev/null

# bench_cache_wan.py needs root (network namespaces, tc); the others run as anyone.
bench: $(STAMP) system-deps wan-tools
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The autoscaler's controller image; push it and set af:autoscaler.image to it.
autoscaler-image:
	@test -n "$(IMAGE)" || { echo "usage: make autoscaler-image IMAGE=<registry>/af-autoscaler:<version>"; exit 2; }
	docker build -f autoscaler/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis tests/support/node_modules

# The Go tools of the Kubernetes tests (tests/support/kube.py, tests/support/npguard.py): the control plane
# and etcd, kwok, np-guard's analyzer, each set pinned by a module in tools/ and built once per pin into
# ~/.cache/analysis-facility/go-tools (outside the work tree); a warm call builds nothing.
KUBE_TOOL_SETS := tools/kube tools/kwok tools/netpol
kube-tools:
	@command -v go >/dev/null || { echo "kube-tools: Go is not installed (the project's machines have Go 1.26)"; exit 1; }
	@for set in $(KUBE_TOOL_SETS); do tools/go-tools $$set >/dev/null || exit 1; done
