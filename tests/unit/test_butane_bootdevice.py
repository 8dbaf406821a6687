"""Butane's boot_device and grub sugar, field by field, from butane v0.25.1's documented examples.

The expected outputs are written out from the rules (harness/ignition/bootdevice.py says where each
comes from in butane's sources): the partitions each layout replicates with their sizes and type
GUIDs, the md-boot/md-root RAID1s, the LUKS ``root`` volume and its device per layout, the
filesystems, /boot/grub2/user.cfg; what the user declares with the same key is merged in place.
"""
from __future__ import annotations

import pytest
from test_butane import assert_valid, decoded, tr

from harness.errors import LivelabError
from harness.ignition import butane_to_ignition

TANG = {"url": "https://tang.example.com", "thumbprint": "REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT"}
ROOT_FS = {"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": True}
BIOS = "21686148-6449-6E6F-744E-656564454649"
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
PREP = "9E1A2D38-C612-4316-AA26-8B49521E5A8B"
RESERVED = "8DA63339-0007-60C0-C436-083AC8230908"


def root_luks(device="/dev/disk/by-partlabel/root", **more):
    return {"device": device, "label": "luks-root", "name": "root", "wipeVolume": True, **more}


def mirror_disk(device, n, layout="x86_64", root=None):
    first = {"x86_64": {"label": f"bios-{n}", "sizeMiB": 1, "typeGuid": BIOS},
             "aarch64": {"label": f"reserved-{n}", "sizeMiB": 1, "typeGuid": RESERVED},
             "ppc64le": {"label": f"prep-{n}", "sizeMiB": 4, "typeGuid": PREP}}[layout]
    second = ({"label": f"esp-{n}", "sizeMiB": 127, "typeGuid": ESP} if layout != "ppc64le"
              else {"label": f"reserved-{n}", "sizeMiB": 1, "typeGuid": RESERVED})
    return {"device": device, "wipeTable": True,
            "partitions": [first, second, {"label": f"boot-{n}", "sizeMiB": 384}, root or {"label": f"root-{n}"}]}


def esp_fs(n):
    return {"device": f"/dev/disk/by-partlabel/esp-{n}", "format": "vfat", "label": f"esp-{n}",
            "wipeFilesystem": True}


def raids(n):
    return [{"devices": [f"/dev/disk/by-partlabel/boot-{i}" for i in range(1, n + 1)], "level": "raid1",
             "name": "md-boot", "options": ["--metadata=1.0"]},
            {"devices": [f"/dev/disk/by-partlabel/root-{i}" for i in range(1, n + 1)], "level": "raid1",
             "name": "md-root"}]


MD_BOOT_FS = {"device": "/dev/md/md-boot", "format": "ext4", "label": "boot", "wipeFilesystem": True}


def ok(text, spec, **kw):
    t = tr(text, **kw)
    assert t.warnings == []
    assert t.config["ignition"] == {"version": spec}
    assert_valid(t.config)
    return t.config


# ---------------------------------------------------------------- LUKS (butane-examples.md, upgrading-fcos.md)

# butane-examples.md's boot_device.luks examples (fcos 1.3.0) start alike
LUKS_TPM2 = "variant: fcos\nversion: 1.3.0\nboot_device:\n  luks:\n    tpm2: true\n"


def test_docs_luks_tpm2_and_tang():
    c = ok(LUKS_TPM2 + "    tang:\n      - url: https://tang.example.com\n"
                       "        thumbprint: REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT\n", "3.2.0")
    assert c == {"ignition": {"version": "3.2.0"}, "storage": {
        "luks": [root_luks(clevis={"tang": [TANG], "tpm2": True})],
        "filesystems": [ROOT_FS]}}


def test_docs_luks_root_filesystem_format_overridden_in_place():
    c = ok(LUKS_TPM2 + "storage:\n  filesystems:\n    - device: /dev/mapper/root\n      format: ext4\n", "3.2.0")
    assert c["storage"] == {"luks": [root_luks(clevis={"tpm2": True})],
                            "filesystems": [{**ROOT_FS, "format": "ext4"}]}


