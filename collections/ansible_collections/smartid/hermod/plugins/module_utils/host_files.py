# -*- coding: utf-8 -*-
"""A set of folders and files brought to their wanted state in one pass (smartid.hermod.files).

Each entry is a folder (`state: directory`), a file with the given content (`content`, or
`secret_content` for a file whose content a diff must not show, or `remote_src`, a file on the
host to copy, with `secret` when it holds one; `state: file`) or a
path that must not exist (`state: absent`), with owner, group and mode. A file is written to a
temporary name in its folder, given its owner, group and mode, checked by `validate` when set,
then renamed over the old one: a reader never sees a half-written or unchecked file.

`plan` only reads; `apply` changes what `plan` found different. Both answer per entry, so the
caller can react to the one path that changed (a handler for that file only).
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
import subprocess
import tempfile

STATES = ("directory", "file", "absent")
# What a diff shows instead of a secret file's content.
HIDDEN = "(content hidden: the file holds secrets)\n"
HIDDEN_BEFORE = "(previous content hidden: the file holds secrets)\n"


class EntryError(ValueError):
    """A bad entry or a failed step, naming the path."""


def _uid(owner, path):
    if owner is None:
        return None
    text = str(owner)
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise EntryError("%s: owner '%s' is not a user on this host" % (path, text)) from None


def _gid(group, path):
    if group is None:
        return None
    text = str(group)
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise EntryError("%s: group '%s' is not a group on this host" % (path, text)) from None


def _mode(mode, path):
    if mode is None:
        return None
    try:
        value = int(str(mode), 8)
    except ValueError:
        raise EntryError("%s: mode '%s' is not an octal mode such as 0644" % (path, mode)) from None
    if not 0 <= value <= 0o7777:
        raise EntryError("%s: mode '%s' is out of range" % (path, mode))
    return value


def _read_remote(source, path):
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise EntryError("%s: cannot read its source %s (%s)" % (path, source, exc.strerror)) from None


def normalise(entry):
    """The entry with owner/group/mode resolved to numbers; refuses what cannot be applied."""
    path = entry.get("path")
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path:
        raise EntryError("path must be an absolute, normalised path, not '%s'" % (path,))
    given = any(entry.get(key) is not None for key in ("content", "secret_content", "remote_src"))
    state = entry.get("state") or ("file" if given else "directory")
    if state not in STATES:
        raise EntryError("%s: state must be one of %s, not '%s'" % (path, ", ".join(STATES), state))
    secret = entry.get("secret_content") is not None or bool(entry.get("secret"))
    content = entry.get("secret_content") if entry.get("secret_content") is not None else entry.get("content")
    if sum(entry.get(key) is not None for key in ("content", "secret_content", "remote_src")) > 1:
        raise EntryError("%s: give one of content, secret_content or remote_src" % path)
    if entry.get("remote_src"):
        content = _read_remote(entry["remote_src"], path)
    if state == "file" and content is None:
        raise EntryError("%s: a file entry needs content" % path)
    if state != "file" and content is not None:
        raise EntryError("%s: content is only for state file" % path)
    if entry.get("exclusive") and state != "directory":
        raise EntryError("%s: exclusive is only for state directory" % path)
    if entry.get("validate") and "%s" not in entry["validate"]:
        raise EntryError("%s: validate must contain %%s (the candidate file)" % path)
    return {
        "path": path,
        "state": state,
        "content": content.encode("utf-8") if isinstance(content, str) else content,
        "uid": _uid(entry.get("owner"), path),
        "gid": _gid(entry.get("group"), path),
        "mode": _mode(entry.get("mode"), path),
        "validate": entry.get("validate") or None,
        "secret": secret,
        "exclusive": bool(entry.get("exclusive")),
    }


def _attributes(info):
    return {"uid": info.st_uid, "gid": info.st_gid, "mode": stat.S_IMODE(info.st_mode)}


def plan(entry):
    """What `apply` would change for one normalised entry: a dict of reasons (empty: in order)."""
    path = entry["path"]
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if entry["state"] == "absent":
        return {"remove": True} if info is not None else {}
    want_kind = stat.S_ISDIR if entry["state"] == "directory" else stat.S_ISREG
    if info is None:
        return {"create": True}
    if not want_kind(info.st_mode):
        raise EntryError("%s: exists but is not a %s" % (path, "folder" if entry["state"] == "directory" else "regular file"))
    reasons = {}
    current = _attributes(info)
    for key in ("uid", "gid", "mode"):
        if entry[key] is not None and entry[key] != current[key]:
            reasons[key] = (current[key], entry[key])
    if entry["state"] == "file":
        with open(path, "rb") as handle:
            before = handle.read()
        if before != entry["content"]:
            reasons["content"] = before
    return reasons


def diff(entry, reasons):
    """Ansible diffs (before/after texts) for an entry with something to change."""
    path = entry["path"]
    if "remove" in reasons:
        return [{"before_header": path, "after_header": path,
                 "before": "state: present\n", "after": "state: absent\n"}]
    wanted = "".join("%s: %s\n" % (key, _show(key, entry[key]))
                     for key in ("uid", "gid", "mode") if entry[key] is not None)
    if "create" in reasons:
        if entry["state"] == "directory":
            return [{"before_header": path, "after_header": path,
                     "before": "state: absent\n", "after": "state: directory\n" + wanted}]
        return [{"before_header": "%s (absent)" % path, "after_header": path, "before": "",
                 "after": HIDDEN if entry["secret"] else _text(entry["content"])}]
    diffs = []
    if "content" in reasons:
        # A secret's two sides differ in wording only: the diff says that it changed, not how.
        diffs.append({"before_header": path, "after_header": path,
                      "before": HIDDEN_BEFORE if entry["secret"] else _text(reasons["content"]),
                      "after": HIDDEN if entry["secret"] else _text(entry["content"])})
    changed = sorted(key for key in reasons if key in ("uid", "gid", "mode"))
    if changed:
        diffs.append({"before_header": "%s (owner, group, mode)" % path,
                      "after_header": "%s (owner, group, mode)" % path,
                      "before": "".join("%s: %s\n" % (key, _show(key, reasons[key][0])) for key in changed),
                      "after": "".join("%s: %s\n" % (key, _show(key, reasons[key][1])) for key in changed)})
    return diffs


def _text(data):
    return data.decode("utf-8", "replace")


def _show(key, value):
    return "%04o" % value if key == "mode" else str(value)


def _set_attributes(path, entry):
    uid = -1 if entry["uid"] is None else entry["uid"]
    gid = -1 if entry["gid"] is None else entry["gid"]
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    if entry["mode"] is not None:
        os.chmod(path, entry["mode"])


def _run_validate(command, candidate, path):
    argv = [candidate if part == "%s" else part.replace("%s", candidate) for part in shlex.split(command)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EntryError("%s: the new content failed validation (%s): %s"
                         % (path, command, (result.stderr or result.stdout).strip()))


def _write(entry):
    path = entry["path"]
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, candidate = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        # Owner and mode before the content: a secret is never readable by others, not even briefly.
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as out:
            _set_attributes(candidate, entry)
            out.write(entry["content"])
            out.flush()
            os.fsync(out.fileno())
        if entry["validate"]:
            _run_validate(entry["validate"], candidate, path)
        os.rename(candidate, path)
    except BaseException:
        if os.path.exists(candidate):
            os.unlink(candidate)
        raise


def apply(entry, reasons):
    """Bring one normalised entry to its wanted state, given what `plan` found."""
    path = entry["path"]
    if "remove" in reasons:
        if os.path.isdir(path) and not os.path.islink(path):
            raise EntryError("%s: is a folder; only files are removed" % path)
        os.unlink(path)
        return
    if entry["state"] == "directory":
        if "create" in reasons:
            os.makedirs(path, exist_ok=True)
        _set_attributes(path, entry)
        return
    if "create" in reasons or "content" in reasons:
        _write(entry)
    else:
        _set_attributes(path, entry)


def ensure(entries, check_mode=False):
    """Every entry in order; returns (changed paths, diffs). Raises EntryError naming the path."""
    normalised = [normalise(entry) for entry in entries]
    normalised += _unlisted(normalised)
    changed, diffs = [], []
    for entry in normalised:
        reasons = plan(entry)
        if not reasons:
            continue
        changed.append(entry["path"])
        diffs.extend(diff(entry, reasons))
        if not check_mode:
            apply(entry, reasons)
    return changed, diffs


def _unlisted(normalised):
    """Absent entries for what an `exclusive` folder holds beyond the entries listed in it
    (after them, so nothing is removed that a later entry would bring back)."""
    extra = []
    for folder in (e for e in normalised if e["exclusive"]):
        listed = {os.path.basename(e["path"]) for e in normalised
                  if os.path.dirname(e["path"]) == folder["path"] and e["state"] != "absent"}
        try:
            present = sorted(os.listdir(folder["path"]))
        except FileNotFoundError:
            continue
        for name in present:
            if name not in listed:
                extra.append({"path": os.path.join(folder["path"], name), "state": "absent",
                              "content": None, "uid": None, "gid": None, "mode": None,
                              "validate": None, "secret": False, "exclusive": False})
    return extra


def entries_named(items, folder, owner=None, group=None, mode=None):
    """Entries for files in `folder`, one per item: its `name` (a plain file name) and its
    `content`."""
    found = []
    for item in items or []:
        name = str(item.get("name", ""))
        if not name or name in (".", "..") or "/" in name:
            raise EntryError("%s: '%s' is not a plain file name" % (folder, name))
        found.append({"path": os.path.join(os.path.normpath(folder), name), "state": "file",
                      "content": item.get("content"), "owner": owner, "group": group, "mode": mode})
    return found


def entries_from_tree(src, dest, owner=None, group=None, mode=None, directory_mode=None):
    """Entries that copy the controller folder `src` (its files and subfolders, in name order)
    to `dest`, like a copy of `src/` to `dest/`: `dest` and each subfolder with directory_mode,
    each file with its text content and `mode`."""
    if not os.path.isdir(src):
        raise EntryError("%s: is not a folder on the controller" % src)
    found = [{"path": os.path.normpath(dest), "state": "directory", "owner": owner, "group": group,
              "mode": directory_mode}]
    for root, folders, files in os.walk(src):
        folders.sort()
        relative = os.path.relpath(root, src)
        target = os.path.normpath(os.path.join(dest, relative))
        if relative != ".":
            found.append({"path": target, "state": "directory", "owner": owner, "group": group,
                          "mode": directory_mode})
        for name in sorted(files):
            with open(os.path.join(root, name), encoding="utf-8") as handle:
                content = handle.read()
            found.append({"path": os.path.join(target, name), "state": "file", "content": content,
                          "owner": owner, "group": group, "mode": mode})
    return found
