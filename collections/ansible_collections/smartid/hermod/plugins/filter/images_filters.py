"""Filters of the images role: content hashes that decide when an image is rebuilt."""
import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.smartid.hermod.plugins.module_utils import images_build as _images_build


def images_context_hash(context_dir, *extra):
    """`'images/messaging' | images_context_hash(base_ref, release)` -> 16 hex chars."""
    if not os.path.isdir(context_dir):
        raise AnsibleFilterError("image build context %s does not exist" % context_dir)
    try:
        return _images_build.images_context_hash(context_dir, extra)
    except OSError as exc:
        raise AnsibleFilterError("cannot hash build context %s: %s" % (context_dir, to_native(exc)))


def images_manylinux_platforms(glibc_version, arch="x86_64"):
    """`'2.36' | images_manylinux_platforms('x86_64')` -> pip --platform values."""
    try:
        return _images_build.images_manylinux_platforms(glibc_version, arch)
    except ValueError as exc:
        raise AnsibleFilterError(to_native(exc))


def images_build_argv(image_ref, context_dir, base_image, build_args=None):
    """`ref | images_build_argv(context, base, {'ARG': 'value'})` -> argv of docker build."""
    return _images_build.images_build_argv(image_ref, context_dir, base_image, build_args)


class FilterModule:
    def filters(self):
        return {
            "images_context_hash": images_context_hash,
            "images_manylinux_platforms": images_manylinux_platforms,
            "images_build_argv": images_build_argv,
        }