def test_docs_tang_advertisement_and_discard_fcos_1_5():
    adv = '{"payload": "...", "protected": "...", "signature": "..."}'
    c = ok(f"""
        variant: fcos
        version: 1.5.0
        boot_device:
          luks:
            discard: true
            threshold: 2
            tpm2: false
            tang:
              - url: https://tang.example.com
                thumbprint: REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT
                advertisement: '{adv}'
        """, "3.4.0")
    assert c["storage"] == {
        "luks": [root_luks(clevis={"tang": [{**TANG, "advertisement": adv}], "threshold": 2, "tpm2": False},
                           discard=True)],
        "filesystems": [ROOT_FS]}


@pytest.mark.parametrize("layout,device,luks_device", [
    ("s390x-eckd", "/dev/dasda", "/dev/dasda2"),
    ("s390x-zfcp", "/dev/sdb", "/dev/sdb4"),
    ("s390x-virt", None, "/dev/disk/by-partlabel/root"),
    ("x86_64", "/dev/sdb", "/dev/disk/by-partlabel/root"),     # the device is for the s390x DASD/zFCP layouts
])
def test_docs_s390x_layouts_tang(layout, device, luks_device):
    dev = f"\n            device: {device}" if device else ""
    c = ok(f"""
        variant: fcos
        version: 1.6.0
        boot_device:
          layout: {layout}
          luks:{dev}
            tang:
              - url: https://tang.example.com
                thumbprint: REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT
        """, "3.5.0")
    assert c["storage"] == {"luks": [root_luks(luks_device, clevis={"tang": [TANG]})], "filesystems": [ROOT_FS]}


def test_docs_s390x_cex_with_its_kernel_argument():
    c = ok("""
        variant: fcos
        version: 1.6.0
        kernel_arguments:
          should_exist:
            - rd.luks.key=/etc/luks/cex.key
        boot_device:
          layout: s390x-eckd
          luks:
            device: /dev/dasda
            cex:
              enabled: true
        """, "3.5.0")
    assert c == {"ignition": {"version": "3.5.0"},
                 "kernelArguments": {"shouldExist": ["rd.luks.key=/etc/luks/cex.key"]},
                 "storage": {"luks": [root_luks("/dev/dasda2", cex={"enabled": True})], "filesystems": [ROOT_FS]}}


@pytest.mark.parametrize("body", [
    "boot_device:\n  layout: aarch64\n",
    "boot_device:\n  luks:\n    threshold: 2\n    discard: true\n",
    "boot_device:\n  luks:\n    tpm2: false\n",
    "boot_device:\n  luks:\n    device: /dev/sda\n",
    "boot_device:\n  mirror:\n    devices: []\n",
    "boot_device: {}\ngrub:\n  users: []\n",
])
def test_nothing_asked_nothing_generated(body):
    """No encryption (tpm2, tang, cex) and no mirror: processBootDevice adds nothing."""
    assert ok("variant: fcos\nversion: 1.6.0\n" + body, "3.5.0") == {"ignition": {"version": "3.5.0"}}


# ---------------------------------------------------------------- mirror

def test_docs_mirror_two_disks():
    c = ok("""
        variant: fcos
        version: 1.3.0
        boot_device:
          mirror:
            devices:
              - /dev/sda
              - /dev/sdb
        """, "3.2.0")
    assert c["storage"] == {
        "disks": [mirror_disk("/dev/sda", 1), mirror_disk("/dev/sdb", 2)],
        "raid": raids(2),
        "filesystems": [esp_fs(1), esp_fs(2), MD_BOOT_FS,
                        {"device": "/dev/md/md-root", "format": "xfs", "label": "root", "wipeFilesystem": True}]}


