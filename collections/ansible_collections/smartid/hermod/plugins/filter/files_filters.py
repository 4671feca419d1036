# -*- coding: utf-8 -*-
"""Entries for smartid.hermod.files built on the controller; the logic lives in module_utils/host_files.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.smartid.hermod.plugins.module_utils import host_files


def files_from_tree(src, dest, owner=None, group=None, mode=None, directory_mode=None):
    """smartid.hermod.files entries that copy the controller folder `src` to `dest` on the host."""
    try:
        return host_files.entries_from_tree(str(src), str(dest), owner, group, mode, directory_mode)
    except (host_files.EntryError, OSError, UnicodeDecodeError) as exc:
        raise AnsibleFilterError(str(exc)) from None


def files_named(items, folder, owner=None, group=None, mode=None):
    """smartid.hermod.files entries for files in `folder`, one per item (its name and content)."""
    try:
        return host_files.entries_named(list(items or []), str(folder), owner, group, mode)
    except host_files.EntryError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """Filters that build smartid.hermod.files entries."""

    def filters(self):
        return {"files_from_tree": files_from_tree, "files_named": files_named}
