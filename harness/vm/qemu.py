"""The QEMU backend's names, kept where they always were (alias module).

The VM description and command line live in ``spec.py``, the lifecycle in ``machine.py`` and
the files a VM leaves behind in ``record.py``; ``from harness.vm.qemu import Machine, VMSpec``
keeps working.
"""
from .machine import Machine, QMPChannel, VMProcess
from .spec import (
    COMPLETION_PORT,
    COMPLETION_TOKEN,
    IPXE_ROM_DIR,
    LIVEISO_SUCCESS_PORT,
    OVMF_CODE,
    OVMF_VARS,
    Disk,
    VMSpec,
    build_command,
    isolation_problems,
    netdev_arg,
    nic_arg,
)

__all__ = [
    "COMPLETION_PORT", "COMPLETION_TOKEN", "IPXE_ROM_DIR", "LIVEISO_SUCCESS_PORT", "OVMF_CODE", "OVMF_VARS",
    "Disk", "Machine", "QMPChannel", "VMProcess", "VMSpec", "build_command", "isolation_problems", "netdev_arg",
    "nic_arg",
]
