"""This checkout's scripts that are no package (``images/build.py``, ``images/ignition_src.py``,
``scripts/record-triage-corpus.py``), loaded by path for the unit tests: ``load("images/build.py")``.
Each is loaded once per test session and registered in ``sys.modules`` (dataclasses look their
module up there)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load(relative: str) -> ModuleType:
    name = "livelab_repo_" + relative.replace("/", "_").replace("-", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