def test_docs_mirror_luks_root_size_and_var_merged_in_place():
    c = ok("""
        variant: fcos
        version: 1.3.0
        boot_device:
          luks:
            tpm2: true
          mirror:
            devices:
              - /dev/sda
              - /dev/sdb
        storage:
          disks:
            - device: /dev/sda
              partitions:
                - label: root-1
                  size_mib: 10240
                - label: var-1
            - device: /dev/sdb
              partitions:
                - label: root-2
                  size_mib: 10240
                - label: var-2
          raid:
            - name: md-var
              level: raid1
              devices:
                - /dev/disk/by-partlabel/var-1
                - /dev/disk/by-partlabel/var-2
          filesystems:
            - device: /dev/md/md-var
              path: /var
              format: xfs
              wipe_filesystem: true
              with_mount_unit: true
        """, "3.2.0")
    disk = {n: mirror_disk(f"/dev/sd{'ab'[n - 1]}", n, root={"label": f"root-{n}", "sizeMiB": 10240})
            for n in (1, 2)}
    for n in (1, 2):
        disk[n]["partitions"].append({"label": f"var-{n}"})
    assert c["storage"] == {
        "disks": [disk[1], disk[2]],
        "raid": [*raids(2), {"devices": ["/dev/disk/by-partlabel/var-1", "/dev/disk/by-partlabel/var-2"],
                             "level": "raid1", "name": "md-var"}],
        "luks": [root_luks("/dev/md/md-root", clevis={"tpm2": True})],
        "filesystems": [esp_fs(1), esp_fs(2), MD_BOOT_FS, ROOT_FS,
                        {"device": "/dev/md/md-var", "format": "xfs", "path": "/var", "wipeFilesystem": True}]}
    assert [u["name"] for u in c["systemd"]["units"]] == ["var.mount"]


@pytest.mark.parametrize("layout", ["aarch64", "ppc64le", "x86_64"])
def test_mirror_layouts_three_disks(layout):
    """upgrading-fcos.md's ppc64le example (mirror, tang, tpm2, threshold), on each layout."""
    c = ok(f"""
        variant: fcos
        version: 1.3.0
        boot_device:
          layout: {layout}
          mirror:
            devices: [/dev/sda, /dev/sdb, /dev/sdc]
          luks:
            tang:
              - url: https://tang.example.com
                thumbprint: REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT
            tpm2: true
            threshold: 2
        """, "3.2.0")
    esps = [esp_fs(n) for n in (1, 2, 3)] if layout != "ppc64le" else []
    assert c["storage"] == {
        "disks": [mirror_disk(d, n, layout) for n, d in enumerate(["/dev/sda", "/dev/sdb", "/dev/sdc"], 1)],
        "raid": raids(3),
        "luks": [root_luks("/dev/md/md-root", clevis={"tang": [TANG], "threshold": 2, "tpm2": True})],
        "filesystems": [*esps, MD_BOOT_FS, ROOT_FS]}


# ---------------------------------------------------------------- grub

GRUB_HASH = "grub.pbkdf2.sha512.10000.874A958E5264..."


def test_docs_grub_password():
    c = ok(f"""
        variant: fcos
        version: 1.5.0
        grub:
          users:
            - name: root
              password_hash: {GRUB_HASH}
        """, "3.4.0")
    files = c["storage"]["files"]
    assert c["storage"]["filesystems"] == [{"device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot"}]
    assert [f["path"] for f in files] == ["/boot/grub2/user.cfg"] and set(files[0]) == {"path", "append"}
    assert decoded(files[0]["append"][0]) == (f'# Generated by Butane\n\nset superusers="root"\n'
                                              f"password_pbkdf2 root {GRUB_HASH}\n")


def test_grub_two_users_and_a_mirror_merge():
    """grub's /boot comes first (it is the parent of what boot_device and the user made)."""
    c = ok("""
        variant: fcos
        version: 1.6.0
        boot_device:
          mirror: {devices: [/dev/vda, /dev/vdb]}
        grub:
          users:
            - {name: root, password_hash: grub.pbkdf2.sha512.10000.AA}
            - {name: admin, password_hash: grub.pbkdf2.sha512.10000.BB}
        storage:
          files:
            - {path: /etc/motd, contents: {inline: hi}}
        """, "3.5.0")
    st = c["storage"]
    assert [f["device"] for f in st["filesystems"]] == [
        "/dev/disk/by-label/boot", "/dev/disk/by-partlabel/esp-1", "/dev/disk/by-partlabel/esp-2",
        "/dev/md/md-boot", "/dev/md/md-root"]
    assert [f["path"] for f in st["files"]] == ["/boot/grub2/user.cfg", "/etc/motd"]
    assert decoded(st["files"][0]["append"][0]) == (
        '# Generated by Butane\n\nset superusers="root admin"\n'
        "password_pbkdf2 root grub.pbkdf2.sha512.10000.AA\npassword_pbkdf2 admin grub.pbkdf2.sha512.10000.BB\n")


