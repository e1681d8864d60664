# The two commands a newcomer needs (see README.md):
#   make run    set everything up, then run the bot, the demo widget and the Agents Playground
#   make test   set everything up, then run the whole suite (what CI runs)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NODE_DIR := tests/e2e/node
IAC_VENV := .venv-iac
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test setup chromium postgresql container-tools iac-tools lint clean package

$(VENV)/.installed: requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check --no-input -q -r requirements.lock
	touch $@

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed

# checkov (with the Bicep parser it carries) for the suite's scan of infra/azure, in a
# virtualenv of its own: its many dependencies stay out of the service's.
$(IAC_VENV)/.installed: infra/azure/requirements.iac.lock
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/pip install --disable-pip-version-check --no-input -q -r infra/azure/requirements.iac.lock
	touch $@

iac-tools: $(IAC_VENV)/.installed

# Debian's Chromium for the browser tests (browser downloads are not possible here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# Debian's PostgreSQL for the storage suite, which starts a throwaway cluster of its own on a
# free loopback port and removes it after (the server binaries are in /usr/lib/postgresql/*/bin).
postgresql:
	@for bin in /usr/lib/postgresql/*/bin "$$(dirname "$$(command -v pg_ctl || echo /none/pg_ctl)")"; do \
	  [ -x "$$bin/initdb" ] && [ -x "$$bin/pg_ctl" ] && exit 0; \
	done; \
	$(SUDO) apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends postgresql

# Debian's buildah and debootstrap, for the suite's container test (it builds the image from
# infra/container/Containerfile on a Debian base it makes, then runs it).
container-tools:
	@command -v buildah >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends buildah debootstrap; }

run: setup
	bash infra/local/run.sh

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

test: setup chromium postgresql container-tools iac-tools lint
	$(PY) -m pytest

# The Teams app package: make package APP_ID=<MicrosoftAppId> DOMAIN=bot.example.com [APP_VERSION=1.0.0]
package:
	@test -n "$(APP_ID)" -a -n "$(DOMAIN)" || { echo "usage: make package APP_ID=... DOMAIN=..." >&2; exit 2; }
	$(PYTHON) manifest/build.py --app-id "$(APP_ID)" --domain "$(DOMAIN)" --version "$(or $(APP_VERSION),1.0.0)" --out dist/handoff-teams-app.zip

clean:
	rm -rf $(VENV) $(IAC_VENV) $(NODE_DIR)/node_modules data

# Benchmarks, not part of the suite: make bench [SECTION=relay|anchors|idle|rules|pacing|scale|failover|all]
.PHONY: bench
bench: $(VENV)/.installed
	$(PY) bench/run.py $(or $(SECTION),all)
