"""Hypothesis profiles of the parser property tests (tests/unit/test_parsers_fuzz.py).

``HYPOTHESIS_PROFILE`` picks one (default ``ci``):

- ``ci``: the unit suite's; derandomized (the same examples every run, nothing stored), a fixed
  number of examples per property, sized so that all the properties together take well under a
  minute on a 2-core machine (CI_EXAMPLES);
- ``fuzz``: ``make fuzz``; random, many more examples per property (``HYPOTHESIS_FUZZ_EXAMPLES``,
  default 20000), failures kept in the example database (``runs/hypothesis``) so that the next
  run tries them first.

Imported by the property test modules (tests/unit/conftest.py belongs to the shared fixtures).
"""
from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# a busy machine (VMs booting beside the tests) makes generation slow: not the property's fault
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

# 700 examples each: the 17 properties took 31-41 s together (25 s of CPU) on the 2-core development
# machine with a VM test run beside them (load average 3); 800 took 43 s
CI_EXAMPLES = 700
FUZZ_EXAMPLES = int(os.environ.get("HYPOTHESIS_FUZZ_EXAMPLES", "20000"))

settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=CI_EXAMPLES, deadline=None, print_blob=True,
    suppress_health_check=_RELAXED)
settings.register_profile(
    "fuzz", derandomize=False, max_examples=FUZZ_EXAMPLES, deadline=None, print_blob=True,
    suppress_health_check=_RELAXED,
    database=DirectoryBasedExampleDatabase(str(Path(__file__).resolve().parents[2] / "runs" / "hypothesis")))

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
