#!/bin/bash
# Last step before switch-root (always runs, after Ignition's files stage when it ran).
. /run/livelab/boot.env
R=/sysroot
# Builtins where a fork would do the same (each fork costs tens of milliseconds under TCG, and
# this unit is on the way to switch-root).
write() {  # write FILE <<EOT: standard input to FILE
    local line
    while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done > "$1"
}
version() {  # version DEFAULT: this image's version (/etc/livelab-version)
    REPLY=$1
    [ -r /etc/livelab-version ] && read -r REPLY < /etc/livelab-version
    return 0
}
# A new machine-id per boot (no systemd "first boot" semantics, so no preset-all).
read -r uuid < /proc/sys/kernel/random/uuid
printf '%s\n' "${uuid//-/}" > $R/etc/machine-id
# Units Ignition enabled/disabled: Ignition 2.14 only writes a preset file.
p=$R/etc/systemd/system-preset/20-ignition.preset
if [ -f "$p" ]; then
    while read -r verb unit; do
        case "$verb" in
            enable|disable) systemctl --root=$R --no-reload -q "$verb" "$unit" 2>&1 ;;
        esac
    done < "$p"
fi
rm -f $R/etc/os-release
if [ "$FLAVOUR" = flatcar ]; then
    version 0.0.0; v=$REPLY
    write $R/etc/os-release <<EOT
NAME="Flatcar Container Linux by Kinvolk"
ID=flatcar
ID_LIKE=coreos
VERSION=$v
VERSION_ID=$v
BUILD_ID=livelab
SYSEXT_LEVEL=1.0
PRETTY_NAME="Flatcar Container Linux by Kinvolk $v (livelab stand-in)"
ANSI_COLOR="38;5;75"
HOME_URL="https://flatcar.org/"
BUG_REPORT_URL="https://issues.flatcar.org"
FLATCAR_BOARD="amd64-usr"
CPE_NAME="cpe:2.3:o:flatcar-linux:flatcar_linux:$v:*:*:*:*:*:*:*"
EOT
    # sshkey="..." on the kernel command line -> core's authorized keys
    read -r cmd < /proc/cmdline
    re='sshkey="([^"]+)"'
    if [[ $cmd =~ $re ]]; then
        d=$R/home/core/.ssh
        mkdir -p $d/authorized_keys.d
        echo "${BASH_REMATCH[1]}" > $d/authorized_keys.d/proc-cmdline
        echo "${BASH_REMATCH[1]}" >> $d/authorized_keys
        ug=$(sed -n 's/^core:[^:]*:\([0-9]*\):\([0-9]*\):.*/\1:\2/p' $R/etc/passwd)
        chown -R "$ug" $d; chmod 700 $d; chmod 600 $d/authorized_keys
    fi
else
    version 0; v=$REPLY
    write $R/etc/os-release <<EOT
NAME="Fedora Linux"
VERSION="${v%%.*} (CoreOS)"
ID=fedora
VERSION_ID=${v%%.*}
VERSION_CODENAME=""
PLATFORM_ID="platform:f${v%%.*}"
PRETTY_NAME="Fedora CoreOS $v (livelab stand-in)"
ANSI_COLOR="0;38;2;60;110;180"
LOGO=fedora-logo-icon
CPE_NAME="cpe:/o:fedoraproject:fedora:${v%%.*}"
HOME_URL="https://getfedora.org/coreos/"
DOCUMENTATION_URL="https://docs.fedoraproject.org/en-US/fedora-coreos/"
SUPPORT_URL="https://github.com/coreos/fedora-coreos-tracker/"
BUG_REPORT_URL="https://github.com/coreos/fedora-coreos-tracker/"
REDHAT_BUGZILLA_PRODUCT="Fedora"
REDHAT_BUGZILLA_PRODUCT_VERSION=${v%%.*}
REDHAT_SUPPORT_PRODUCT="Fedora"
REDHAT_SUPPORT_PRODUCT_VERSION=${v%%.*}
SUPPORT_END=2026-05-12
VARIANT="CoreOS"
VARIANT_ID=coreos
OSTREE_VERSION='$v'
EOT
    cp /etc/coreos-live-initramfs $R/etc/coreos-live-initramfs 2>/dev/null
    : > /run/ostree-live
fi
exit 0
