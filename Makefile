# The README's two commands: `make deploy` and `make test`. Both set up what they need.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Molecule scenarios run in this order; each one is a full create/converge/idempotence/verify/destroy.
MOLECULE_SCENARIOS ?= default upgrade

.PHONY: help bootstrap engine deploy verify test lint unit molecule

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
unit: engine
	pytest -q tests/unit tests/playbook

molecule: engine
	for scenario in $(MOLECULE_SCENARIOS); do molecule test --scenario-name "$$scenario"; done

test: engine lint unit molecule