# ---------------------------------------------------------------- refusals and version gates

@pytest.mark.parametrize("version,body,error", [
    ("1.3.0", "boot_device: {layout: sparc}",
     "boot_device.layout: layout must be one of: aarch64, ppc64le, s390x-eckd, s390x-virt, s390x-zfcp, x86_64 "
     "(line 3, column 23)"),
    ("1.5.0", "boot_device: {layout: s390x-virt}", "boot_device.layout: layout must be one of"),
    ("1.3.0", "boot_device: {mirror: {devices: [/dev/sda]}}",
     "boot_device.mirror.devices: mirroring requires at least two devices (line 3, column 33)"),
    ("1.6.0", "boot_device: {layout: s390x-eckd}",
     "boot_device.layout: device is required for layouts: s390x-eckd, s390x-zfcp"),
    ("1.6.0", "boot_device: {layout: s390x-zfcp, luks: {device: '', tpm2: true}}",
     "boot_device.layout: device is required for layouts: s390x-eckd, s390x-zfcp"),
    ("1.6.0", "boot_device: {layout: s390x-eckd, luks: {device: /dev/sda, tpm2: true}}",
     "boot_device.layout: device name must start with /dev/dasd on s390x-eckd layout or /dev/sd on s390x-zfcp layout"),
    ("1.6.0", "boot_device: {layout: s390x-zfcp, luks: {device: /dev/sdab, tpm2: true}}",
     "boot_device.layout: device name must start with /dev/dasd"),
    ("1.6.0", "boot_device: {layout: s390x-virt, mirror: {devices: [/dev/vda, /dev/vdb]}}",
     "boot_device.layout: mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt"),
    ("1.6.0", "boot_device: {luks: {cex: {enabled: true}}}",
     "boot_device.luks.cex: when using cex the targeted architecture must match s390x"),
    ("1.6.0", "boot_device: {layout: x86_64, luks: {device: /dev/sda, cex: {enabled: true}}}",
     "boot_device.layout: when using cex the targeted architecture must match s390x"),
    ("1.6.0", "boot_device: {layout: s390x-eckd, luks: {device: /dev/dasda, tpm2: true, cex: {enabled: true}}}",
     "boot_device.luks: cannot use cex with clevis"),
    ("1.5.0", "grub: {users: [{name: root}]}", "grub.users[0].password_hash: field \"password_hash\" is required"),
    ("1.5.0", "grub: {users: [{password_hash: x}]}", "grub.users[0].name: field \"name\" is required"),
    ("1.6.0", "grub: {users: [{name: '', password_hash: x}]}", "grub.users[0].name: field \"name\" is required"),
])
def test_refused_as_butane_refuses(version, body, error):
    with pytest.raises(LivelabError) as e:
        butane_to_ignition(f"variant: fcos\nversion: {version}\n{body}\n")
    assert str(e.value).startswith(error), str(e.value)


