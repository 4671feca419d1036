"""Unit tests of the image build helpers (content hashes, wheel platforms, build command)."""
import os
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest

from ansible_collections.smartid.hermod.plugins.module_utils import images_build


@pytest.fixture
def context(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app.py").write_text("print('hi')\n")
    return tmp_path


def test_hash_is_stable_and_short(context):
    first = images_build.images_context_hash(str(context))
    assert first == images_build.images_context_hash(str(context))
    assert len(first) == 16 and int(first, 16) >= 0


def test_hash_changes_with_content_name_mode_and_extra(context):
    base = images_build.images_context_hash(str(context))
    (context / "app.py").write_text("print('bye')\n")
    changed_content = images_build.images_context_hash(str(context))
    assert changed_content != base
    os.rename(context / "app.py", context / "main.py")
    renamed = images_build.images_context_hash(str(context))
    assert renamed != changed_content
    os.chmod(context / "main.py", 0o755)
    assert images_build.images_context_hash(str(context)) != renamed
    assert images_build.images_context_hash(str(context), ["base:a"]) != images_build.images_context_hash(
        str(context), ["base:b"]
    )


def test_hash_ignores_caches_and_wheelhouse(context):
    base = images_build.images_context_hash(str(context))
    for cache in ("wheelhouse", "build", "dist", "__pycache__", ".pytest_cache", "pkg.egg-info"):
        (context / cache).mkdir()
        (context / cache / "junk").write_text("x")
    (context / "mod.pyc").write_bytes(b"\0")
    assert images_build.images_context_hash(str(context)) == base


def test_manylinux_platforms_cover_older_tags_newest_first():
    tags = images_build.images_manylinux_platforms("2.36", "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in tags and "manylinux2014_x86_64" in tags and "manylinux1_x86_64" in tags
    assert tags[-1] == "linux_x86_64"
    assert tags.index("manylinux_2_34_x86_64") < tags.index("manylinux_2_17_x86_64")


def test_manylinux_platforms_refuse_odd_glibc():
    with pytest.raises(ValueError):
        images_build.images_manylinux_platforms("3.1", "x86_64")


def test_build_argv_sorts_args_and_labels_hash():
    argv = images_build.images_build_argv(
        "smartid/messaging:abc123", "/ctx", "smartid/base:bookworm", {"Z": "1", "HERMOD_RELEASE": "1.0.0"}
    )
    assert argv[:5] == ["docker", "build", "--quiet", "--build-arg", "BASE_IMAGE=smartid/base:bookworm"]
    assert argv.index("HERMOD_RELEASE=1.0.0") < argv.index("Z=1")
    assert argv[-5:] == ["--label", "org.smartid.context-hash=abc123", "--tag", "smartid/messaging:abc123", "/ctx"]


def test_pack_context_holds_files_and_wheelhouse_but_no_caches(context, tmp_path_factory):
    import tarfile

    (context / "wheelhouse").mkdir()
    (context / "wheelhouse" / "pkg-1.0-py3-none-any.whl").write_bytes(b"PK")
    (context / "__pycache__").mkdir()
    (context / "__pycache__" / "x.pyc").write_bytes(b"\0")
    archive = tmp_path_factory.mktemp("out") / "context.tar"
    images_build.images_pack_context(str(context), str(archive))
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    assert names == ["Dockerfile", "app.py", "wheelhouse/pkg-1.0-py3-none-any.whl"]


def test_shared_file_is_packed_and_hashed_from_the_collection(tmp_path, monkeypatch):
    source_dir = tmp_path / "module_utils"
    source_dir.mkdir()
    (source_dir / "rules_src.py").write_text("RULE = 1\n")
    monkeypatch.setattr(images_build, "IMAGES_SHARED_SOURCE_DIR", str(source_dir))
    context = tmp_path / "ctx"
    (context / "src" / "pkg").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM scratch\n")
    (context / "shared-files").write_text("# comment\nsrc/pkg/rules.py rules_src.py\n")
    before = images_build.images_context_hash(str(context))
    assert "src/pkg/rules.py" in images_build.images_context_files(str(context))
    # A stale copy in the context changes nothing: the collection's file is what counts.
    (context / "src" / "pkg" / "rules.py").write_text("RULE = 'stale'\n")
    assert images_build.images_context_hash(str(context)) == before
    archive = tmp_path / "ctx.tar"
    images_build.images_pack_context(str(context), str(archive))
    with tarfile.open(archive) as packed:
        assert packed.extractfile("src/pkg/rules.py").read() == b"RULE = 1\n"
        assert packed.getnames().count("src/pkg/rules.py") == 1
    (source_dir / "rules_src.py").write_text("RULE = 2\n")
    assert images_build.images_context_hash(str(context)) != before
    assert images_build.images_sync_shared(str(context)) == ["src/pkg/rules.py"]
    assert (context / "src" / "pkg" / "rules.py").read_text() == "RULE = 2\n"
    assert images_build.images_sync_shared(str(context)) == []


def test_messaging_context_carries_the_rules_module_as_hermod_ref_rules():
    from ansible_collections.smartid.hermod.plugins.module_utils import messaging_rules
    context = os.path.join(ROOT, "images", "messaging")
    shared = images_build.images_shared_files(context)
    assert shared == {"src/hermod_ref/rules.py": os.path.abspath(messaging_rules.__file__)}


def test_bad_shared_files_line_is_refused(tmp_path):
    (tmp_path / "shared-files").write_text("src/x.py ../../etc/passwd\n")
    with pytest.raises(ValueError, match="line 1"):
        images_build.images_shared_files(str(tmp_path))


def test_component_rules_name_the_operator_variable(tmp_path):
    (tmp_path / "images" / "messaging").mkdir(parents=True)
    (tmp_path / "images" / "messaging" / "Dockerfile").write_text("FROM scratch\n")
    check = images_build.images_check_components
    ok = [{"name": "messaging", "context": "messaging", "source": "build"}]
    assert check(ok, str(tmp_path)) == []
    assert check([{"name": "traefik", "context": "traefik", "source": "registry", "ref": ""}],
                 str(tmp_path)) == [
        "traefik_image_source is 'registry': set traefik_image to the image reference"]
    assert check([{"name": "messaging", "context": "messaging", "source": "archive", "ref": "h:1",
                   "archive": "/nonexistent.tar"}], str(tmp_path)) == [
        "messaging_image_source is 'archive': messaging_image_archive '/nonexistent.tar' is not a "
        "file on the controller"]
    assert check([{"name": "database", "context": "postgres"}], str(tmp_path)) == [
        "database_image_source is 'build': no build context %s/images/postgres/Dockerfile" % tmp_path]
    assert check([{"name": "x", "context": "messaging", "source": "snap"}], str(tmp_path)) == [
        "x_image_source is 'snap': use build, registry or archive"]
    assert check(ok + ok, str(tmp_path)) == ["images_components[1]: messaging is listed twice"]
