"""Helper for the tests that render the collection's variables and templates with Ansible's own
Templar, imported by name: inventory values are templates an operator wrote, so they are marked
trusted as Ansible marks them when it reads an inventory."""

from __future__ import annotations

from ansible.template import trust_as_template


def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value
