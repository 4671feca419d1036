# The README's two commands: `make deploy` and `make test`. Both set up what they need.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Molecule scenarios run in this order; each one is a full create/converge/idempotence/verify/destroy.
MOLECULE_SCENARIOS ?= default messaging upgrade

.PHONY: help bootstrap engine deploy verify test lint unit tls molecule

help:
	@echo "make deploy   set up this machine and deploy the whole stack (inventories/local)"
	@echo "make test     set up this machine and run lint, unit tests and molecule scenarios"

bootstrap:
	@tools/bootstrap.sh

# The Docker engine, the Compose v2 plugin and the Debian base image on this machine.
engine: bootstrap
	ansible-playbook playbooks/docker.yml

deploy: bootstrap
	ansible-playbook playbooks/site.yml

verify: bootstrap
	ansible-playbook playbooks/verify.yml

lint: bootstrap
	yamllint --strict .
	ansible-lint --profile production --offline

# Plugins, playbook behaviour (negative cases against this machine) and the reference service.
# One pytest run per suite: each has its own conftest and helper modules.
unit: engine
	pytest -q tests/unit
	pytest -q tests/playbook
	pytest -q images/messaging/tests

# Traefik against real TLS: sslyze's Mozilla intermediate check, allow-list, rotation.
tls: engine
	pytest -q tests/tls

molecule: engine
	for scenario in $(MOLECULE_SCENARIOS); do molecule test --scenario-name "$$scenario"; done

test: engine lint unit tls molecule
