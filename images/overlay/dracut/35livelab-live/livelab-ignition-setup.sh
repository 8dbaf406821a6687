#!/bin/bash
# Copy embedded user configs into Ignition's system config location (user.ign), like FCOS's
# coreos-ignition-setup-user and Flatcar's bootengine ignition-setup.
# It runs before Ignition's first stage, so it sticks to builtins where a fork would do the same
# (each fork costs tens of milliseconds under TCG).
. /run/livelab/boot.env
[ -d /usr/lib/ignition ] || mkdir -p /usr/lib/ignition
[ -d /run/livelab ] || mkdir -p /run/livelab
if [ -s /config.ign ]; then
    cp /config.ign /usr/lib/ignition/user.ign
    : > /run/livelab/config-ign
    echo "livelab: using embedded Ignition config /config.ign"
fi
if [ "$FLAVOUR" = flatcar ]; then
    if [ -s /usr/share/oem/config.ign ] && [ ! -e /usr/lib/ignition/user.ign ]; then
        cp /usr/share/oem/config.ign /usr/lib/ignition/user.ign
        echo "livelab: using OEM Ignition config /usr/share/oem/config.ign"
    fi
    if [ -s /usr/share/oem/base/base.ign ]; then
        mkdir -p /usr/lib/ignition/base.d
        cp /usr/share/oem/base/base.ign /usr/lib/ignition/base.d/oem-base.ign
    fi
    if [ "$PLATFORM" = qemu ]; then
        modprobe qemu_fw_cfg 2>/dev/null
        fw=/sys/firmware/qemu_fw_cfg/by_name/opt/org.flatcar-linux/config/raw
        if [ -r "$fw" ] && [ ! -e /usr/lib/ignition/user.ign ]; then
            cp "$fw" /usr/lib/ignition/user.ign
            echo "livelab: using Ignition config from fw_cfg opt/org.flatcar-linux/config"
        fi
    fi
fi
read -r cmdline < /proc/cmdline
if [ -e /usr/lib/ignition/user.ign ] || [[ " $cmdline" =~ \ (ignition|flatcar|coreos)\.config\.url= ]]; then
    : > /run/livelab/user-config
fi
exit 0
