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
         systemd-networkd.socket; do
    systemctl mask "$u" >/dev/null 2>&1 || true
done
systemctl set-default multi-user.target >/dev/null
# networkd.socket masked -> networkd must not require it
mkdir -p /etc/systemd/system/systemd-networkd.service.d
printf '[Unit]\nRequires=\nWants=\n' > /etc/systemd/system/systemd-networkd.service.d/10-livelab.conf
ldconfig
rm -f /etc/udev/hwdb.bin /usr/lib/udev/hwdb.bin /lib/udev/hwdb.bin
rm -rf /usr/lib/udev/hwdb.d /lib/udev/hwdb.d
echo localhost > /etc/hostname
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
touch /etc/.updated /var/.updated
echo done-customize
