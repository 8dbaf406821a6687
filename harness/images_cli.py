"""``livelab images build [--force] [--out DIR]``: build the stand-in live OS images.

The build itself lives in ``images/build.py`` (standard library only, so it also runs with the
system python3 and from ``make images``); this module loads it by path and maps its errors
onto ``LivelabError``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .errors import LivelabError

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "images" / "build.py"


def _load_build():
    if not BUILD_SCRIPT.exists():
        raise LivelabError(f"image recipe not found: {BUILD_SCRIPT}")
    spec = importlib.util.spec_from_file_location("livelab_images_build", BUILD_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def default_out() -> Path:
    """Where ``images build`` puts its output by default (images/out)."""
    return BUILD_SCRIPT.parent / "out"


def _handle_build(args) -> int:
    mod = _load_build()
    try:
        return mod.build(args.out, force=args.force)
    except mod.BuildError as exc:
        raise LivelabError(f"images build: {exc}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser("images", help="build the stand-in live OS images and mirror tree")
    sub = p.add_subparsers(dest="images_verb", metavar="SUBVERB")
    sub.required = True
    b = sub.add_parser("build", help="build images/out (no-op when the recipe is unchanged)")
    b.add_argument("--force", action="store_true", help="rebuild even if the recipe is unchanged")
    b.add_argument("--out", type=Path, default=None, help="output directory (default images/out)")
    b.set_defaults(func=_handle_build)
