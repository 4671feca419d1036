"""The filter wrapper loads the same planner and turns its errors into AnsibleFilterError."""

from __future__ import annotations

import importlib.util

import pytest
from ansible.errors import AnsibleFilterError

from conftest_database import ROOT


def _filters():
    spec = importlib.util.spec_from_file_location(
        "dbtest_filter", ROOT / "plugins" / "filter" / "database_migrations.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


def test_filter_plans_upgrade():
    plan = _filters()["database_migration_plan"](
        ["V1.0.0__base_version.sql", "V1.1.0__base_version.sql", "V1.1.0__add.sql"], "1.0.0", "1.1.0"
    )
    assert plan == ["V1.1.0__add.sql"]


def test_filter_new_install_with_empty_installed():
    plan = _filters()["database_migration_plan"](["V1.0.0__base_version.sql"], "", "1.0.0")
    assert plan == ["V1.0.0__base_version.sql"]


def test_filter_error_is_ansible_filter_error():
    with pytest.raises(AnsibleFilterError, match="downgrade"):
        _filters()["database_migration_plan"](["V1.0.0__base_version.sql"], "2.0.0", "1.0.0")
