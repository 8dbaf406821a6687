"""``python -m harness.cli ...`` is ``livelab ...``."""
import sys

from . import main

sys.exit(main())
