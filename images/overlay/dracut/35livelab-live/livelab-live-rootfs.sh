#!/bin/bash
# Prepare the live root's layers: the squashfs at /run/rootfsbase and the overlay upper at
# /run/overlayfs; sysroot.mount then mounts the overlay on /sysroot.
set -o pipefail
. /run/livelab/boot.env
say() { echo "livelab-live: $*"; }
fail() { echo "livelab-live: $*" >&2; echo "livelab-live: $*" > /dev/console 2>/dev/null; exit 1; }

mkdir -p /run/rootfsbase /run/overlayfs /run/livelab
memkb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)

wait_dev() {  # wait_dev SPEC SECONDS -> prints device path
    local spec="$1" n=$(( $2 * 10 )) dev
    for i in $(seq 1 "$n"); do
        case "$spec" in
            LABEL=*|UUID=*|PARTUUID=*|PARTLABEL=*) dev=$(blkid -l -o device -t "$spec" 2>/dev/null) ;;
            *) [ -b "$spec" ] && dev="$spec" ;;
        esac
        [ -n "$dev" ] && { echo "$dev"; return 0; }
        [ $((i % 20)) = 0 ] && udevadm settle -t 2 >/dev/null 2>&1
        sleep 0.1
    done
    return 1
}

# ---- the overlay upper layer
case "$MODE" in
disk)
    dev=$(wait_dev "$ROOT" 60) || fail "root device $ROOT not found"
    opts="rw${ROOTFLAGS:+,$ROOTFLAGS}"
    if [ -n "$ROOTFSTYPE" ] && [ "$ROOTFSTYPE" != tmpfs ]; then
        mount -t "$ROOTFSTYPE" -o "$opts" "$dev" /run/overlayfs || fail "cannot mount root=$ROOT ($dev)"
    else
        mount -o "$opts" "$dev" /run/overlayfs || fail "cannot mount root=$ROOT ($dev)"
    fi
    say "root=$ROOT ($dev) holds the persistent upper layer" ;;
*)
    if [ "$ROOTFSTYPE" = btrfs ]; then
        mkdir -p /run/livelab/ram
        mount -t tmpfs -o mode=0700,size=$((memkb * 3 / 4))k tmpfs /run/livelab/ram || fail "tmpfs"
        truncate -s $((memkb * 3 / 4))k /run/livelab/ram/root.btrfs
        mkfs.btrfs -q -L ROOT /run/livelab/ram/root.btrfs >/dev/null || fail "mkfs.btrfs failed"
        mount -t btrfs -o loop,compress=lzo${ROOTFLAGS:+,$ROOTFLAGS} /run/livelab/ram/root.btrfs /run/overlayfs \
            || fail "cannot mount the btrfs root"
        say "root is btrfs in RAM"
    else
        mount -t tmpfs -o mode=0755,size=$((memkb * 3 / 4))k${ROOTFLAGS:+,$ROOTFLAGS} tmpfs /run/overlayfs || fail "tmpfs"
    fi ;;
esac
mkdir -p /run/overlayfs/upper /run/overlayfs/work

# ---- the squashfs lower layer
squash="" ; sqopts="ro,loop"
if [ "$MODE" = iso ]; then
    modprobe -a sr_mod isofs squashfs loop 2>/dev/null
    dev=$(wait_dev "/dev/disk/by-label/$LIVEISO" 60) || fail "live ISO with label $LIVEISO not found"
    mkdir -p /run/media/iso
    mount -t iso9660 -o ro "$dev" /run/media/iso || fail "cannot mount $dev (coreos.liveiso=$LIVEISO)"
    img=/run/media/iso/images/pxeboot/rootfs.img
    [ -f "$img" ] || fail "No rootfs image found on the ISO ($img)"
    if [ "$FROMRAM" = 1 ]; then
        say "copying the rootfs to RAM (coreos.liveiso.fromram)"
        cp "$img" /rootfs.img || fail "copying rootfs.img to RAM failed"
        umount /run/media/iso || fail "cannot unmount the ISO"
        rmdir /run/media/iso
        # released: unlock the tray (udev locked it at coldplug) so the media can be ejected
        /usr/lib/udev/cdrom_id --unlock-media "$(readlink -f "$dev")" >/dev/null 2>&1 || true
        # release the media: no mount, no loop, tray unlocked
        # last close of the drive lets the kernel unlock the tray (nothing keeps it open now)
        img=/rootfs.img
    fi
    squash="$img" ; sqopts="ro,loop,offset=124"
elif [ "$FLAVOUR" = flatcar ]; then
    [ -f /root.squashfs ] || fail "No rootfs image found: /root.squashfs missing from the PXE image"
    squash=/root.squashfs
else
    want=$(cat /etc/coreos-live-initramfs 2>/dev/null)
    if [ -f /etc/coreos-live-rootfs ]; then
        got=$(cat /etc/coreos-live-rootfs)
        if [ "$want" != "$got" ]; then
            fail "Found initramfs version $want but rootfs version $got. Please fix your PXE configuration."
        fi
        [ -f /root.squashfs ] || fail "No rootfs image found: /root.squashfs missing"
        squash=/root.squashfs
    elif [ -n "$ROOTFS_URL" ]; then
        case "$ROOTFS_URL" in
            http:*|https:*|tftp:*) ;;
            *) fail "Unsupported scheme for image specified by coreos.live.rootfs_url=$ROOTFS_URL. Only HTTP, HTTPS and TFTP are supported." ;;
        esac
        /usr/sbin/livelab-netup || fail "network setup failed: cannot fetch coreos.live.rootfs_url"
        case "$ROOTFS_URL" in
            http*)
                i=0
                while ! curl --silent --insecure --location --head --fail --max-time 10 "$ROOTFS_URL" >/dev/null; do
                    i=$((i + 1))
                    [ $((i % 5)) = 1 ] && echo "livelab-live: couldn't reach $ROOTFS_URL; retrying" > /dev/console
                    [ $i -ge 120 ] && fail "Couldn't establish connectivity with the server specified by coreos.live.rootfs_url=$ROOTFS_URL"
                    sleep 1
                done ;;
        esac
        say "fetching and verifying $ROOTFS_URL"
        if ! curl --silent --show-error --insecure --location --retry 5 --fail -o /rootfs.img "$ROOTFS_URL" \
                || ! /usr/sbin/livelab-stream-hash /etc/coreos-live-want-rootfs /rootfs.img; then
            rm -f /rootfs.img
            fail "Couldn't fetch, verify, and unpack image specified by coreos.live.rootfs_url=$ROOTFS_URL"
        fi
        squash=/rootfs.img ; sqopts="ro,loop,offset=124"
    else
        fail "No rootfs image found.  Modify your PXE configuration to add the rootfs image as a second initrd, or use the coreos.live.rootfs_url kernel parameter to specify an HTTP or HTTPS URL to the rootfs."
    fi
fi
modprobe -a squashfs loop overlay 2>/dev/null
mount -t squashfs -o "$sqopts" "$squash" /run/rootfsbase || fail "cannot mount the root squashfs ($squash)"
say "root squashfs mounted from $squash"
# Boot speed, nothing else to see: read what the real root's systemd reads first (its binaries,
# their libraries, the unit files; the list is made by images/build.py) into the page cache now,
# in the background while Ignition runs, instead of at switch-root, block by block.
list=/run/rootfsbase/usr/lib/livelab/prefetch.list
if [ -f "$list" ]; then
    (cd /run/rootfsbase && xargs -d '\n' cat < "$list" > /dev/null 2>&1) &
fi
exit 0
