#!/bin/bash
# livelab's own live-boot module: FCOS live contract (coreos.liveiso, coreos.live.rootfs_url,
# rootfs as extra initrd) and Flatcar PXE contract (flatcar.first_boot, rootfstype, root=,
# sshkey, OEM config), on top of upstream Ignition's own 30ignition (v2.23.0, built from source by
# images/build.py).  Upstream's check() returns 255: the module is only included because this one
# depends on it (it brings qemu systemd url-lib network).

check() { return 0; }

depends() { echo systemd ignition; }

installkernel() {
    instmods squashfs overlay loop isofs sr_mod cdrom virtio_net virtio_blk virtio_scsi \
        virtio_pci virtio_console e1000 e1000e qemu_fw_cfg xfs btrfs ext4 vfat ata_piix ahci sd_mod
    # Ignition's storage.luks (cryptsetup luksFormat/luksOpen in the disks stage)
    instmods dm_crypt xts aesni_intel algif_skcipher af_alg
}

install() {
    inst_multiple bash sh dd sha256sum stat cat cp mkdir rmdir rm ln mount umount losetup blkid \
        curl ip sleep seq grep sed head tr cut tail ls chmod chown mv touch truncate \
        mkfs.btrfs mktemp split xargs sort wc modprobe udevadm systemctl journalctl busybox networkctl systemd-detect-virt systemd-escape
    # the tray rules of the real root (fromram: unlocked) and the tool to unlock it after umount
    inst_multiple -o /usr/lib/udev/cdrom_id
    # Ignition's storage.luks: cryptsetup (upstream's 30ignition leaves it to the distro's modules),
    # and device-mapper's udev rules: without them cryptsetup luksOpen waits forever for udev to
    # confirm the new /dev/mapper node (dracut's whole 90dm module would add every drivers/md module)
    inst_multiple -o cryptsetup dmsetup
    inst_rules 55-dm.rules 60-persistent-storage-dm.rules 95-dm-notify.rules
    inst_simple /etc/udev/rules.d/60-cdrom_id.rules /etc/udev/rules.d/60-cdrom_id.rules
    inst_script "$moddir/livelab-live-rootfs.sh" /usr/sbin/livelab-live-rootfs
    inst_script "$moddir/livelab-stream-hash" /usr/sbin/livelab-stream-hash
    inst_script "$moddir/livelab-netup" /usr/sbin/livelab-netup
    inst_script "$moddir/udhcpc.script" /usr/libexec/livelab/udhcpc.script
    inst_script "$moddir/livelab-ignition-setup.sh" /usr/sbin/livelab-ignition-setup
    inst_script "$moddir/livelab-finish.sh" /usr/sbin/livelab-finish
    inst_script "$moddir/livelab-ignition-report" /usr/sbin/livelab-ignition-report
    inst_script "$moddir/is-live-image" /usr/bin/is-live-image
    # Ignition's files stage always runs setfiles; this OS has no SELinux.
    inst_script "$moddir/setfiles" /usr/sbin/setfiles
    # Replace upstream's ignition-generator with ours (flavour-aware first-boot gating,
    # platform defaults, live root mount units).
    command install -m 0755 "$moddir/livelab-generator" "$initdir/$systemdutildir/system-generators/ignition-generator"
    for u in livelab-live-rootfs.service livelab-ignition-setup.service \
             livelab-ignition-neednet.service livelab-finish.service; do
        inst_simple "$moddir/$u" "$systemdsystemunitdir/$u"
    done
    for t in ignition-complete.target; do
        mkdir -p "$initdir/$systemdsystemunitdir/$t.requires"
        ln_r "$systemdsystemunitdir/livelab-ignition-setup.service" "$systemdsystemunitdir/$t.requires/livelab-ignition-setup.service"
        ln_r "$systemdsystemunitdir/livelab-ignition-neednet.service" "$systemdsystemunitdir/$t.requires/livelab-ignition-neednet.service"
    done
    mkdir -p "$initdir/$systemdsystemunitdir/initrd.target.wants"
    ln_r "$systemdsystemunitdir/livelab-finish.service" "$systemdsystemunitdir/initrd.target.wants/livelab-finish.service"
    for s in fetch-offline fetch kargs disks mount files; do
        mkdir -p "$initdir/$systemdsystemunitdir/ignition-$s.service.d"
        inst_simple "$moddir/ignition-report.conf" "$systemdsystemunitdir/ignition-$s.service.d/10-livelab-report.conf"
    done
    # the CD drive's controller and driver early (udev loads them by modalias too): the ISO's label
    # device is a dependency of the live root, not something the root's script loads. ahci (q35's
    # SATA controller, in every boot) here starts its port probe about a second before coldplug would.
    mkdir -p "$initdir/etc/modules-load.d"
    printf 'ahci\nsr_mod\nisofs\n' > "$initdir/etc/modules-load.d/livelab-live.conf"
    inst_hook cmdline 10 "$moddir/parse-livelab.sh"
    # DHCP on every NIC with systemd-networkd from the start of the initramfs (in parallel
    # with everything else); livelab-netup only waits for a default route when Ignition or
    # the rootfs fetch needs the network.
    inst_simple "$moddir/50-livelab-dhcp.network" /etc/systemd/network/50-livelab-dhcp.network
    mkdir -p "$initdir/$systemdsystemunitdir/initrd.target.wants"
    ln_r "$systemdsystemunitdir/systemd-networkd.service" "$systemdsystemunitdir/initrd.target.wants/systemd-networkd.service"
    ln -sf /dev/null "$initdir/etc/systemd/system/systemd-networkd-wait-online.service"
    # Boot speed: dracut-pre-udev (only ifname= rules) held udevd back behind the slow shell
    # cmdline hooks; dracut-pre-pivot ran only 85-write-ifcfg.sh (no ifcfg in this root).
    ln -sf /dev/null "$initdir/etc/systemd/system/dracut-pre-udev.service"
    ln -sf /dev/null "$initdir/etc/systemd/system/dracut-pre-pivot.service"
}
