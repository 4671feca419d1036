"""Unit and property tests of the migration planner and the Flyway checksum."""

from __future__ import annotations

import binascii
import zlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import (
    MigrationError,
    flyway_checksum,
    parse_migrations,
    parse_version,
    plan_scripts,
)

FILES = [
    "V1.0.0__base_version.sql",
    "V1.1.0__base_version.sql",
    "V1.1.0__add_device_table.sql",
    "V1.2.0__index_commands.sql",
    "V2.0.0__base_version.sql",
    "V2.0.0__split_responses.sql",
    "README.md",
]


def test_new_install_runs_only_the_targets_base_file():
    assert plan_scripts(FILES, None, "1.1.0") == ["V1.1.0__base_version.sql"]
    assert plan_scripts(FILES, "", "2.0.0") == ["V2.0.0__base_version.sql"]


def test_new_install_without_base_file_for_target_is_an_error():
    with pytest.raises(MigrationError, match=r"V1\.2\.0__base_version\.sql.*1\.0\.0, 1\.1\.0, 2\.0\.0"):
        plan_scripts(FILES, None, "1.2.0")


def test_multi_step_upgrade_runs_incremental_files_in_order_and_skips_base_files():
    assert plan_scripts(FILES, "1.0.0", "2.0.0") == [
        "V1.1.0__add_device_table.sql",
        "V1.2.0__index_commands.sql",
        "V2.0.0__split_responses.sql",
    ]


def test_upgrade_stops_at_target_inclusive():
    assert plan_scripts(FILES, "1.0.0", "1.1.0") == ["V1.1.0__add_device_table.sql"]


def test_same_version_is_an_empty_plan():
    assert plan_scripts(FILES, "1.1.0", "1.1.0") == []
    assert plan_scripts(FILES, "2.0.0", "2.0.0") == []


def test_downgrade_is_refused():
    with pytest.raises(MigrationError, match="refusing to downgrade the schema from 2.0.0 to 1.1.0"):
        plan_scripts(FILES, "2.0.0", "1.1.0")


def test_gaps_in_versions_installed_or_target_without_own_file():
    files = ["V1.0.0__base_version.sql", "V1.3.0__a.sql", "V1.7.2__b.sql", "V4.0.0__c.sql"]
    # Installed version has no incremental file of its own; target has none either.
    assert plan_scripts(files, "1.1.5", "2.0.0") == ["V1.3.0__a.sql", "V1.7.2__b.sql"]
    assert plan_scripts(files, "1.3.0", "3.9.9") == ["V1.7.2__b.sql"]
    assert plan_scripts(files, "1.7.2", "3.0.0") == []


def test_semantic_order_3_10_after_3_9():
    files = ["V3.10.0__ten.sql", "V3.9.0__nine.sql", "V3.2.0__two.sql", "V3.10.1__tenone.sql",
             "V10.0.0__major.sql"]
    assert plan_scripts(files, "3.0.0", "10.0.0") == [
        "V3.2.0__two.sql", "V3.9.0__nine.sql", "V3.10.0__ten.sql", "V3.10.1__tenone.sql",
        "V10.0.0__major.sql",
    ]
    assert plan_scripts(files, "3.9.0", "3.10.0") == ["V3.10.0__ten.sql"]


def test_duplicate_incremental_versions_are_refused():
    with pytest.raises(MigrationError, match=r"duplicate version 1\.1\.0.*V1\.1\.0__a\.sql.*V1\.1\.0__b\.sql"):
        plan_scripts(["V1.1.0__b.sql", "V1.1.0__a.sql"], "1.0.0", "1.1.0")


def test_base_and_incremental_file_may_share_a_version():
    assert plan_scripts(["V1.1.0__base_version.sql", "V1.1.0__x.sql"], "1.0.0", "1.1.0") == ["V1.1.0__x.sql"]


def test_same_file_twice_is_refused():
    with pytest.raises(MigrationError, match="given twice"):
        parse_migrations(["a/V1.0.0__x.sql", "b/V1.0.0__x.sql"])


@pytest.mark.parametrize(
    "name",
    [
        "V1.0__base_version.sql",
        "V1.0.0_base_version.sql",
        "v1.0.0__base_version.sql",
        "V1.0.0__.sql",
        "V1.0.0__base version.sql",
        "V1.a.0__x.sql",
        "1.0.0__x.sql",
        "V1.01.0__x.sql",
        "V1.0.0.0__x.sql",
        "V1_0_0__x.sql",
    ],
)
def test_malformed_names_are_refused_naming_the_file(name):
    with pytest.raises(MigrationError, match="malformed") as info:
        plan_scripts(["V1.0.0__base_version.sql", name], None, "1.0.0")
    assert name in str(info.value)


def test_non_sql_and_hidden_files_are_ignored():
    assert plan_scripts(["README.md", ".V9.sql", "notes.txt", "V1.0.0__base_version.sql"], None, "1.0.0") == [
        "V1.0.0__base_version.sql"
    ]


