"""smartid.hermod.files: one pass over a set of folders and files (module_utils/host_files.py)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.smartid.hermod.plugins.module_utils import host_files

UID, GID = os.getuid(), os.getgid()


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def entries(root, compose="services: {}\n", password="s3cret-pw"):
    return [
        {"path": str(root / "comp"), "owner": UID, "group": GID, "mode": "0755"},
        {"path": str(root / "comp" / "secrets"), "owner": str(UID), "group": str(GID), "mode": "0750"},
        {"path": str(root / "comp" / "docker-compose.yml"), "content": compose, "mode": "0644"},
        {"path": str(root / "comp" / "secrets" / "pw"), "secret_content": password, "mode": "0640"},
    ]


def test_first_pass_creates_everything_and_the_second_changes_nothing(tmp_path):
    changed, diffs = host_files.ensure(entries(tmp_path))
    assert changed == [e["path"] for e in entries(tmp_path)]
    assert (tmp_path / "comp" / "docker-compose.yml").read_text() == "services: {}\n"
    assert (tmp_path / "comp" / "secrets" / "pw").read_text() == "s3cret-pw"
    assert mode_of(tmp_path / "comp" / "secrets") == 0o750
    assert mode_of(tmp_path / "comp" / "secrets" / "pw") == 0o640
    assert len(diffs) == 4
    assert host_files.ensure(entries(tmp_path)) == ([], [])


def test_check_mode_reports_the_changes_and_touches_nothing(tmp_path):
    changed, diffs = host_files.ensure(entries(tmp_path), check_mode=True)
    assert len(changed) == 4
    assert not (tmp_path / "comp").exists()
    host_files.ensure(entries(tmp_path))
    changed, diffs = host_files.ensure(entries(tmp_path, compose="services: {a: {}}\n"), check_mode=True)
    assert changed == [str(tmp_path / "comp" / "docker-compose.yml")]
    assert diffs == [{"before_header": changed[0], "after_header": changed[0],
                      "before": "services: {}\n", "after": "services: {a: {}}\n"}]
    assert (tmp_path / "comp" / "docker-compose.yml").read_text() == "services: {}\n"


def test_only_the_path_that_differs_is_reported(tmp_path):
    host_files.ensure(entries(tmp_path))
    os.chmod(tmp_path / "comp" / "secrets", 0o755)
    changed, diffs = host_files.ensure(entries(tmp_path))
    assert changed == [str(tmp_path / "comp" / "secrets")]
    assert diffs[0]["before"] == "mode: 0755\n" and diffs[0]["after"] == "mode: 0750\n"
    assert mode_of(tmp_path / "comp" / "secrets") == 0o750


def test_a_secret_is_never_in_a_diff(tmp_path):
    _, created = host_files.ensure(entries(tmp_path))
    changed, diffs = host_files.ensure(entries(tmp_path, password="n3w-pw"))
    assert changed == [str(tmp_path / "comp" / "secrets" / "pw")]
    text = repr(created + diffs)
    assert "s3cret-pw" not in text and "n3w-pw" not in text
    assert diffs[0]["before"] != diffs[0]["after"]
    assert (tmp_path / "comp" / "secrets" / "pw").read_text() == "n3w-pw"


def test_validate_refuses_bad_content_and_keeps_the_old_file(tmp_path):
    good = str(tmp_path / "f")
    check = "grep -q ok %s"
    assert host_files.ensure([{"path": good, "content": "ok\n", "validate": check}])[0] == [good]
    with pytest.raises(host_files.EntryError, match="failed validation"):
        host_files.ensure([{"path": good, "content": "bad\n", "validate": check}])
    assert (tmp_path / "f").read_text() == "ok\n"
    assert os.listdir(tmp_path) == ["f"]


def test_absent_removes_a_file_and_is_quiet_when_it_is_gone(tmp_path):
    (tmp_path / "old.yml").write_text("x")
    entry = {"path": str(tmp_path / "old.yml"), "state": "absent"}
    assert host_files.ensure([entry], check_mode=True)[0] == [entry["path"]]
    assert (tmp_path / "old.yml").exists()
    assert host_files.ensure([entry])[0] == [entry["path"]]
    assert not (tmp_path / "old.yml").exists()
    assert host_files.ensure([entry]) == ([], [])


@pytest.mark.parametrize("entry, message", [
    ({"path": "relative/path"}, "absolute"),
    ({"path": "/a/../b"}, "normalised"),
    ({"path": "/x", "state": "file"}, "needs content"),
    ({"path": "/x", "state": "directory", "content": "y"}, "only for state file"),
    ({"path": "/x", "mode": "rw-r--r--"}, "octal"),
    ({"path": "/x", "owner": "no-such-user-here"}, "not a user"),
    ({"path": "/x", "group": "no-such-group-here"}, "not a group"),
    ({"path": "/x", "content": "y", "validate": "true"}, "%s"),
    ({"path": "/x", "content": "y", "secret_content": "z"}, "one of content"),
    ({"path": "/x", "content": "y", "remote_src": "/etc/hostname"}, "one of content"),
])
def test_bad_entries_are_refused_with_the_path_named(entry, message):
    with pytest.raises(host_files.EntryError, match=message):
        host_files.ensure([entry])


def test_a_folder_where_a_file_belongs_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(host_files.EntryError, match="not a regular file"):
        host_files.ensure([{"path": str(tmp_path / "d"), "content": "x"}])


def test_a_controller_folder_becomes_entries_that_copy_it(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "V1.0.0__base_version.sql").write_text("CREATE TABLE a ();\n")
    (src / "sub" / "x.sql").write_text("SELECT 1;\n")
    dest = tmp_path / "dest"
    entries_ = host_files.entries_from_tree(str(src), str(dest), owner=UID, group=GID, mode="0644",
                                            directory_mode="0755")
    assert [e["path"] for e in entries_] == [str(dest), str(dest / "V1.0.0__base_version.sql"), str(dest / "sub"),
                                             str(dest / "sub" / "x.sql")]
    assert len(host_files.ensure(entries_)[0]) == 4
    assert (dest / "sub" / "x.sql").read_text() == "SELECT 1;\n" and mode_of(dest / "sub" / "x.sql") == 0o644
    assert host_files.ensure(entries_) == ([], [])
    with pytest.raises(host_files.EntryError, match="not a folder"):
        host_files.entries_from_tree(str(tmp_path / "missing"), str(dest))


def test_a_host_file_is_copied_and_a_secret_one_stays_out_of_the_diff(tmp_path):
    (tmp_path / "server.key").write_text("KEY-MATERIAL")
    entry = {"path": str(tmp_path / "copy.key"), "remote_src": str(tmp_path / "server.key"), "secret": True,
             "mode": "0640"}
    changed, diffs = host_files.ensure([entry])
    assert changed == [entry["path"]] and "KEY-MATERIAL" not in repr(diffs)
    assert (tmp_path / "copy.key").read_text() == "KEY-MATERIAL" and mode_of(tmp_path / "copy.key") == 0o640
    assert host_files.ensure([entry]) == ([], [])
    with pytest.raises(host_files.EntryError, match="cannot read its source"):
        host_files.ensure([{"path": str(tmp_path / "x"), "remote_src": str(tmp_path / "missing")}])


def test_an_exclusive_folder_keeps_only_the_listed_files(tmp_path):
    folder = tmp_path / "cacerts"
    folder.mkdir()
    (folder / "old.cer").write_text("dropped from the inventory")
    (folder / ".hidden").write_text("left by hand")
    (folder / "keep.cer").write_text("stale content")
    entries = [{"path": str(folder), "state": "directory", "exclusive": True},
               {"path": str(folder / "keep.cer"), "content": "PEM"},
               {"path": str(folder / "new.cer"), "content": "PEM2"}]
    # A dry run names every removal and touches nothing.
    changed, diffs = host_files.ensure(entries, check_mode=True)
    assert sorted(changed) == sorted(str(folder / n) for n in (".hidden", "keep.cer", "new.cer", "old.cer"))
    assert (folder / "old.cer").exists()
    assert {"before": "state: present\n", "after": "state: absent\n"}.items() <= diffs[-1].items()
    changed, _ = host_files.ensure(entries)
    assert sorted(os.listdir(folder)) == ["keep.cer", "new.cer"]
    assert (folder / "keep.cer").read_text() == "PEM"
    assert host_files.ensure(entries) == ([], [])


def test_an_exclusive_folder_refuses_to_remove_a_subfolder_and_is_only_for_folders(tmp_path):
    folder = tmp_path / "cacerts"
    (folder / "sub").mkdir(parents=True)
    with pytest.raises(host_files.EntryError, match="is a folder; only files are removed"):
        host_files.ensure([{"path": str(folder), "exclusive": True}])
    with pytest.raises(host_files.EntryError, match="exclusive is only for state directory"):
        host_files.ensure([{"path": str(folder / "a.cer"), "content": "x", "exclusive": True}])
    # A folder that does not exist yet is created, with nothing to remove.
    fresh = tmp_path / "fresh"
    assert host_files.ensure([{"path": str(fresh), "exclusive": True}])[0] == [str(fresh)]


def test_named_items_become_file_entries_of_one_folder_and_a_path_in_a_name_is_refused():
    entries = host_files.entries_named([{"name": "a.cer", "content": "A", "subject": "CN=a"}],
                                       "/srv/cacerts/", owner="root", group="root", mode="0644")
    assert entries == [{"path": "/srv/cacerts/a.cer", "state": "file", "content": "A",
                        "owner": "root", "group": "root", "mode": "0644"}]
    for bad in ("../x.cer", "", "sub/x.cer"):
        with pytest.raises(host_files.EntryError, match="not a plain file name"):
            host_files.entries_named([{"name": bad, "content": "A"}], "/srv/cacerts")
