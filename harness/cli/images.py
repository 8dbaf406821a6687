"""``livelab images build [--recipe images/build.py] [--force] [--out DIR] [--ignition-source FILE]``.

Builds the stand-in live OS.

The stand-in's recipe, ``images/build.py`` (standard library only, so it also runs with the system
python3 and from ``make images``), belongs to a livelab checkout, not to the installed package:
this verb runs it from ``./images/build.py`` or from ``--recipe PATH``, and says so clearly
anywhere else.  It maps the build's errors onto ``LivelabError``.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from ..errors import LivelabError

DEFAULT_RECIPE = Path("images") / "build.py"


def find_recipe(recipe: Path | None = None) -> Path:
    path = Path(recipe) if recipe else Path.cwd() / DEFAULT_RECIPE
    if not path.is_file():
        if recipe:
            raise LivelabError(f"image recipe {path} not found")
        raise LivelabError(f"the stand-in image recipe ({DEFAULT_RECIPE}) is part of a livelab checkout, not of the "
                           f"installed package: run this in a checkout, or pass --recipe PATH/images/build.py")
    return path.resolve()


def _load_build(recipe: Path):
    spec = importlib.util.spec_from_file_location("livelab_images_build", recipe)
    if spec is None or spec.loader is None:
        raise LivelabError(f"image recipe {recipe} cannot be loaded as Python")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _handle_build(args: argparse.Namespace) -> int:
    recipe = find_recipe(args.recipe)
    mod = _load_build(recipe)
    try:
        return mod.build(args.out, force=args.force, ignition_source=args.ignition_source,
                         ignition_url=args.ignition_url)
    except mod.BuildError as exc:
        raise LivelabError(f"images build: {exc}") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("images", help="build the stand-in live OS images and mirror tree")
    sub = p.add_subparsers(dest="images_verb", metavar="SUBVERB")
    sub.required = True
    b = sub.add_parser("build", help="build images/out (no-op when the recipe is unchanged)")
    b.add_argument("--force", action="store_true", help="rebuild even if the recipe is unchanged")
    b.add_argument("--out", type=Path, default=None, help="output directory (default: out/ beside the recipe)")
    b.add_argument("--ignition-source", default=None, metavar="FILE",
                   help="local Ignition source archive (default $LIVELAB_IGNITION_SOURCE; else downloaded)")
    b.add_argument("--ignition-url", default=None, metavar="URL",
                   help="where to download the Ignition source archive (default $LIVELAB_IGNITION_URL or upstream)")
    b.add_argument("--recipe", type=Path, default=None, metavar="PATH",
                   help=f"the recipe of a livelab checkout (default ./{DEFAULT_RECIPE})")
    b.set_defaults(func=_handle_build)
