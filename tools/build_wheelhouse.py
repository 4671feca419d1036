#!/usr/bin/env python3
"""Fill images/<dir>/wheelhouse/ (and optionally pack the build context) on the controller for an image whose Python differs from ours.

Inside containers pip cannot reach the package index through the host's proxy, so images
install with `pip install --no-index` from this folder (as an air-gapped site would):
- requirements.txt -> binary wheels for the image's Python version, glibc and architecture;
- pyproject.toml   -> a wheel of the context's own package.
"""
import argparse
import os
import shutil
import subprocess
import sys

# The bundle's collection, imported as Ansible does (ansible_collections.smartid.hermod).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "collections"))
from ansible_collections.smartid.hermod.plugins.module_utils.images_build import (  # noqa: E402
    images_manylinux_platforms,
    images_pack_context,
    images_sync_shared,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--context", required=True)
    parser.add_argument("--python-version", required=True, help="the image's Python, e.g. 3.11")
    parser.add_argument("--glibc", required=True, help="the image's glibc, e.g. 2.36")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--pack", metavar="ARCHIVE", help="then write the whole build context to this tar file")
    args = parser.parse_args()

    # The context's own package is built from the folder: the shared files must be there first.
    for rel in images_sync_shared(args.context):
        print("shared file %s updated from the collection" % rel)
    wheelhouse = os.path.join(args.context, "wheelhouse")
    shutil.rmtree(wheelhouse, ignore_errors=True)
    os.makedirs(wheelhouse)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]

    requirements = os.path.join(args.context, "requirements.txt")
    if os.path.exists(requirements):
        platforms = []
        for tag in images_manylinux_platforms(args.glibc, args.arch):
            platforms += ["--platform", tag]
        subprocess.run(
            pip + ["download", "--only-binary=:all:", "--python-version", args.python_version,
                   "--implementation", "cp", *platforms, "--dest", wheelhouse, "-r", requirements],
            check=True,
        )
    if os.path.exists(os.path.join(args.context, "pyproject.toml")):
        subprocess.run(pip + ["wheel", "--no-deps", "--wheel-dir", wheelhouse, args.context], check=True)
    print("wheelhouse %s: %d files" % (wheelhouse, len(os.listdir(wheelhouse))))
    if args.pack:
        os.makedirs(os.path.dirname(os.path.abspath(args.pack)), exist_ok=True)
        packed = images_pack_context(args.context, args.pack)
        print("build context %s: %d files" % (args.pack, len(packed)))


if __name__ == "__main__":
    main()
