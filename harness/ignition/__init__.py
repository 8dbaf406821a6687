"""Butane → Ignition translation, Ignition config validation, target checks and merging.

    from harness.ignition import (butane_to_ignition, validate, validate_or_raise,
                                  check_target, check_live_disks, merge, spec_for_variant)
"""
from .butane import Translation, butane_to_ignition, mount_unit, swap_unit, systemd_escape_path
from .dataurl import decode_data_url, make_data_url
from .livecheck import check_live_disks
from .merge import merge
from .specs import SPEC_TABLE, check_target, compare_specs, parse_spec, spec_for_variant, spec_of
from .validate import ValidationResult, structural_check, validate, validate_or_raise

__all__ = [
    "SPEC_TABLE",
    "Translation",
    "ValidationResult",
    "butane_to_ignition",
    "check_live_disks",
    "check_target",
    "compare_specs",
    "decode_data_url",
    "make_data_url",
    "merge",
    "mount_unit",
    "parse_spec",
    "spec_for_variant",
    "spec_of",
    "structural_check",
    "swap_unit",
    "systemd_escape_path",
    "validate",
    "validate_or_raise",
]
