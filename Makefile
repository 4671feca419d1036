# The README's two commands: `make deploy` and `make test`. Both set up what they need, and only
# that: deploy installs the controller requirements, the test targets the test requirements.
# `make test` runs every part below; each test-* target runs one part on its own.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= $(CURDIR)/.venv
export VENV
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Molecule scenarios run in this order; each one is a full create/converge/idempotence/verify/destroy.
MOLECULE_SCENARIOS ?= default messaging upgrade restore nexus swarm
# `make test-molecule SCENARIO=<name>` runs one of them.
SCENARIO ?= $(MOLECULE_SCENARIOS)

.PHONY: help bootstrap bootstrap-test dev engine deploy verify test lint role-readmes \
	test-unit test-unit-docker test-plugins test-playbook test-service test-tls test-molecule \
	test-engine-clean

help:
	@echo "make deploy           set up this machine and deploy the whole stack (inventories/local)"
	@echo "make test             set up this machine and run every test below"
	@echo "make lint             yamllint, ansible-lint, role READMEs up to date"
	@echo "make test-unit        plugins and the reference service, no Docker, no slow tests"
	@echo "make test-playbook    playbook behaviour against this machine"
	@echo "make test-service     the reference service against a real PostgreSQL"
	@echo "make test-tls         Traefik against real TLS"
	@echo "make test-molecule    molecule scenarios (SCENARIO=<name> for one; default: $(MOLECULE_SCENARIOS))"
	@echo "make role-readmes     write each role's README.md from its meta/argument_specs.yml"

# What `make deploy` needs: Ansible and the controller-side Python libraries.
bootstrap:
	@tools/bootstrap.sh controller

# What the tests need besides: test tools, the service's libraries, PostgreSQL server binaries.
bootstrap-test:
	@tools/bootstrap.sh test

# Developer tools beyond the tests (profilers).
dev:
	@tools/bootstrap.sh dev

# The Docker engine, the Compose v2 plugin and the Debian base image on this machine.
engine: bootstrap
	ansible-playbook playbooks/docker.yml

deploy: bootstrap
	ansible-playbook playbooks/site.yml

verify: bootstrap
	ansible-playbook playbooks/verify.yml

lint: bootstrap-test
	yamllint --strict .
	ansible-lint --profile production --offline
	python tools/role_readme.py --check

role-readmes: bootstrap-test
	python tools/role_readme.py

# The part to run on every change: plugins and the reference service without the tests marked
# `docker` or `slow`. Neither needs the engine. One pytest run per suite: each has its own
# conftest and helper modules.
test-unit: bootstrap-test
	pytest -q -m "not docker and not slow" tests/unit
	pytest -q -m "not slow" images/messaging/tests
	pytest -q images/nexus-standin/tests

# Every plugin test, the ones that need the engine included.
test-plugins: bootstrap-test engine
	pytest -q tests/unit

# The plugin tests that need the engine (marked `docker` in tests/unit).
test-unit-docker: bootstrap-test engine
	pytest -q -m docker tests/unit

# Playbook behaviour against this machine: bad input refused before the host changes, no secret at -vvv.
test-playbook: bootstrap-test engine
	pytest -q tests/playbook

# The whole reference service suite against a real PostgreSQL (schemathesis, the adversarial
# HTTP suite, hypothesis, JOSE interop), and the start-up contract of the vendor-shaped stand-in.
test-service: bootstrap-test
	pytest -q images/messaging/tests
	pytest -q images/nexus-standin/tests

# Traefik against real TLS: sslyze's Mozilla intermediate check, allow-list, rotation.
test-tls: bootstrap-test engine
	pytest -q tests/tls

# A swarm scenario stopped half-way (an interrupted run) leaves this engine in swarm mode with
# its stacks; the compose tests need the engine as `make engine` leaves it, so that scenario's
# own cleanup runs first.
test-engine-clean: bootstrap-test engine
	@if [ "$$(docker info --format '{{.Swarm.LocalNodeState}}')" != inactive ]; then \
	  echo "The engine is in swarm mode: running the swarm scenario's cleanup first."; \
	  molecule cleanup --scenario-name swarm; fi

test-molecule: bootstrap-test engine
	for scenario in $(SCENARIO); do molecule test --scenario-name "$$scenario"; done

test: bootstrap-test engine test-engine-clean lint test-plugins test-service test-playbook test-tls test-molecule
