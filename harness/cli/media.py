"""``livelab iso customize|show|reset`` and ``livelab pxe ignition-wrap``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..atomic import check_output_path
from ..errors import LivelabError


def _read_file(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise LivelabError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise LivelabError(f"{what} is a directory: {path}") from None
    except OSError as exc:
        raise LivelabError(f"cannot read {what} {path}: {exc.strerror}") from None


def _cmd_iso_customize(args: argparse.Namespace) -> int:
    from ..boot.iso import LiveISO, load_ignition

    if args.output is not None:
        check_output_path(args.output)   # before any work: a bad -o is the first thing said
    configs = []
    for path in args.live_ignition or ():
        data = _read_file(path, "Ignition config")
        load_ignition(data, path)
        configs.append(data)
    if not configs and not (args.live_karg_append or args.live_karg_delete or args.live_karg_replace):
        raise LivelabError("iso customize: nothing to do (give --live-ignition and/or --live-karg-*)")
    out = LiveISO.customize(
        args.iso, args.output,
        ignition=configs or None,
        karg_append=args.live_karg_append or (),
        karg_delete=args.live_karg_delete or (),
        karg_replace=args.live_karg_replace or (),
        force=args.force,
    )
    print(out)
    return 0


def _cmd_iso_show(args: argparse.Namespace) -> int:
    from ..boot.iso import LiveISO

    print(LiveISO(args.iso).describe())
    return 0


def _cmd_iso_reset(args: argparse.Namespace) -> int:
    from ..boot.iso import LiveISO

    print(LiveISO.reset(args.iso, args.output))
    return 0


def _cmd_pxe_ignition_wrap(args: argparse.Namespace) -> int:
    from ..boot.iso import ignition_wrap

    check_output_path(args.output)
    configs = [_read_file(p, "Ignition config") for p in args.ignition]
    ignition_wrap(configs, args.output)
    print(args.output)
    return 0


def register_iso(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    iso = sub.add_parser("iso", help="customize a CoreOS live ISO (Ignition / kernel-argument embed areas)")
    iso_sub = iso.add_subparsers(dest="iso_verb", metavar="SUBVERB")
    iso_sub.required = True

    c = iso_sub.add_parser("customize", help="embed a live Ignition config and/or modify live kernel arguments")
    c.add_argument("--live-ignition", action="append", metavar="FILE",
                   help="Ignition config for the live system (repeatable: configs are merged)")
    c.add_argument("--live-karg-append", action="append", metavar="KARG", help="append a kernel argument")
    c.add_argument("--live-karg-delete", action="append", metavar="KARG",
                   help="delete a kernel argument (KEY or KEY=VALUE)")
    c.add_argument("--live-karg-replace", action="append", metavar="KEY=OLD=NEW",
                   help="replace KEY=OLD with KEY=NEW")
    c.add_argument("-o", "--output", metavar="OUT", help="write a new ISO (default: modify ISO in place)")
    c.add_argument("-f", "--force", action="store_true", help="overwrite existing customizations")
    c.add_argument("iso", metavar="ISO")
    c.set_defaults(func=_cmd_iso_customize)

    s = iso_sub.add_parser("show", help="print the embedded Ignition config and the kernel arguments")
    s.add_argument("iso", metavar="ISO")
    s.set_defaults(func=_cmd_iso_show)

    r = iso_sub.add_parser("reset", help="remove the Ignition config and restore default kernel arguments")
    r.add_argument("-o", "--output", metavar="OUT", help="write a new ISO (default: modify ISO in place)")
    r.add_argument("iso", metavar="ISO")
    r.set_defaults(func=_cmd_iso_reset)
    return iso


def register_pxe(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Create the ``pxe`` verb; returns its sub-verb subparsers so others can add to it."""
    pxe = sub.add_parser("pxe", help="PXE boot helpers")
    pxe_sub = pxe.add_subparsers(dest="pxe_verb", metavar="SUBVERB")
    pxe_sub.required = True
    w = pxe_sub.add_parser("ignition-wrap",
                           help="wrap an Ignition config in an xz/newc initrd (config.ign at the root)")
    w.add_argument("-i", "--ignition", action="append", required=True, metavar="FILE",
                   help="Ignition config (repeatable: configs are merged)")
    w.add_argument("-o", "--output", required=True, metavar="OUT", help="output initrd file")
    w.set_defaults(func=_cmd_pxe_ignition_wrap)
    return pxe_sub


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    register_iso(subparsers)
    register_pxe(subparsers)
