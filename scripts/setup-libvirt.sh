#!/usr/bin/env bash
# Bring up libvirt's system daemon for livelab's libvirt backend (idempotent; exits at once when up).
#
# Debian's libvirt-daemon + libvirt-daemon-driver-qemu (without libvirt-daemon-system) ship no
# `libvirt-qemu` user, no /var/log/libvirt, no qemu.conf and no running daemons.  This script:
#   - creates the `libvirt-qemu` system user/group and the `kvm` group when missing (the QEMU
#     driver refuses to load without them, whatever qemu.conf says);
#   - writes /etc/libvirt/qemu.conf settings so QEMU runs as root with no security driver and no
#     dynamic ownership: the harness's run directories (console socket, qcow2 overlays, TFTP dir)
#     stay owned by the test's user and readable by QEMU; and `seccomp_sandbox = 0`, since libvirt's
#     default `-sandbox ...,spawn=deny` would stop the guestfwd relay (`-cmd:socat ...`).
#     Only keys not already set that way are
#     changed; an existing file keeps everything else;
#   - creates /var/log/libvirt and starts `virtlogd -d` (needed before a domain with a serial
#     log starts) and `libvirtd -d` (serves qemu:///system).
# Needs root (or sudo).  Does nothing to networking: the libvirt backend defines no networks.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-libvirt: needs root (or sudo)" >&2; exit 1; }
  SUDO="sudo"
fi

for bin in libvirtd virtlogd virsh; do
  command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || {
    echo "setup-libvirt: $bin missing: run scripts/setup-host.sh (libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)" >&2
    exit 1; }
done

CONF=/etc/libvirt/qemu.conf
conf_ok() {
  [ -f "$CONF" ] &&
    grep -qE '^\s*user\s*=\s*"root"' "$CONF" &&
    grep -qE '^\s*group\s*=\s*"root"' "$CONF" &&
    grep -qE '^\s*security_driver\s*=\s*"none"' "$CONF" &&
    grep -qE '^\s*dynamic_ownership\s*=\s*0' "$CONF" &&
    grep -qE '^\s*seccomp_sandbox\s*=\s*0' "$CONF"
}

running() { pgrep -x "$1" >/dev/null 2>&1; }

# fast path: everything up
if getent passwd libvirt-qemu >/dev/null && getent group kvm >/dev/null && conf_ok &&
   running virtlogd && running libvirtd &&
   virsh -c qemu:///system version >/dev/null 2>&1; then
  exit 0
fi

getent group kvm >/dev/null || $SUDO groupadd --system kvm
getent group libvirt-qemu >/dev/null || $SUDO groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  $SUDO useradd --system --gid libvirt-qemu --groups kvm --home-dir /var/lib/libvirt \
        --no-create-home --shell /usr/sbin/nologin libvirt-qemu
$SUDO mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /etc/libvirt

restart=0
if ! conf_ok; then
  $SUDO touch "$CONF"
  # comment out conflicting settings, then append ours
  $SUDO sed -i -E 's/^(\s*(user|group|security_driver|dynamic_ownership|seccomp_sandbox)\s*=)/# livelab: \1/' "$CONF"
  printf '%s\n' '# livelab (scripts/setup-libvirt.sh): QEMU runs as root, no relabelling of run dirs' \
    'user = "root"' 'group = "root"' 'security_driver = "none"' 'dynamic_ownership = 0' \
    '# guestfwd=...-cmd: spawns a relay per guest connection: QEMU'"'"'s -sandbox spawn=deny would stop it' \
    'seccomp_sandbox = 0' | $SUDO tee -a "$CONF" >/dev/null
  restart=1
fi

running virtlogd || $SUDO virtlogd -d
if [ "$restart" = 1 ] && running libvirtd; then
  # a libvirtd started before the qemu.conf change must re-read it
  pid=$(cat /run/libvirtd.pid 2>/dev/null || true)
  [ -n "$pid" ] && $SUDO kill -TERM "$pid" || true
  for _ in $(seq 50); do running libvirtd || break; sleep 0.1; done
fi
running libvirtd || $SUDO libvirtd -d

for _ in $(seq 100); do
  if virsh -c qemu:///system version >/dev/null 2>&1; then
    echo "setup-libvirt: libvirtd serves qemu:///system"
    exit 0
  fi
  sleep 0.1
done
echo "setup-libvirt: libvirtd did not answer on qemu:///system (see /var/log/libvirt)" >&2
exit 1