def test_paths_are_reduced_to_file_names():
    assert plan_scripts(["/x/sql/postgresql/V1.0.0__base_version.sql"], None, "1.0.0") == [
        "V1.0.0__base_version.sql"
    ]


@pytest.mark.parametrize("bad", ["1.0", "1.0.0.0", "01.0.0", "latest", "", None, 1])
def test_malformed_target_or_installed_version_is_refused(bad):
    with pytest.raises(MigrationError):
        plan_scripts(FILES, "1.0.0", bad)
    if bad not in ("", None):
        with pytest.raises(MigrationError):
            plan_scripts(FILES, bad, "2.0.0")


# Flyway's checksum ---------------------------------------------------------------------------


def _java_crc(lines):
    crc = 0
    for line in lines:
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def test_checksum_known_value():
    # CRC32 of "SELECT 1;" + "SELECT 2;" as one stream, as signed int32.
    expected = binascii.crc32(b"SELECT 1;SELECT 2;")
    expected = expected - (1 << 32) if expected >= 1 << 31 else expected
    assert flyway_checksum("SELECT 1;\nSELECT 2;\n") == expected


def test_checksum_ignores_line_endings_and_bom():
    reference = flyway_checksum("a\nb\nc")
    assert flyway_checksum("a\r\nb\r\nc\r\n") == reference
    assert flyway_checksum("a\rb\rc") == reference
    assert flyway_checksum("\ufeffa\nb\nc\n") == reference
    assert flyway_checksum(b"a\nb\nc\n") == reference


def test_checksum_changes_with_content():
    assert flyway_checksum("CREATE TABLE a (id int);\n") != flyway_checksum("CREATE TABLE a (id bigint);\n")


def test_checksum_is_signed_32_bit():
    values = [flyway_checksum("line %d\n" % i) for i in range(200)]
    assert all(-(1 << 31) <= v < (1 << 31) for v in values)
    assert any(v < 0 for v in values)


def test_checksum_only_java_line_terminators_split_lines():
    # str.splitlines() would also split at \x0c and \u2028; Java's readLine() does not.
    assert flyway_checksum("a\x0cb\u2028c\n") == _java_crc(["a\x0cb\u2028c"])


# Properties ----------------------------------------------------------------------------------

versions = st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12))


def _v(t):
    return "%d.%d.%d" % t


@st.composite
def migration_sets(draw):
    incremental = draw(st.sets(versions, min_size=0, max_size=15))
    bases = draw(st.sets(versions, min_size=1, max_size=5))
    names = ["V%s__step_%d.sql" % (_v(v), i) for i, v in enumerate(sorted(incremental))]
    names += ["V%s__base_version.sql" % _v(v) for v in bases]
    order = draw(st.permutations(names))
    return list(order), incremental, bases


@settings(max_examples=300)
@given(migration_sets(), versions, versions)
def test_property_upgrade_plan_is_exactly_the_range_in_order(data, a, b):
    names, incremental, _ = data
    installed, target = min(a, b), max(a, b)
    plan = plan_scripts(names, _v(installed), _v(target))
    planned_versions = [parse_version(p.split("__")[0][1:]) for p in plan]
    assert planned_versions == sorted(planned_versions)
    assert set(planned_versions) == {v for v in incremental if installed < v <= target}
    assert len(planned_versions) == len(set(planned_versions))
    assert not any(p.endswith("__base_version.sql") for p in plan)


@settings(max_examples=300)
@given(migration_sets(), versions, versions, versions)
def test_property_upgrades_compose(data, a, b, c):
    names, _, _ = data
    x, y, z = sorted([a, b, c])
    assert plan_scripts(names, _v(x), _v(y)) + plan_scripts(names, _v(y), _v(z)) == plan_scripts(
        names, _v(x), _v(z)
    )


@settings(max_examples=200)
@given(migration_sets(), versions, versions)
def test_property_downgrade_always_refused_and_same_version_empty(data, a, b):
    names, _, _ = data
    assert plan_scripts(names, _v(a), _v(a)) == []
    assume(a != b)
    high, low = max(a, b), min(a, b)
    with pytest.raises(MigrationError, match="downgrade"):
        plan_scripts(names, _v(high), _v(low))


@settings(max_examples=200)
@given(migration_sets(), versions)
def test_property_new_install_is_one_base_file_or_an_error(data, target):
    names, _, bases = data
    if target in bases:
        assert plan_scripts(names, None, _v(target)) == ["V%s__base_version.sql" % _v(target)]
    else:
        with pytest.raises(MigrationError, match="new install"):
            plan_scripts(names, None, _v(target))


@settings(max_examples=200)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=8),
       st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
def test_property_checksum_equals_java_line_crc(lines, newline, trailing):
    lines = [l.replace("\r", "").replace("\n", "") for l in lines]
    assume(not lines or not lines[0].startswith("\ufeff"))
    text = newline.join(lines) + (newline if trailing and lines else "")
    expected_lines = lines if lines != [""] else []
    if text == "":
        expected_lines = []
    assert flyway_checksum(text) == _java_crc(expected_lines)
