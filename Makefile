# Daznode: `make dev` runs LNbits with the extension; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := $(CURDIR)/.data
EXT_PATH := $(DATA)/ext
RUN_DIR := $(DATA)/run
PORT ?= 5000
DB ?= sqlite
CHROMIUM ?= /usr/bin/chromium

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: dev test test-unit test-app test-app-sqlite test-app-postgres test-browser lint format bench deps-browser link clean

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# LNbits loads extensions from $LNBITS_EXTENSIONS_PATH/extensions/<id>, and serves its own
# static files relative to the working directory: link both.
link: $(VENV)/.installed
	@mkdir -p $(EXT_PATH)/extensions $(RUN_DIR)
	@ln -sfn $(CURDIR) $(EXT_PATH)/extensions/daznode
	@ln -sfn $$($(BIN)/python -c 'import lnbits, os; print(os.path.dirname(lnbits.__file__))') $(RUN_DIR)/lnbits

LNBITS_ENV = LNBITS_EXTENSIONS_PATH=$(EXT_PATH) LNBITS_BACKEND_WALLET_CLASS=FakeWallet \
	LNBITS_ADMIN_UI=true LNBITS_USER_DEFAULT_EXTENSIONS='["daznode"]' \
	LNBITS_EXTENSIONS_DEFAULT_INSTALL='[]' LNBITS_EXTENSIONS_MANIFESTS='[]'

dev: link
	@mkdir -p $(DATA)/dev-$(DB)
	@if [ "$(DB)" = postgres ]; then scripts/pg.sh start >/dev/null; fi
	@echo ""
	@echo "  Daznode on LNbits: open http://127.0.0.1:$(PORT)/ (first visit: create the admin"
	@echo "  account), then Extensions > Daznode, or go to http://127.0.0.1:$(PORT)/daznode/"
	@echo "  Database: $(DB), data in $(DATA)/dev-$(DB). Stop with Ctrl-C."
	@echo ""
	cd $(RUN_DIR) && env $(LNBITS_ENV) LNBITS_DATA_FOLDER=$(DATA)/dev-$(DB) AUTH_HTTPS_ONLY=false \
		$$( [ "$(DB)" = postgres ] && echo LNBITS_DATABASE_URL=$$($(CURDIR)/scripts/pg.sh url) ) \
		$(CURDIR)/$(BIN)/lnbits --host 127.0.0.1 --port $(PORT)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

format: $(VENV)/.installed
	$(BIN)/ruff format .

# The two databases run side by side (separate data folders and databases): most of their
# time is LNbits processes starting and leases expiring, not CPU. Output stays per run.
test: lint test-unit
	$(MAKE) --no-print-directory -j2 --output-sync=target test-app-sqlite test-app-postgres
	$(MAKE) --no-print-directory test-browser

test-app-sqlite test-app-postgres: link
	@$(MAKE) --no-print-directory test-app DB=$(@:test-app-%=%)

test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit -q

# LNbits fixes its settings and database at import: one pytest process per database,
# each on a fresh data folder (and a fresh PostgreSQL database).
# RUN names the data folder and database, so two runs on one machine do not collide.
RUN ?= $(DB)
test-app: link
	@rm -rf $(DATA)/test-$(RUN) && mkdir -p $(DATA)/test-$(RUN)
	cd $(RUN_DIR) && env $(LNBITS_ENV) LNBITS_DATA_FOLDER=$(DATA)/test-$(RUN) \
		DAZNODE_TEST_DB=$(DB) \
		$$( [ "$(DB)" = postgres ] && echo LNBITS_DATABASE_URL=$$($(CURDIR)/scripts/pg.sh fresh daznode_test_$(RUN)) ) \
		$(CURDIR)/$(BIN)/python -m pytest -c $(CURDIR)/pyproject.toml --rootdir $(CURDIR) \
		$(CURDIR)/tests/app -q --durations=5 $(ARGS)

deps-browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Chromium from Debian's packages..."; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
			|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
		else echo "Chromium missing: run 'apt-get install chromium' as root." >&2; exit 1; fi; \
	fi

BROWSER_RUN ?= browser
test-browser: link deps-browser
	@rm -rf $(DATA)/test-$(BROWSER_RUN) && mkdir -p $(DATA)/test-$(BROWSER_RUN)
	cd $(RUN_DIR) && env $(LNBITS_ENV) LNBITS_DATA_FOLDER=$(DATA)/test-$(BROWSER_RUN) \
		DAZNODE_CHROMIUM=$(CHROMIUM) DAZNODE_RUN_DIR=$(RUN_DIR) \
		$(CURDIR)/$(BIN)/python -m pytest -c $(CURDIR)/pyproject.toml --rootdir $(CURDIR) \
		$(CURDIR)/tests/browser -q $(ARGS)

bench: link
	cd $(RUN_DIR) && env $(LNBITS_ENV) DAZNODE_RUN_DIR=$(RUN_DIR) $(CURDIR)/$(BIN)/python $(CURDIR)/bench/run.py

clean:
	-scripts/pg.sh stop
	rm -rf $(DATA)
