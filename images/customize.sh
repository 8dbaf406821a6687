#!/bin/bash
# Runs inside the root filesystem (chroot) after the overlay files were copied in.
set -euo pipefail
export LC_ALL=C

# --- the core user, like FCOS: no password, wheel/sudo with NOPASSWD
getent group wheel >/dev/null || groupadd -r wheel
id core >/dev/null 2>&1 || useradd -m -u 1000 -U -G wheel,sudo -s /bin/bash -c "CoreOS Admin" core
usermod -p '*' core
mkdir -p /home/core/.ssh/authorized_keys.d
chown -R core:core /home/core/.ssh; chmod 700 /home/core/.ssh
# root locked, like FCOS
usermod -p '*' root

# --- logins: Debian's pam_motd runs /etc/update-motd.d/* (run-parts, uname) into /run/motd.dynamic
# at every session; Fedora's pam_motd only shows /etc/motd, /etc/motd.d and /run/motd.d, which
# stay (the noupdate line).  Measured under TCG: 0.6 s of every SSH login.
sed -i '/pam_motd\.so[[:space:]]\+motd=\/run\/motd\.dynamic/d' /etc/pam.d/sshd /etc/pam.d/login
grep -q '^[^#]*pam_motd\.so.*motd=/run/motd' /etc/pam.d/sshd /etc/pam.d/login && { echo "customize: pam_motd motd.dynamic still in PAM" >&2; exit 1; }
# --- SSH: never bake host keys
rm -f /etc/ssh/ssh_host_*
systemctl enable livelab-sshd-keygen.service ssh.service systemd-networkd.service >/dev/null 2>&1
# --- boot speed: nothing that waits, scans or updates caches at boot
for u in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
         apt-daily.service apt-daily-upgrade.service dpkg-db-backup.timer dpkg-db-backup.service \
         e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-hwdb-update.service \
         systemd-firstboot.service ldconfig.service systemd-journal-catalog-update.service \
         systemd-update-done.service systemd-pstore.service man-db.timer \
         systemd-timesyncd.service remote-fs.target xfs_scrub_all.timer btrfs-scrub@.timer \
         systemd-networkd.socket \
         sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
         sys-fs-fuse-connections.mount dev-hugepages.mount proc-sys-fs-binfmt_misc.automount \
         proc-sys-fs-binfmt_misc.mount systemd-binfmt.service modprobe@drm.service \
         modprobe@dm_mod.service modprobe@fuse.service modprobe@configfs.service \
         modprobe@loop.service modprobe@efi_pstore.service systemd-random-seed.service \
         systemd-update-utmp.service systemd-update-utmp-runlevel.service \
         systemd-boot-system-token.service systemd-repart.service; do
    systemctl mask "$u" >/dev/null 2>&1 || true
done
# nftables: installed, off until a config enables it (as on FCOS)
systemctl disable nftables.service >/dev/null 2>&1 || true
systemctl set-default multi-user.target >/dev/null
# generators this live root has no use for (each is an exec from the squashfs at every boot
# and daemon-reload); fstab, getty (serial console), debug stay
mkdir -p /etc/systemd/system-generators
for g in systemd-cryptsetup-generator systemd-gpt-auto-generator systemd-hibernate-resume-generator \
         systemd-integritysetup-generator systemd-veritysetup-generator systemd-rc-local-generator \
         systemd-system-update-generator systemd-sysv-generator systemd-run-generator; do
    ln -sf /dev/null "/etc/systemd/system-generators/$g"
done
# networkd.socket masked -> networkd must not require it
mkdir -p /etc/systemd/system/systemd-networkd.service.d
printf '[Unit]\nRequires=\nWants=\n' > /etc/systemd/system/systemd-networkd.service.d/10-livelab.conf
ldconfig
rm -f /etc/udev/hwdb.bin /usr/lib/udev/hwdb.bin /lib/udev/hwdb.bin
rm -rf /usr/lib/udev/hwdb.d /lib/udev/hwdb.d
echo localhost > /etc/hostname
printf "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" > /etc/hosts
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
touch /etc/.updated /var/.updated
echo done-customize
