# Two commands on a fresh machine with Python 3.11+ and make:
#   make run   - serve the chat (HTTP + WebSocket) with Daphne on http://127.0.0.1:8000
#   make test  - lint and run the whole test suite

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run runserver test lint format install install-dev certs secrets system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Serve HTTP and WebSocket on http://$(HOST):$(PORT), with the embedded
## defaults, through the start script production runs (deploy/start-ws.sh:
## Daphne with the levers of docs/levers.md).
run: install
	$(BIN)/python manage.py migrate --noinput
	PATH="$(abspath $(BIN)):$$PATH" DAPHNE_BIND=$(HOST) DAPHNE_PORT=$(PORT) \
		DAPHNE_ENDPOINT= deploy/start-ws.sh

## The WSGI development server: HTTP only, the page falls back to polling.
runserver: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## Lint, then every test (pytest's testpaths in pyproject.toml). PYTEST_ARGS
## passes options on, e.g. PYTEST_ARGS="-m 'not browser'".
test: install-dev system-packages lint
	$(BIN)/pytest $(PYTEST_ARGS)

## Debian packages the tests drive, as command:package: chromium for the
## browser tests (tests/browser/; Playwright never downloads a browser).
## Installed when missing and we may (root or passwordless sudo); without them
## those tests fail with a message saying how to install them.
SYSTEM_PACKAGES := chromium:chromium
# lab: begin
# The lab's too: wrk and redis-benchmark (bench/), nginx (the fault and load
# tests put the production nginx locations in front of the servers).
SYSTEM_PACKAGES += wrk:wrk redis-benchmark:redis-tools nginx:nginx
# lab: end

system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	[ -n "$$CHROMIUM_PATH" ] && missing=$$(echo "$$missing" | sed 's/ chromium//'); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; \
		elif sudo -n true 2>/dev/null; then sudo="sudo"; \
		else echo "make: missing:$$missing; run: sudo apt-get install$$missing"; exit 0; fi; \
		echo "make: installing$$missing from Debian's packages"; \
		{ $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$sudo apt-get install --yes -qq $$missing; } >/dev/null 2>&1 \
			|| echo "make: apt-get install$$missing failed"; \
	fi

## A self-signed certificate for trying the compose stack on localhost. The
## folder is yours alone; the key is readable by nginx's master process, which
## runs without the capability to read other users' files.
certs: deploy/certs/fullchain.pem

deploy/certs/fullchain.pem:
	mkdir -p deploy/certs && chmod 700 deploy/certs
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout deploy/certs/privkey.pem -out deploy/certs/fullchain.pem
	chmod 644 deploy/certs/privkey.pem

## The compose stack's secrets, random, one file each in deploy/secrets/ (an
## existing one is kept). Same permissions as the certificate's: compose hands
## each file as it is to the containers' unprivileged users.
SECRETS := django_secret_key postgres_password redis_password
secrets: $(addprefix deploy/secrets/,$(SECRETS))

deploy/secrets/%:
	@mkdir -p deploy/secrets && chmod 700 deploy/secrets
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50) if "$*" == "django_secret_key" else secrets.token_hex(24), end="")' > $@
	@chmod 644 $@
	@echo "make: wrote $@"

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
# lab: begin

# --- The lab: this repository's own targets, not in generated projects ------------

.PHONY: template stack-test bench bench-profile bench-levers soak

## The project template: dist/chatroom-template.zip, and the startproject
## command that makes a project of it (lab/template.py).
template:
	$(PYTHON) -m lab.template

## The production compose stack of a project generated from the template, on a
## real Docker engine (installed and started if missing; stand-in base images
## when no registry answers). See lab/stack/.
stack-test: install-dev
	PYTEST=$(abspath $(BIN))/pytest lab/stack/stack-test.sh $(PYTEST_ARGS)

## The benchmarks (bench/): the project against the Channels tutorial and a raw
## websockets server, in one run; writes docs/benchmarks.md. BENCH_ARGS=--full
## for the longer sweep. Needs the machine's PostgreSQL and Redis (bench/targets.py).
bench: install-dev system-packages
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## Profiles behind the benchmarks' figures (bench/LEVERS.md): one Daphne
## process under fan-out and under many rooms, and who uses the machine's cores
## meanwhile; a gunicorn worker's history API; an idle socket's memory; a
## handshake's CPU, the project's against the tutorial's.
bench-profile: install-dev
	$(BIN)/python -m bench.profile --rate 40 --output docs/benchmarks/profile-fanout.txt
	$(BIN)/python -m bench.profile --rooms 100 --clients 10 --rate 400 \
		--output docs/benchmarks/profile-rooms.txt
	$(BIN)/python -m bench.profile_http --output docs/benchmarks/profile-http.txt
	$(BIN)/python -m bench.profile_memory --output docs/benchmarks/profile-memory.txt
	$(BIN)/python -m bench.profile_handshakes \
		--output docs/benchmarks/profile-handshakes.txt

## What each speed lever gains (bench/levers.py): one Daphne process with every
## lever on against the same with one off, interleaved rounds; writes
## docs/benchmarks/levers.txt, which docs/levers.md quotes.
bench-levers: install-dev
	$(BIN)/python -m bench.levers --rounds 4 --output docs/benchmarks/levers.txt

## A soak (bench/soak.py): clients connect, chat and leave in cycles against one
## Daphne process; exits non-zero unless its memory, file descriptors and the
## channel layer's subscriptions in Redis stay flat after warm-up. Three minutes
## by default; SOAK_ARGS="--duration 14400" for four hours. Needs the machine's
## PostgreSQL and Redis.
soak: install-dev
	$(BIN)/python -m bench.soak $(SOAK_ARGS)
# lab: end