@pytest.mark.parametrize("variant,version,body,key", [
    ("fcos", "1.2.0", "boot_device: {luks: {tpm2: true}}", "boot_device"),
    ("fcos", "1.4.0", "grub: {users: [{name: a, password_hash: b}]}", "grub"),
    ("flatcar", "1.1.0", "boot_device: {luks: {tpm2: true}}", "boot_device"),
    ("flatcar", "1.1.0", "grub: {users: []}", "grub"),
    ("fcos", "1.4.0", "boot_device: {luks: {tpm2: true, discard: true}}", "boot_device.luks.discard"),
    ("fcos", "1.5.0", "boot_device: {luks: {tpm2: true, device: /dev/sda}}", "boot_device.luks.device"),
    ("fcos", "1.5.0", "boot_device: {luks: {tpm2: true, cex: {enabled: true}}}", "boot_device.luks.cex"),
])
def test_fields_a_version_lacks_are_unused_keys(variant, version, body, key):
    t = butane_to_ignition(f"variant: {variant}\nversion: {version}\n{body}\n")
    assert len(t.warnings) == 1 and t.warnings[0].startswith(f"{key}: unused key {key.rsplit('.', 1)[-1]}; "
                                                             f"not in {variant} {version}, available in fcos ≥ ")
    with pytest.raises(LivelabError, match=r"^strict: 1 warning"):
        butane_to_ignition(f"variant: {variant}\nversion: {version}\n{body}\n", strict=True)


# ---------------------------------------------------------------- the other warnings

PARTITION_CASE = """\
variant: fcos
version: {version}
storage:
  disks:
    - device: /dev/vda
      partitions:
        - label: root
          size_mib: 12000
          resize: true
        - label: var-home
          size_mib: 10240
"""


def test_reserved_label_at_another_number_warns_and_fcos_1_6_refuses_reuse_by_label():
    t = butane_to_ignition(PARTITION_CASE.format(version="1.5.0"))
    assert t.warnings == ["storage.disks[0].partitions[0].label: incorrect partition number; a new partition "
                          "will be created using reserved label (line 7, column 18)"]
    t = butane_to_ignition(PARTITION_CASE.format(version="1.6.0"))
    reuse = ("partitions cannot be reused by label; number must be specified except on boot disk "
             "(/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true")
    assert t.warnings == [
        f"storage.disks[0].partitions[0].number: {reuse} (line 7, column 11)",
        f"storage.disks[0].partitions[1].number: {reuse} (line 10, column 11)",
        "storage.disks[0].partitions[0].label: incorrect partition number; a new partition will be created using "
        "reserved label (line 7, column 18)"]
    quiet = PARTITION_CASE.format(version="1.6.0").replace("/dev/vda", "/dev/disk/by-id/coreos-boot-disk")
    assert [w for w in butane_to_ignition(quiet).warnings if "reused" in w] == []
    wiped = PARTITION_CASE.format(version="1.6.0").replace("    - device: /dev/vda\n",
                                                            "    - device: /dev/vda\n      wipe_table: true\n")
    assert butane_to_ignition(wiped).warnings == []
    flatcar = PARTITION_CASE.format(version="1.1.0").replace("fcos", "flatcar")
    assert butane_to_ignition(flatcar).warnings == []      # the reserved-label check is fcos's


@pytest.mark.parametrize("body,warning", [
    ("ignition: {proxy: {https_proxy: 'http://proxy.example/'}}",
     "ignition.proxy.https_proxy: insecure plaintext HTTP proxy specified for HTTPS resources"),
    ("storage: {links: [{path: /a, target: /b, hard: true, user: {id: 0}}]}",
     "storage.links[0].user.id: user/group ignored for hard link"),
    ("storage: {disks: [{device: /dev/vdb, partitions: [{number: 1}]}],\n"
     "         filesystems: [{device: /dev/vdb, format: xfs}]}",
     "storage.filesystems[0].device: filesystem overwrites partitioned device"),
    ("storage: {disks: [{device: /dev/vdb, wipe_table: true}], filesystems: [{device: /dev/vdb, format: xfs}]}",
     "storage.filesystems[0].device: device matches disk with wipeTable enabled; filesystem will be wiped"),
    ("systemd: {units: [{name: a.service, enabled: true, contents: \"[Service]\\nExecStart=/bin/true\\n\"}]}",
     'systemd.units[0].contents: unit "a.service" is enabled, but has no install section so enable does nothing'),
    ("systemd: {units: [{name: a@.service, contents: \"[Service]\\nExecStart=/bin/true\\n\"},"
     " {name: a@b.service, enabled: true}]}",
     'systemd.units[1]: template unit "a@.service" for "a@b.service" doesn\'t have Install section'),
    ("storage: {directories: [{path: /d, mode: 01777}]}",
     "storage.directories[0].mode: setuid/setgid/sticky bits are not supported or functional in spec versions "
     "older than 3.6.0"),
    ("ignition: {config: {merge: [{inline: '{\"ignition\": {\"version\": \"3.4.0\"}}'}]}}",
     "ignition.config.merge[0].inline: skipping validation for the merge/replace ignition config due to an "
     "unkown version"),
    ("ignition: {config: {replace: {inline: '{\"ignition\": {\"version\": \"3.5.0\"}, \"bogus\": 1}'}}}",
     "ignition.config.replace.inline: inline Ignition config: $.bogus: unused key bogus"),
])
def test_ignition_and_butane_warnings_at_their_yaml_place(body, warning):
    t = butane_to_ignition(f"variant: fcos\nversion: 1.6.0\n{body}\n")
    assert len(t.warnings) == 1 and t.warnings[0].startswith(warning + " (line "), t.warnings


