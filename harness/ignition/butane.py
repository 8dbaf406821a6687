"""Butane (fcos 1.0.0-1.6.0, flatcar 1.0.0-1.1.0) → Ignition 3.x translation, as butane v0.25.1 does it.

Written from the Butane specification documents (shared/reference/docs/butane), the notes in
shared/reference/FORMATS.md §6 and the rules of butane v0.25.1's sources (the ``boot_device`` and
``grub`` sugar: bootdevice.py; the warnings: checks.py); not copied from them.

Errors raise LivelabError (one line: the key path, the reason, the line and column).  Warnings
(an unused key, a decimal mode, ... : checks.py) are collected in ``Translation.warnings`` in the
same form; ``strict`` makes the first of them an error, as ``butane --strict`` fails on any.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..errors import LivelabError
from ..safeload import shown
from . import bootdevice, checks
from . import yamlnodes as yn
from .dataurl import make_data_url
from .merge import merge
from .schema import FS_FORMATS, SCHEMA, F, ListOf, Obj, Prim, T, ign_key
from .specs import BASE_LEVEL, SPEC_TABLE, spec_for_variant, supported_variants_text

DECIMAL_MODE_WARNING = checks.DECIMAL_MODE


@dataclass
class Translation:
    config: dict
    spec: str
    variant: str
    version: str
    warnings: list = field(default_factory=list)


@dataclass
class _Ctx:
    variant: str
    version: str
    level: int
    files_dir: str | None
    spec: str = ""
    warnings: list = field(default_factory=list)
    mount_filesystems: list = field(default_factory=list)   # (path, raw filesystem dict)
    luks: dict = field(default_factory=dict)                 # name -> raw luks dict
    trees: list = field(default_factory=list)                # (path, raw tree dict)
    boot_device: tuple | None = None                         # (path, raw, node)
    grub: tuple | None = None                                # (path, raw users, node)
    # (kind, key) -> (path, node) of the user's entry: where a warning about the output points
    origins: dict = field(default_factory=dict)

    @property
    def fcos_1_6(self) -> bool:
        return self.variant == "fcos" and _vtuple(self.version) >= (1, 6, 0)

    def warn(self, path: str, message: str, node: yn.Node | None) -> None:
        self.warnings.append(f"{path or '$'}: {message}{_where(node)}")

    def origin(self, kind: str, key: object, what: str = "") -> tuple[str, yn.Node | None]:
        """The path and node of the entry an output entry came from (the user's, or the sugar or
        filesystem that generated it), ``what`` below it when the user wrote that."""
        path, node = self.origins.get((kind, key), ("", None))
        if what and isinstance(node, yn.Mapping) and what in node.items:
            return f"{path}.{what}", node.items[what]
        return path, node

    def own(self, kind: str, key: object, path: str, node: yn.Node | None) -> None:
        """Record where an output entry came from, unless an earlier (user's) entry has the key."""
        self.origins.setdefault((kind, key), (path, node))


def _where(node: yn.Node | None) -> str:
    if node is None:
        return ""
    return f" (line {node.line}, column {node.col})"


def _err(path: str, msg: str, node: yn.Node | None = None) -> LivelabError:
    return LivelabError(f"{path or '$'}: {msg}{_where(node)}")


def _vtuple(v: str) -> tuple:
    return tuple(int(x) for x in v.split("."))


def _allowed(f: F, ctx: _Ctx) -> bool:
    if f.ign_only or f.since > ctx.level:
        return False
    if f.variants is not None:
        need = f.variants.get(ctx.variant)
        if need is None or _vtuple(ctx.version) < need:
            return False
    return True


def _where_available(f: F) -> str:
    firsts: dict[str, str] = {}
    for (variant, version), _spec in SPEC_TABLE.items():
        c = _Ctx(variant, version, BASE_LEVEL[(variant, version)], None)
        if _allowed(f, c) and (variant not in firsts or _vtuple(version) < _vtuple(firsts[variant])):
            firsts[variant] = version
    return " / ".join(f"{v} ≥ {ver}" for v, ver in firsts.items())


# --- scalar conversion (go-yaml v3 decoding into typed fields) ---

def _prim(node: yn.Node, typ: Prim, path: str, ctx: _Ctx):
    if not isinstance(node, yn.Scalar):
        kind = "a list" if isinstance(node, yn.Sequence) else "a mapping"
        raise _err(path, f"expected {_kind_name(typ)}, got {kind}", node)
    if typ.kind == "str":
        value = node.text
        if typ.enum is not None:
            ok = [v for v in typ.enum if FS_FORMATS.get(v, 1) <= ctx.level]
            if value not in ok:
                raise _err(path, f"invalid value {shown(value, quote=True)} (expected one of {', '.join(ok)})", node)
        return value
    if typ.kind == "int":
        if node.quoted or isinstance(node.value, bool) or not isinstance(node.value, int):
            raise _err(path, f"expected an integer, got {shown(node.text, quote=True)}", node)
        return node.value
    if typ.kind == "bool":
        if not node.quoted:
            if isinstance(node.value, bool):
                return node.value
            if node.text in yn.YAML11_TRUE:
                return True
            if node.text in yn.YAML11_FALSE:
                return False
        raise _err(path, f"expected a boolean, got {shown(node.text, quote=True)}", node)
    raise AssertionError(typ)


def _kind_name(typ: T) -> str:
    if isinstance(typ, Prim):
        return {"str": "a string", "int": "an integer", "bool": "a boolean"}[typ.kind]
    if isinstance(typ, ListOf):
        return "a list"
    return "a mapping"


def _is_null(node: yn.Node | None) -> bool:
    return isinstance(node, yn.Scalar) and node.value is None and not node.quoted


def _conv(node: yn.Node, typ: T, path: str, ctx: _Ctx):
    if _is_null(node):
        return None
    if isinstance(typ, Prim):
        return _prim(node, typ, path, ctx)
    if isinstance(typ, ListOf):
        if not isinstance(node, yn.Sequence):
            raise _err(path, f"expected a list, got {_node_kind(node)}", node)
        out = []
        for i, item in enumerate(node.items):
            ipath = f"{path}[{i}]"
            if _is_null(item):
                raise _err(ipath, f"expected {_kind_name(typ.item)}, got null", item)
            out.append(_conv(item, typ.item, ipath, ctx))
        return out
    if isinstance(typ, Obj):
        if not isinstance(node, yn.Mapping):
            raise _err(path, f"expected a mapping, got {_node_kind(node)}", node)
        raw: dict = {}
        for key, child in node.items.items():
            kpath = yn.key_path(path, key)
            f = typ.fields.get(key)
            if f is None or not _allowed(f, ctx):
                # Butane's schema for this variant/version has no such field: go-yaml skips it, and
                # Ignition's unused-key check warns (config/util/util.go, TranslateBytes)
                line, col = node.key_pos.get(key, (node.line, node.col))
                avail = _where_available(f) if f is not None and not f.ign_only else ""
                hint = f"; not in {ctx.variant} {ctx.version}, available in {avail}" if avail else ""
                ctx.warnings.append(f"{kpath}: {checks.UNUSED_KEY.format(key=shown(key))}{hint} "
                                    f"(line {line}, column {col})")
                continue
            value = _conv(child, f.type, kpath, ctx)
            if value is not None:
                raw[key] = value
        return _finish(typ, raw, node, path, ctx)
    raise AssertionError(typ)


def _node_kind(node: yn.Node) -> str:
    if isinstance(node, yn.Sequence):
        return "a list"
    if isinstance(node, yn.Mapping):
        return "a mapping"
    return shown(node.text, quote=True)


def _to_ign(typ: Obj, raw: dict) -> dict:
    out = {}
    for key, value in raw.items():
        f = typ.fields[key]
        if f.butane_only:
            continue
        out[ign_key(key, f)] = value
    return out


# --- local files ---

def _read_local(rel: str, path: str, ctx: _Ctx, node: yn.Node | None, what: str = "file") -> bytes:
    full = _local_path(rel, path, ctx, node)
    try:
        with open(full, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _err(path, f"cannot read local {what} {shown(rel, quote=True)} in {ctx.files_dir}: {exc.strerror}",
                   node) from None


def _local_path(rel: str, path: str, ctx: _Ctx, node: yn.Node | None) -> str:
    if ctx.files_dir is None:
        raise _err(path, "local paths are relative to a files directory, which must be given "
                         "with -d/--files-dir (files_dir=)", node)
    if "\0" in rel:         # no file has that name (and os.path would raise ValueError)
        raise _err(path, f"local path {shown(rel, quote=True)} is not a file name: it has a NUL character", node)
    base = os.path.realpath(ctx.files_dir)
    norm = os.path.normpath(rel)
    if os.path.isabs(rel) or norm == ".." or norm.startswith(".." + os.sep):
        raise _err(path, f"local path {shown(rel, quote=True)} escapes the files directory {ctx.files_dir}", node)
    full = os.path.realpath(os.path.join(base, norm))
    if full != base and not full.startswith(base.rstrip(os.sep) + os.sep):
        raise _err(path, f"local path {shown(rel, quote=True)} escapes the files directory {ctx.files_dir}", node)
    return full


def _mapping_child(node: yn.Node | None, key: str):
    if isinstance(node, yn.Mapping):
        return node.items.get(key, node)
    return node


# --- per-object finishing (sugar → Ignition) ---

def _finish(typ: Obj, raw: dict, node: yn.Node, path: str, ctx: _Ctx) -> dict:
    name = typ.name
    if name == "resource":
        given = [k for k in ("source", "inline", "local") if k in raw]
        if len(given) > 1:
            raise _err(path, f"{' and '.join(given)} are mutually exclusive", node)
        out = _to_ign(typ, raw)
        data = None
        if "inline" in raw:
            data = raw["inline"].encode("utf-8")
            if path.startswith("ignition.config."):
                _check_inline_config(raw["inline"], path, _mapping_child(node, "inline"), ctx)
        elif "local" in raw:
            data = _read_local(raw["local"], f"{path}.local", ctx, _mapping_child(node, "local"))
        if data is not None:
            out["source"], out["compression"] = make_data_url(data, raw.get("compression"))
        return out
    if name in ("unit", "dropin"):
        if "contents" in raw and "contents_local" in raw:
            raise _err(path, "contents and contents_local are mutually exclusive", node)
        out = _to_ign(typ, raw)
        if "contents_local" in raw:
            data = _read_local(raw["contents_local"], f"{path}.contents_local", ctx,
                               _mapping_child(node, "contents_local"))
            out["contents"] = data.decode("utf-8", errors="replace")
        if name == "unit":
            ctx.own("unit", raw.get("name"), path, node)
        return out
    if name == "user":
        out = _to_ign(typ, raw)
        for i, rel in enumerate(raw.get("ssh_authorized_keys_local") or []):
            p = f"{path}.ssh_authorized_keys_local[{i}]"
            text = _read_local(rel, p, ctx, _mapping_child(node, "ssh_authorized_keys_local"), "SSH key file")
            keys = [ln.strip() for ln in text.decode("utf-8", errors="replace").splitlines()]
            out.setdefault("sshAuthorizedKeys", []).extend(k for k in keys if k and not k.startswith("#"))
        return out
    if name in ("file", "directory"):
        mode = raw.get("mode")
        if mode is not None:
            where = _mapping_child(node, "mode")
            if checks.decimal_mode(mode, name == "directory"):
                ctx.warn(f"{path}.mode", checks.DECIMAL_MODE, where)
            if checks.special_bits(mode):
                ctx.warn(f"{path}.mode", checks.MODE_SPECIAL_BITS, where)
        return _to_ign(typ, raw)
    if name == "link":
        if raw.get("hard") is True:
            for owner in ("user", "group"):
                for k in ("id", "name"):
                    if k in (raw.get(owner) or {}):
                        ctx.warn(f"{path}.{owner}.{k}", checks.HARD_LINK_OWNER,
                                 _mapping_child(_mapping_child(node, owner), k))
        return _to_ign(typ, raw)
    if name == "proxy":
        if checks.insecure_proxy(raw.get("https_proxy")):
            ctx.warn(f"{path}.https_proxy", checks.INSECURE_PROXY, _mapping_child(node, "https_proxy"))
        return _to_ign(typ, raw)
    if name == "disk":
        if ctx.fcos_1_6:
            for i in checks.reuses_by_label(raw):
                part = _item(_mapping_child(node, "partitions"), i)
                ctx.warn(f"{path}.partitions[{i}].number", checks.REUSE_BY_LABEL, _mapping_child(part, "number"))
        for i, p in enumerate(raw.get("partitions") or []):
            ctx.own("partition", (raw.get("device"), checks.partition_key(p)), f"{path}.partitions[{i}]",
                    _item(_mapping_child(node, "partitions"), i))
        return _to_ign(typ, raw)
    if name == "filesystem":
        if ctx.fcos_1_6 and checks.mount_point_forbidden(raw):
            raise _err(f"{path}.path", checks.MOUNT_POINT_FORBIDDEN, _mapping_child(node, "path"))
        if raw.get("with_mount_unit"):
            ctx.mount_filesystems.append((path, raw, node))
        ctx.own("filesystem", raw.get("device"), path, node)
        return _to_ign(typ, raw)
    if name == "luks":
        if "clevis" in raw and ctx.variant == "flatcar":
            raise _err(f"{path}.clevis", "clevis is not supported on flatcar", _mapping_child(node, "clevis"))
        ctx.luks[raw.get("name")] = raw
        return _to_ign(typ, raw)
    if name == "tree":
        ctx.trees.append((path, raw, node))
        return {}
    if name == "boot_device":
        try:
            bootdevice.check_boot_device(raw, s390x=ctx.fcos_1_6)
        except bootdevice.Problem as p:
            raise _err(f"{path}.{p.where}", p.message, _descend(node, p.where)) from None
        ctx.boot_device = (path, raw, node)
        return {}
    if name == "grub_user":
        try:
            bootdevice.check_grub_user(raw)
        except bootdevice.Problem as p:
            raise _err(f"{path}.{p.where}", p.message, _descend(node, p.where)) from None
        return raw
    if name == "grub":
        if raw.get("users"):
            ctx.grub = (path, raw["users"], node)
        return {}
    return _to_ign(typ, raw)


def _item(node: yn.Node | None, i: int) -> yn.Node | None:
    if isinstance(node, yn.Sequence) and i < len(node.items):
        return node.items[i]
    return node


def _descend(node: yn.Node | None, dotted: str) -> yn.Node | None:
    """The node at ``a.b`` below ``node`` (the deepest one there is)."""
    for key in dotted.split("."):
        node = _mapping_child(node, key)
    return node


def _check_inline_config(text: str, path: str, node: yn.Node | None, ctx: _Ctx) -> None:
    """An inline merge/replace config is read as a config of the output's spec (base/v0_x ValidateIgnitionConfig)."""
    errors, warnings = checks.inline_config(text, ctx.spec)
    if errors:
        raise _err(f"{path}.inline", f"inline Ignition config: {errors[0]}", node)
    for w in warnings:
        ctx.warn(f"{path}.inline", w if w == checks.UNKNOWN_IGNITION_VERSION else f"inline Ignition config: {w}",
                 node)


# --- with_mount_unit ---

_UNIT_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


def systemd_escape_path(p: str) -> str:
    """``systemd-escape --path``: '/'-separated components joined by '-', other bytes \\xNN."""
    parts = [c for c in p.split("/") if c not in ("",)]
    if any(c in (".", "..") for c in parts):
        parts = [c for c in os.path.normpath("/" + "/".join(parts)).split("/") if c]
    s = "/".join(parts)
    if not s:
        return "-"
    out = []
    for i, ch in enumerate(s.encode("utf-8")):
        c = chr(ch)
        if c == "/":
            out.append("-")
        elif (c == "." and i == 0) or c not in _UNIT_SAFE:
            out.append(f"\\x{ch:02x}")
        else:
            out.append(c)
    return "".join(out)


def mount_unit(path: str, device: str, fmt: str, mount_options: list[str] | None = None,
               remote: bool = False) -> tuple[str, str]:
    """(unit name, contents) of the mount unit Butane generates for ``with_mount_unit``."""
    dev = systemd_escape_path(device)
    opts = list(mount_options or [])
    if remote:
        opts.append("_netdev")
    lines = [
        "# Generated by Butane",
        "[Unit]",
        f"Requires=systemd-fsck@{dev}.service",
        f"After=systemd-fsck@{dev}.service",
        "",
        "[Mount]",
        f"Where={path}",
        f"What={device}",
        f"Type={fmt}",
    ]
    if opts:
        lines.append("Options=" + ",".join(opts))
    lines += ["", "[Install]", "RequiredBy=remote-fs.target" if remote else "RequiredBy=local-fs.target"]
    return systemd_escape_path(path) + ".mount", "\n".join(lines)


def swap_unit(device: str, mount_options: list[str] | None = None) -> tuple[str, str]:
    """(unit name, contents) of the swap unit Butane generates for a swap ``with_mount_unit``."""
    lines = ["# Generated by Butane", "[Swap]", f"What={device}"]
    if mount_options:
        lines.append("Options=" + ",".join(mount_options))
    lines += ["", "[Install]", "RequiredBy=swap.target"]
    return systemd_escape_path(device) + ".swap", "\n".join(lines)


def _is_remote(device: str, ctx: _Ctx) -> bool:
    for prefix in ("/dev/mapper/", "/dev/disk/by-id/dm-name-"):
        if device.startswith(prefix):
            luks = ctx.luks.get(device[len(prefix):])
            if luks:
                clevis = luks.get("clevis") or {}
                if clevis.get("tang") or (clevis.get("custom") or {}).get("needsNetwork"):
                    return True
    return False


def _mount_units(ctx: _Ctx) -> list:
    units = []
    for path, raw, node in ctx.mount_filesystems:
        fmt = raw.get("format")
        device = raw.get("device", None)
        if device is None:
            raise _err(f"{path}.device", "required when with_mount_unit is true", node)
        if fmt == "swap" and ctx.level >= 4:
            name, contents = swap_unit(device, raw.get("mount_options"))
        else:
            if not raw.get("path"):
                raise _err(f"{path}.path", "required when with_mount_unit is true", node)
            if not fmt:
                raise _err(f"{path}.format", "required when with_mount_unit is true", node)
            name, contents = mount_unit(raw["path"], device, fmt, raw.get("mount_options"),
                                        _is_remote(device, ctx))
        ctx.own("unit", name, path, node)
        units.append({"name": name, "enabled": True, "contents": contents})
    return units


# --- trees ---

def _trees(config: dict, ctx: _Ctx) -> None:
    if not ctx.trees:
        return
    storage = config.setdefault("storage", {})
    files = storage.setdefault("files", [])
    links = storage.setdefault("links", [])
    by_path = {f["path"]: f for f in files if "path" in f}
    link_by_path = {ln["path"]: ln for ln in links if "path" in ln}
    for tpath, tree, tnode in ctx.trees:
        if "local" not in tree:
            raise _err(f"{tpath}.local", "required", tnode)
        base = _local_path(tree["local"], f"{tpath}.local", ctx, None)
        if not os.path.isdir(base):
            raise _err(f"{tpath}.local", f"{shown(tree['local'], quote=True)} is not a directory in {ctx.files_dir}")
        dest = tree.get("path") or "/"
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            entries = sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for fname in sorted(entries):
                src = os.path.join(dirpath, fname)
                rel = os.path.relpath(src, base)
                target = os.path.normpath(os.path.join(dest, rel))
                st = os.lstat(src)
                if stat.S_ISLNK(st.st_mode):
                    entry: dict = {"path": target, "target": os.readlink(src)}
                    if target in link_by_path:
                        existing = link_by_path[target]
                        if "target" in existing:
                            raise _err(tpath, f"{shown(target)} is also set in storage.links with a target")
                        existing.update({**entry, **existing})
                    else:
                        links.append(entry)
                        link_by_path[target] = entry
                elif stat.S_ISREG(st.st_mode):
                    with open(src, "rb") as fh:
                        data = fh.read()
                    url, comp = make_data_url(data)
                    entry = {"path": target, "contents": {"source": url, "compression": comp},
                             "mode": 0o755 if st.st_mode & 0o111 else 0o644}
                    if target in by_path:
                        existing = by_path[target]
                        if "contents" in existing:
                            raise _err(tpath, f"{shown(target)} is also set in storage.files with contents")
                        merged = {**entry, **existing}
                        existing.clear()
                        existing.update(merged)
                    else:
                        files.append(entry)
                        by_path[target] = entry
                else:
                    raise _err(tpath, f"{shown(rel, quote=True)} is not a regular file or symlink")
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


# --- boot_device and grub (fcos ToIgn3_x: after the base translation, merged under it) ---

def _own_all(rendered: dict, path: str, node: yn.Node | None, ctx: _Ctx) -> None:
    storage = rendered.get("storage") or {}
    for fs in storage.get("filesystems") or []:
        ctx.own("filesystem", fs["device"], path, node)
    for disk in storage.get("disks") or []:
        for p in disk.get("partitions") or []:
            ctx.own("partition", (disk["device"], checks.partition_key(p)), path, node)


def _sugar(config: dict, ctx: _Ctx) -> dict:
    if ctx.boot_device:
        path, raw, node = ctx.boot_device
        rendered = bootdevice.render_boot_device(raw)
        if rendered:
            _own_all(rendered, path, node, ctx)
            config = merge(rendered, config)
    if ctx.variant == "fcos":
        for device, key, _label in checks.wrong_partition_numbers(config.get("storage") or {}):
            where, node = ctx.origin("partition", (device, key), "label")
            ctx.warn(where, checks.WRONG_PARTITION_NUMBER, node)
    if ctx.grub:
        path, users, node = ctx.grub
        url = make_data_url(bootdevice.grub_user_cfg(users).encode("utf-8"))
        rendered = bootdevice.render_grub(url)
        _own_all(rendered, f"{path}.users", _mapping_child(node, "users"), ctx)
        config = merge(rendered, config)
    return config


def _output_warnings(config: dict, ctx: _Ctx) -> None:
    """What Ignition's validation of the generated config warns about, at the entries it came from."""
    storage = config.get("storage") or {}
    for i, msg in checks.filesystem_warnings(storage):
        where, node = ctx.origin("filesystem", storage["filesystems"][i].get("device"), "device")
        ctx.warn(where, msg, node)
    units = (config.get("systemd") or {}).get("units") or []
    for i, msg in checks.unit_warnings(units):
        where, node = ctx.origin("unit", units[i].get("name"), "contents")
        ctx.warn(where, msg, node)


# --- output cleanup ---

def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _prune(v)
            if v is None or (isinstance(v, (dict, list)) and not v):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def butane_to_ignition(text: str | bytes, files_dir: str | os.PathLike | None = None, strict: bool = False,
                       source: str = "Butane config") -> Translation:
    """Translate a Butane config (YAML text, or its UTF-8 bytes) to an Ignition config dict.

    ``files_dir`` is the directory ``local`` paths are relative to (``-d``); ``strict``
    turns warnings into errors; ``source`` names the config in parse errors (e.g. its file
    name).  Raises LivelabError naming the key path on any error; parsing is bounded by
    harness.safeload's limits.
    """
    root = yn.load(text, source)
    if root is None:
        raise LivelabError(f"Butane config is empty; it needs variant and version "
                           f"(supported: {supported_variants_text()})")
    if not isinstance(root, yn.Mapping):
        raise _err("$", "a Butane config must be a YAML mapping", root)
    missing = [k for k in ("variant", "version") if k not in root.items or _is_null(root.items[k])]
    if missing:
        raise LivelabError(f"Butane config has no {' or '.join(missing)}; "
                           f"supported: {supported_variants_text()}")
    for k in ("variant", "version"):
        if not isinstance(root.items[k], yn.Scalar):
            raise _err(k, "expected a string", root.items[k])
    variant, version = root.items["variant"].text, root.items["version"].text
    spec = spec_for_variant(variant, version)
    ctx = _Ctx(variant, version, BASE_LEVEL[(variant, version)],
               os.fspath(files_dir) if files_dir is not None else None, spec)
    config = _conv(root, SCHEMA, "", ctx)
    _trees(config, ctx)
    units = _mount_units(ctx)
    config.setdefault("ignition", {})["version"] = spec
    if units:
        config = merge({"systemd": {"units": units}}, config)
    config = _sugar(config, ctx)
    config = _prune(config)
    _output_warnings(config, ctx)
    config["ignition"] = {"version": spec, **{k: v for k, v in config.get("ignition", {}).items()
                                               if k != "version"}}
    ordered = {"ignition": config.pop("ignition")}
    ordered.update(sorted(config.items()))
    if strict and ctx.warnings:
        raise LivelabError(f"strict: {len(ctx.warnings)} warning(s): {ctx.warnings[0]}")
    return Translation(ordered, spec, variant, version, list(ctx.warnings))
