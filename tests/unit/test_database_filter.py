"""The filter wrapper loads the same planner and turns its errors into AnsibleFilterError."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smartid.hermod.plugins.filter import database_migrations


def _filters():
    return database_migrations.FilterModule().filters()


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
