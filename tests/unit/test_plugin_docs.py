"""Every module, lookup and filter of the collection documents itself in YAML that parses (what
ansible-doc and ansible-lint read); a broken block only shows up as a loader error otherwise."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

PLUGINS = Path(__file__).resolve().parents[2] / "collections" / "ansible_collections" / "smartid" / "hermod" / "plugins"
FILES = sorted(p for kind in ("modules", "lookup", "action") for p in (PLUGINS / kind).glob("*.py")
               if p.name != "__init__.py")


def _blocks(path):
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("DOCUMENTATION", "RETURN", "EXAMPLES") and isinstance(node.value, ast.Constant):
                found[node.targets[0].id] = node.value.value
    return found


@pytest.mark.parametrize("path", FILES, ids=[p.parent.name + "/" + p.name for p in FILES])
def test_the_documentation_blocks_are_valid_yaml(path):
    blocks = _blocks(path)
    assert "DOCUMENTATION" in blocks, path
    for name, text in blocks.items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            pytest.fail("%s %s: %s" % (path.name, name, exc))
    doc = yaml.safe_load(blocks["DOCUMENTATION"])
    assert doc.get("short_description"), path
