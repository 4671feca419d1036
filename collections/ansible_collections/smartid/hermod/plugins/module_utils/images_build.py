"""Pure helpers for building the bundle's images without a registry.

Kept free of Ansible imports so the unit tests exercise them directly.
"""
import hashlib
import os

# Build-context entries that never reach an image: caches and the generated wheelhouse
# (its content is determined by the requirements files, which are hashed) and the
# setuptools build/ and dist/ folders that building the wheel leaves in the context.
IMAGES_IGNORED_NAMES = frozenset(
    {"wheelhouse", "build", "dist", ".build", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"}
)
IMAGES_IGNORED_SUFFIXES = (".pyc", ".pyo")

# A build context can take files from this folder instead of keeping a copy in git (the
# reference service's rules.py is messaging_rules.py): <context>/shared-files lists them, one
# "<path in the context> <file in module_utils>" per line. The copy in the context is generated
# (gitignored); the hash and the packed archive always use the collection's file.
IMAGES_SHARED_LIST = "shared-files"
IMAGES_SHARED_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))


def images_shared_files(context_dir):
    """{path in the context: absolute path of the module_utils file it is a copy of}."""
    listing = os.path.join(context_dir, IMAGES_SHARED_LIST)
    shared = {}
    if not os.path.exists(listing):
        return shared
    with open(listing, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            source = os.path.join(IMAGES_SHARED_SOURCE_DIR, parts[-1])
            if len(parts) != 2 or os.path.basename(parts[1]) != parts[1] or not os.path.isfile(source):
                raise ValueError("%s line %d: expected '<path in context> <module_utils file>'"
                                 % (listing, number))
            shared[os.path.normpath(parts[0])] = source
    return shared


def images_sync_shared(context_dir):
    """Copy the shared files into the context where they differ; returns the paths written."""
    import shutil  # only the sync step needs it

    written = []
    for rel, source in sorted(images_shared_files(context_dir).items()):
        target = os.path.join(context_dir, rel)
        with open(source, "rb") as handle:
            wanted = handle.read()
        if os.path.exists(target):
            with open(target, "rb") as handle:
                if handle.read() == wanted:
                    continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
        written.append(rel)
    return written


def _images_source(context_dir, rel, shared):
    return shared.get(rel) or os.path.join(context_dir, rel)


def images_context_files(context_dir):
    """Relative paths of the files of a build context, sorted, caches left out, shared files in."""
    shared = images_shared_files(context_dir)
    found = set(shared)
    for root, dirs, files in os.walk(context_dir):
        dirs[:] = sorted(d for d in dirs if d not in IMAGES_IGNORED_NAMES and not d.endswith(".egg-info"))
        for name in files:
            if name.endswith(IMAGES_IGNORED_SUFFIXES):
                continue
            found.add(os.path.relpath(os.path.join(root, name), context_dir))
    return sorted(found)


def images_pack_context(context_dir, archive_path):
    """Write the build context (its files plus the generated wheelhouse/) as one tar file.

    One file crosses an Ansible connection far faster than a folder of many files, and
    `docker build - < archive` takes it as the context directly.
    """
    import tarfile  # only the packing step needs it

    shared = images_shared_files(context_dir)
    names = images_context_files(context_dir)
    wheelhouse = os.path.join(context_dir, "wheelhouse")
    if os.path.isdir(wheelhouse):
        names += [os.path.join("wheelhouse", name) for name in sorted(os.listdir(wheelhouse))]
    # GNU format: the engine does not recognise a stream that starts with a PAX header as a tar.
    with tarfile.open(archive_path, "w", format=tarfile.GNU_FORMAT) as archive:
        for rel in names:
            archive.add(_images_source(context_dir, rel, shared), arcname=rel, recursive=False)
    return names


def images_context_hash(context_dir, extra=()):
    """A short content hash of a build context plus extra inputs (base image, build args).

    File names and modes are part of the hash, so a rename or a chmod +x rebuilds too.
    """
    digest = hashlib.sha256()
    for item in extra:
        digest.update(b"extra\0" + str(item).encode() + b"\0")
    shared = images_shared_files(context_dir)
    for rel in images_context_files(context_dir):
        path = _images_source(context_dir, rel, shared)
        digest.update(b"file\0" + rel.encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def images_manylinux_platforms(glibc_version, arch):
    """pip --platform values a glibc of this version accepts, newest first.

    pip does not widen an explicit `manylinux_2_36` to older tags by itself, so every
    compatible tag is listed (PEP 600 tags, then the legacy aliases).
    """
    major, minor = (int(part) for part in str(glibc_version).split(".")[:2])
    if major != 2:
        raise ValueError("unsupported glibc version %s" % glibc_version)
    tags = ["manylinux_2_%d_%s" % (m, arch) for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += ["%s_%s" % (name, arch) for floor, name in sorted(legacy.items(), reverse=True) if minor >= floor]
    tags.append("linux_%s" % arch)
    return tags


def images_build_argv(image_ref, context_dir, base_image, build_args=None):
    """The `docker build` command line: base image and extra build args, the content hash as a label."""
    argv = ["docker", "build", "--quiet", "--build-arg", "BASE_IMAGE=%s" % base_image]
    for key, value in sorted((build_args or {}).items()):
        argv += ["--build-arg", "%s=%s" % (key, value)]
    argv += ["--label", "org.smartid.context-hash=%s" % image_ref.rsplit(":", 1)[-1], "--tag", image_ref, context_dir]
    return argv


IMAGES_SOURCES = ("build", "registry", "archive")


def images_check_components(components, repo_root):
    """Rules of the declared image list (controller paths); returns error strings.

    Each component: name, context, source (build | registry | archive), ref (registry and
    archive), archive (a `docker save` file on the controller), build_args. The operator sets
    them as <name>_image_source, <name>_image, <name>_image_archive, <name>_image_build_args,
    wired into images_components in the collection's playbooks/vars/wiring.yml.
    """
    errors, seen = [], set()
    if not isinstance(components, list):
        return ["images_components must be a list"]
    for index, item in enumerate(components):
        if not isinstance(item, dict) or not item.get("name") or not item.get("context"):
            errors.append("images_components[%d] needs a name and a context" % index)
            continue
        name = item["name"]
        if name in seen:
            errors.append("images_components[%d]: %s is listed twice" % (index, name))
        seen.add(name)
        source = item.get("source") or "build"
        if source not in IMAGES_SOURCES:
            errors.append("%s_image_source is '%s': use build, registry or archive" % (name, source))
        elif source == "build":
            dockerfile = os.path.join(repo_root or "", "images", item["context"], "Dockerfile")
            if not os.path.isfile(dockerfile):
                errors.append("%s_image_source is 'build': no build context %s" % (name, dockerfile))
        elif not item.get("ref"):
            errors.append("%s_image_source is '%s': set %s_image to the image reference"
                          % (name, source, name))
        elif source == "archive" and not (item.get("archive") and os.path.isfile(item["archive"])):
            errors.append("%s_image_source is 'archive': %s_image_archive '%s' is not a file on "
                          "the controller" % (name, name, item.get("archive") or ""))
        if not isinstance(item.get("build_args") or {}, dict):
            errors.append("%s_image_build_args must be a mapping" % name)
    return errors
