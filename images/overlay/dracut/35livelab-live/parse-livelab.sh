#!/bin/sh
# The live root is mounted by livelab's own units (sysroot.mount from ignition-generator):
# tell dracut there is a root so it doesn't wait for or complain about root=.
if [ -z "$root" ] || [ "$(cat /etc/livelab-flavour 2>/dev/null)" != flatcar ]; then
    root="livelab:live"
    rootok=1
fi
