#!/bin/bash
# Copy embedded user configs into Ignition's system config location (user.ign), like FCOS's
# coreos-ignition-setup-user and Flatcar's bootengine ignition-setup.
. /run/livelab/boot.env
mkdir -p /usr/lib/ignition /run/livelab
if [ -s /config.ign ]; then
    cp /config.ign /usr/lib/ignition/user.ign
    touch /run/livelab/config-ign
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
if [ -e /usr/lib/ignition/user.ign ] || grep -qE '(^| )(ignition|flatcar|coreos)\.config\.url=' /proc/cmdline; then
    touch /run/livelab/user-config
fi
exit 0