@pytest.mark.parametrize("body,error", [
    ("ignition: {config: {merge: [{inline: 'not json'}]}}",
     "ignition.config.merge[0].inline: inline Ignition config: config is not valid JSON"),
    ("ignition: {config: {merge: [{inline: '{}'}]}}",
     "ignition.config.merge[0].inline: inline Ignition config: ignition.version: invalid config version"),
    ("ignition: {config: {merge: [{inline: '{\"ignition\": {\"version\": \"3.5.0\"}, \"storage\": 1}'}]}}",
     "ignition.config.merge[0].inline: inline Ignition config: $.storage: expected an object"),
    ("storage: {filesystems: [{device: /dev/vdb, format: xfs, path: /srv, with_mount_unit: true}]}",
     "storage.filesystems[0].path: path must be under /etc or /var if with_mount_unit is true"),
])
def test_errors_beside_the_warnings(body, error):
    with pytest.raises(LivelabError) as e:
        butane_to_ignition(f"variant: fcos\nversion: 1.6.0\n{body}\n")
    assert str(e.value).startswith(error), str(e.value)


def test_mount_points_outside_etc_and_var_are_fcos_1_6_only():
    body = "storage: {filesystems: [{device: /dev/vdb, format: xfs, path: /srv, with_mount_unit: true}]}\n"
    assert butane_to_ignition(f"variant: fcos\nversion: 1.5.0\n{body}").warnings == []
    assert butane_to_ignition(f"variant: flatcar\nversion: 1.1.0\n{body}").warnings == []
    ok_paths = ["/var", "/var/lib/x", "/etc/x"]
    for p in ok_paths:
        butane_to_ignition(f"variant: fcos\nversion: 1.6.0\n{body.replace('/srv', p)}")


# ---------------------------------------------------------------- the CLI

def test_cli_translates_boot_device_and_prints_warnings_on_stderr(tmp_path):
    import json

    from test_butane import run_cli
    src = tmp_path / "c.bu"
    src.write_text("variant: fcos\nversion: 1.3.0\nboot_device:\n  luks:\n    tpm2: true\nstorge: {}\n")
    p = run_cli(str(src))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"ignition": {"version": "3.2.0"}, "storage": {
        "luks": [root_luks(clevis={"tpm2": True})], "filesystems": [ROOT_FS]}}
    assert p.stderr == "livelab: warning: storge: unused key storge (line 6, column 1)\n"


def test_cli_strict_prints_the_warnings_then_fails(tmp_path):
    from test_butane import run_cli
    src = tmp_path / "c.bu"
    src.write_text("variant: fcos\nversion: 1.4.0\nstorge: {}\nstorage:\n  files: [{path: /a, mode: 644}]\n")
    p = run_cli("--strict", str(src))
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert lines[0] == "livelab: warning: storge: unused key storge (line 3, column 1)"
    assert [ln.split(": ")[2] for ln in lines[1:3]] == ["storage.files[0].mode"] * 2
    assert lines[3] == "livelab: error: strict: 3 warning(s): storge: unused key storge (line 3, column 1)"
    assert len(lines) == 4
