#!/usr/bin/env bash
# Install the Debian packages livelab needs (idempotent; apt-get runs only when something is missing).
set -euo pipefail
PKGS=(
  qemu-system-x86 qemu-utils ipxe-qemu ovmf pxelinux syslinux-common isolinux
  mmdebstrap squashfs-tools xorriso gpg gpgv cpio xz-utils zstd mtools dosfstools
  grub-efi-amd64-bin grub-pc-bin grub-common ignition socat curl openssh-client lzop
  openssl iproute2 procps util-linux
  python3-venv python3-dev gcc pkg-config libvirt-dev
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  chromium
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "livelab: installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
