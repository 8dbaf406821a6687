"""Merging two Ignition 3.x configs the way Ignition merges a parent with a child config.

* objects merge key by key; a scalar the child sets replaces the parent's;
* lists of keyed objects (units by name, users by name, files/directories/links by path,
  filesystems/disks by device, partitions by number-or-label, luks/raid by name, dropins by
  name, HTTP headers by name, tang servers by url) merge entry by entry: entries the parent has
  keep their place and take the child's fields, new child entries are appended;
* files, directories and links share one path namespace: a child entry at a path removes a
  parent entry of another kind at that path;
* lists of strings (SSH keys, groups, options, kernel arguments, noProxy) are appended,
  without duplicates;
* other lists (``append`` fragments, config ``merge`` references) are concatenated;
* ``ignition.version`` becomes the newer of the two.
"""
from __future__ import annotations

import copy
from typing import Any

_KEYED = {
    ("storage", "disks"): "device",
    ("storage", "disks", "partitions"): "number|label",
    ("storage", "raid"): "name",
    ("storage", "filesystems"): "device",
    ("storage", "files"): "path",
    ("storage", "directories"): "path",
    ("storage", "links"): "path",
    ("storage", "luks"): "name",
    ("storage", "luks", "clevis", "tang"): "url",
    ("systemd", "units"): "name",
    ("systemd", "units", "dropins"): "name",
    ("passwd", "users"): "name",
    ("passwd", "groups"): "name",
    ("ignition", "security", "tls", "certificateAuthorities"): "source",
}
_NODE_KINDS = ("files", "directories", "links")


def _key(item: Any, keyspec: str):
    if not isinstance(item, dict):
        return ("=", repr(item))
    if keyspec == "number|label":
        if item.get("number"):
            return ("number", item["number"])
        return ("label", item.get("label"))
    return (keyspec, item.get(keyspec))


def _merge_list(parent: list, child: list, path: tuple) -> list:
    keyspec = _KEYED.get(path)
    if keyspec is None and path and path[-1] == "httpHeaders":
        keyspec = "name"
    if keyspec is None:
        if all(not isinstance(x, (dict, list)) for x in parent + child):
            out = list(parent)
            for x in child:
                if x not in out:
                    out.append(x)
            return out
        return copy.deepcopy(parent) + copy.deepcopy(child)
    headers = bool(path) and path[-1] == "httpHeaders"
    out = [copy.deepcopy(x) for x in parent]
    index = {_key(x, keyspec): i for i, x in enumerate(out)}
    removed = set()
    for item in child:
        k = _key(item, keyspec)
        if headers and isinstance(item, dict) and item.get("value") is None:
            # a child header with a name but no value removes the parent's header
            removed.add(k)
            continue
        if k in index:
            out[index[k]] = _merge_obj(out[index[k]], item, path)
        else:
            index[k] = len(out)
            out.append(copy.deepcopy(item))
    return [x for x in out if _key(x, keyspec) not in removed]


def _merge_obj(parent: Any, child: Any, path: tuple):
    if not isinstance(parent, dict) or not isinstance(child, dict):
        return copy.deepcopy(child)
    out = copy.deepcopy(parent)
    for k, v in child.items():
        if v is None:
            continue
        sub = (*path, k)
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _merge_obj(out[k], v, sub)
        elif k in out and isinstance(out[k], list) and isinstance(v, list):
            out[k] = _merge_list(out[k], v, sub)
        else:
            out[k] = copy.deepcopy(v)
    return out


def merge(base: dict, extra: dict) -> dict:
    """``extra`` merged onto ``base`` (Ignition parent/child semantics); neither is modified."""
    from .specs import compare_specs

    out = _merge_obj(base, extra, ())
    # files, directories and links share one path namespace
    xstore = extra.get("storage") or {}
    if "storage" in out:
        for kind in _NODE_KINDS:
            xpaths = {e.get("path") for e in xstore.get(kind) or [] if isinstance(e, dict)}
            if not xpaths:
                continue
            for other in _NODE_KINDS:
                if other == kind or other not in out["storage"]:
                    continue
                mine = {e.get("path") for e in xstore.get(other) or [] if isinstance(e, dict)}
                out["storage"][other] = [e for e in out["storage"][other]
                                         if not (isinstance(e, dict) and e.get("path") in xpaths
                                                 and e.get("path") not in mine)]
    bv = (base.get("ignition") or {}).get("version")
    xv = (extra.get("ignition") or {}).get("version")
    if bv and xv:
        try:
            out["ignition"]["version"] = bv if compare_specs(bv, xv) >= 0 else xv
        except Exception:
            out["ignition"]["version"] = bv
    return out
