"""The Butane (fcos 1.0-1.6, flatcar 1.0-1.1) and Ignition (3.0.0-3.5.0) config shapes.

One table describes both: each Butane field carries the Ignition key it becomes, the Butane
base level it first appears in (Butane base v0_N → level N; Ignition spec 3.(N-1) has the
same fields), and whether it exists only in Butane (sugar) or only in Ignition.

Sources: Butane docs config-fcos-v1_4/v1_5, config-flatcar-v1_0/v1_1, upgrading-fcos.md
(what each version added), Ignition docs configuration-v3_3.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class T:
    """A value type."""


@dataclass
class Prim(T):
    kind: str                      # "str" | "int" | "bool"
    enum: tuple | None = None      # allowed values (with the level each appears from)


@dataclass
class ListOf(T):
    item: Any
    key: str | None = None         # Ignition merge/uniqueness key of object items


@dataclass
class Obj(T):
    fields: dict
    name: str = ""                 # for special handling ("resource", "filesystem", ...)


@dataclass
class F:
    type: Any
    since: int = 1                 # Butane base level / Ignition minor+1 where the field appears
    ign: str | None = None         # Ignition key (default: camelCase of the Butane key)
    butane_only: bool = False
    ign_only: bool = False
    required: bool = False         # required in Ignition (structural check)
    variants: dict | None = None   # variant -> minimum Butane version tuple; others reject the key


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


S = Prim("str")
INT = Prim("int")
B = Prim("bool")
SL = ListOf(S)

HTTP_HEADERS = ListOf(Obj({"name": F(S, required=True), "value": F(S)}), key="name")
VERIFICATION = Obj({"hash": F(S)})


def resource(kind: str) -> Obj:
    """A fetched resource: file contents/append, config merge/replace, CA bundle, LUKS key file."""
    is_file = kind == "file"
    return Obj({
        "source": F(S),
        "inline": F(S, since=1 if is_file else 2, butane_only=True),
        "local": F(S, since=2, butane_only=True),
        "compression": F(S, since=1 if is_file else 2),
        "http_headers": F(HTTP_HEADERS, since=2),
        "verification": F(VERIFICATION),
    }, name="resource")


NODE_USER = Obj({"id": F(INT), "name": F(S)})
NODE_GROUP = Obj({"id": F(INT), "name": F(S)})

FS_FORMATS = {"ext4": 1, "btrfs": 1, "xfs": 1, "vfat": 1, "swap": 1, "none": 4}

TANG = Obj({"url": F(S, required=True), "thumbprint": F(S), "advertisement": F(S, since=5)})

LUKS = Obj({
    "name": F(S, required=True),
    "device": F(S, required=True),
    "key_file": F(resource("key"), ign="keyFile"),
    "label": F(S),
    "uuid": F(S),
    "options": F(SL),
    "discard": F(B, since=5),
    "open_options": F(SL, since=5),
    "wipe_volume": F(B),
    "clevis": F(Obj({
        "tang": F(ListOf(TANG, key="url")),
        "tpm2": F(B),
        "threshold": F(INT),
        "custom": F(Obj({"pin": F(S), "config": F(S), "needs_network": F(B)})),
    }, name="clevis")),
    "cex": F(Obj({"enabled": F(B)}), since=6),
}, name="luks")

# fcos >= 1.3.0 only (config/fcos/v1_3..v1_6/schema.go); translated by bootdevice.py
BOOT_DEVICE = Obj({
    "layout": F(S),
    "luks": F(Obj({
        "device": F(S, since=6),
        "tang": F(ListOf(TANG, key="url")),
        "tpm2": F(B),
        "threshold": F(INT),
        "discard": F(B, since=5),
        "cex": F(Obj({"enabled": F(B)}), since=6),
    })),
    "mirror": F(Obj({"devices": F(SL)})),
}, name="boot_device")

# fcos >= 1.5.0 only (config/fcos/v1_5/schema.go)
GRUB = Obj({"users": F(ListOf(Obj({"name": F(S), "password_hash": F(S)}, name="grub_user")))}, name="grub")

SCHEMA = Obj({
    "variant": F(S, butane_only=True),
    "version": F(S, butane_only=True),
    "ignition": F(Obj({
        "version": F(S, ign_only=True, required=True),
        "config": F(Obj({
            "merge": F(ListOf(resource("config"))),
            "replace": F(resource("config")),
        })),
        "timeouts": F(Obj({"http_response_headers": F(INT), "http_total": F(INT)})),
        "security": F(Obj({"tls": F(Obj({
            "certificate_authorities": F(ListOf(resource("ca"), key="source")),
        }))})),
        "proxy": F(Obj({"http_proxy": F(S), "https_proxy": F(S), "no_proxy": F(SL)}, name="proxy"), since=2),
    })),
    "storage": F(Obj({
        "disks": F(ListOf(Obj({
            "device": F(S, required=True),
            "wipe_table": F(B),
            "partitions": F(ListOf(Obj({
                "label": F(S),
                "number": F(INT),
                "size_mib": F(INT, ign="sizeMiB"),
                "start_mib": F(INT, ign="startMiB"),
                "type_guid": F(S, ign="typeGuid"),
                "guid": F(S),
                "wipe_partition_entry": F(B),
                "should_exist": F(B),
                "resize": F(B, since=3),
            }), key="number|label")),
        }, name="disk"), key="device")),
        "raid": F(ListOf(Obj({
            "name": F(S, required=True),
            "level": F(S, required=True),
            "devices": F(SL, required=True),
            "spares": F(INT),
            "options": F(SL),
        }), key="name")),
        "filesystems": F(ListOf(Obj({
            "device": F(S, required=True),
            "format": F(Prim("str", enum=tuple(FS_FORMATS))),
            "path": F(S),
            "wipe_filesystem": F(B),
            "label": F(S),
            "uuid": F(S),
            "options": F(SL),
            "mount_options": F(SL, since=2),
            "with_mount_unit": F(B, since=2, butane_only=True),
        }, name="filesystem"), key="device")),
        "files": F(ListOf(Obj({
            "path": F(S, required=True),
            "overwrite": F(B),
            "contents": F(resource("file")),
            "append": F(ListOf(resource("file"))),
            "mode": F(INT),
            "user": F(NODE_USER),
            "group": F(NODE_GROUP),
        }, name="file"), key="path")),
        "directories": F(ListOf(Obj({
            "path": F(S, required=True),
            "overwrite": F(B),
            "mode": F(INT),
            "user": F(NODE_USER),
            "group": F(NODE_GROUP),
        }, name="directory"), key="path")),
        "links": F(ListOf(Obj({
            "path": F(S, required=True),
            "overwrite": F(B),
            "user": F(NODE_USER),
            "group": F(NODE_GROUP),
            "target": F(S, required=True),
            "hard": F(B),
        }, name="link"), key="path")),
        "luks": F(ListOf(LUKS, key="name"), since=3),
        "trees": F(ListOf(Obj({"local": F(S), "path": F(S)}, name="tree")), since=2, butane_only=True),
    })),
    "systemd": F(Obj({
        "units": F(ListOf(Obj({
            "name": F(S, required=True),
            "enabled": F(B),
            "mask": F(B),
            "contents": F(S),
            "contents_local": F(S, since=5, butane_only=True),
            "dropins": F(ListOf(Obj({
                "name": F(S, required=True),
                "contents": F(S),
                "contents_local": F(S, since=5, butane_only=True),
            }, name="dropin"), key="name")),
        }, name="unit"), key="name")),
    })),
    "passwd": F(Obj({
        "users": F(ListOf(Obj({
            "name": F(S, required=True),
            "password_hash": F(S),
            "ssh_authorized_keys": F(SL),
            "ssh_authorized_keys_local": F(SL, since=5, butane_only=True),
            "uid": F(INT),
            "gecos": F(S),
            "home_dir": F(S),
            "no_create_home": F(B),
            "primary_group": F(S),
            "groups": F(SL),
            "no_user_group": F(B),
            "no_log_init": F(B),
            "shell": F(S),
            "should_exist": F(B, since=3),
            "system": F(B),
        }, name="user"), key="name")),
        "groups": F(ListOf(Obj({
            "name": F(S, required=True),
            "gid": F(INT),
            "password_hash": F(S),
            "should_exist": F(B, since=3),
            "system": F(B),
        }), key="name")),
    })),
    "kernel_arguments": F(Obj({"should_exist": F(SL), "should_not_exist": F(SL)}), since=4),
    "boot_device": F(BOOT_DEVICE, since=3, butane_only=True, variants={"fcos": (1, 3, 0)}),
    "grub": F(GRUB, since=5, butane_only=True, variants={"fcos": (1, 5, 0)}),
}, name="root")


def ign_key(name: str, f: F) -> str:
    return f.ign or camel(name)


def level_for_spec(spec: str) -> int:
    """Ignition 3.N.x → field level N+1 (3.4.0-experimental reads like 3.4.0)."""
    _major, minor = spec.split("-")[0].split(".")[:2]
    return int(minor) + 1
