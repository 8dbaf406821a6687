"""``livelab artifacts resolve|fetch|releases|ls|prune``."""
from __future__ import annotations

import argparse
import json
import time

from .. import options
from ..artifacts import specs as _specs
from ..artifacts.model import Release
from ..artifacts.store import Store, check_prune_args
from ..errors import LivelabError
from ..vocab import FCOS_STREAMS, FLATCAR_CHANNELS, OSES, check_stream


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("artifacts", help="resolve, download and verify FCOS/Flatcar live artifacts")
    sub = p.add_subparsers(dest="artifacts_verb", metavar="SUBVERB")
    sub.required = True

    for name, helptext, func in (
            ("resolve", "print the artifacts of a release (kind, URL, signature, digest)", cmd_resolve),
            ("fetch", "download and verify artifacts into the cache; print local paths", cmd_fetch)):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("os", choices=OSES)
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--stream", help=f"FCOS stream: {', '.join(FCOS_STREAMS)} (default stable)")
        g.add_argument("--channel", help=f"Flatcar channel: {', '.join(FLATCAR_CHANNELS)} (default stable)")
        sp.add_argument("--arch", default="x86_64")
        sp.add_argument("--version", help="pin a release version instead of the latest of the stream/channel")
        sp.add_argument("--metadata", metavar="FILE_OR_URL",
                        help="stream JSON (fcos) / version.txt (flatcar) to use instead of downloading it")
        sp.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="stall time-out: at least 64 KiB must arrive in every SECONDS (default 30, "
                             "or $LIVELAB_HTTP_TIMEOUT)")
        sp.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="the most one file's download may take, retries included (default 3600, "
                             "or $LIVELAB_HTTP_DEADLINE)")
        sp.add_argument("--json", action="store_true", help="print JSON")
        shared = [o for o in options.ARTIFACT_OPTIONS if o != "insecure" or name == "fetch"]
        options.add_options(sp.add_argument, shared)
        if name == "fetch":
            sp.add_argument("--kinds", help="comma-separated kinds "
                                            "(fcos: kernel,initramfs,rootfs,iso; flatcar: kernel,initramfs)")
            sp.add_argument("--no-progress", action="store_true")
        sp.set_defaults(func=func)

    sp = sub.add_parser("releases", help="list the releases of a stream or channel, oldest first (what "
                                         "`livelab bisect` searches)")
    sp.add_argument("os", choices=OSES)
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--stream", help=f"FCOS stream: {', '.join(FCOS_STREAMS)} (default stable)")
    g.add_argument("--channel", help=f"Flatcar channel: {', '.join(FLATCAR_CHANNELS)} (default stable)")
    sp.add_argument("--arch", default="x86_64")
    sp.add_argument("--json", action="store_true", help="print a JSON list")
    options.add_options(sp.add_argument, ("mirror", "offline", "cache_dir"))
    sp.set_defaults(func=cmd_releases)

    sp = sub.add_parser("ls", help="list cached releases")
    options.add_options(sp.add_argument, ("cache_dir",))
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_ls)

    sp = sub.add_parser("prune", help="remove old cached releases and stale partial downloads "
                                      "(only files livelab wrote, in a cache livelab marked)")
    options.add_options(sp.add_argument, ("cache_dir",))
    sp.add_argument("--keep", type=int, metavar="N", help="keep the newest N versions per os/stream")
    sp.add_argument("--older-than", type=float, metavar="DAYS", help="remove versions not touched for DAYS days")
    sp.set_defaults(func=cmd_prune)


def _stream(args: argparse.Namespace) -> str:
    if args.os == "fcos" and args.channel:
        raise LivelabError("fcos takes --stream (stable, testing, next), not --channel")
    if args.os == "flatcar" and args.stream:
        raise LivelabError("flatcar takes --channel (stable, beta, alpha, lts), not --stream")
    return check_stream(args.os, args.stream or args.channel or "stable")


def _resolve(args: argparse.Namespace):
    from ..artifacts import resolve
    options.check_values(lambda name: getattr(args, name, None))
    mirror = None if args.mirror == "none" else args.mirror      # --mirror none: upstream
    return resolve(args.os, _stream(args), arch=args.arch, version=args.version, mirror=mirror,
                   metadata=args.metadata, cache_dir=args.cache_dir, offline=args.offline, timeout=args.timeout,
                   deadline=args.deadline)


def _spec(args: argparse.Namespace, rel: Release) -> str:
    return _specs.max_spec(rel.os, rel.version, args.ignition_spec_table, args.ignition_max_spec)


def cmd_resolve(args: argparse.Namespace) -> int:
    rel = _resolve(args)
    spec = _spec(args, rel)
    if args.keyring:
        from ..artifacts.verify import load_keyring
        load_keyring(args.keyring, Store.for_writing(args.cache_dir).root)      # fail early on an unusable keyring
    if args.json:
        d = rel.to_dict()
        d["ignition_max_spec"] = spec
        print(json.dumps(d, indent=2, sort_keys=True))
        return 0
    print(f"{rel.os} {rel.stream} {rel.version} {rel.arch}  (ignition max spec {spec}; from {rel.metadata_source})")
    for a in rel.artifacts.values():
        print(f"{a.kind:10} {a.url}")
        print(f"{'':10} signature {a.signature_url}")
        print(f"{'':10} digest    {', '.join(a.digest_strings()) or '(none published)'}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..artifacts import fetch
    rel = _resolve(args)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    files = fetch(rel, kinds=kinds, keyring=args.keyring, insecure=args.insecure, offline=args.offline,
                  cache_dir=args.cache_dir, progress=False if args.no_progress else None, timeout=args.timeout,
                  deadline=args.deadline)
    if args.json:
        print(json.dumps({"release": rel.to_dict(), "ignition_max_spec": _spec(args, rel),
                          "files": {k: v.to_dict() for k, v in files.items()}}, indent=2, sort_keys=True))
        return 0
    for k, f in files.items():
        how = "INSECURE (signature not checked)" if f.insecure else "signed by " + ",".join(f.verified_with)
        digests = " ".join(f"{a}:{h}" for a, h in sorted(f.digests.items()))
        print(f"{k:10} {f.path}\n{'':10} {digests}  {how}")
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    from ..artifacts import releases
    options.check_values(lambda name: getattr(args, name, None))
    mirror = None if args.mirror == "none" else args.mirror
    got = releases(args.os, _stream(args), arch=args.arch, mirror=mirror, cache_dir=args.cache_dir,
                   offline=args.offline)
    print(json.dumps(got) if args.json else "\n".join(got))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    store = Store.existing(args.cache_dir)
    groups = store.scan() if store else []
    if args.json:
        print(json.dumps(groups, indent=2))
        return 0
    if store is None:
        print(f"(no cache at {args.cache_dir or 'the default place'})")
    elif not groups:
        print(f"(cache {store.root} is empty)")
    for g in groups:
        when = time.strftime("%Y-%m-%d", time.localtime(g["mtime"])) if g["mtime"] else "-"
        kinds = ",".join(sorted(f["kind"] or "?" for f in g["files"])) or "-"
        extra = (" INSECURE" if g["insecure"] else "") + (f" partial:{len(g['partial'])}" if g["partial"] else "")
        print(f"{g['os']:8} {g['stream']:8} {g['version']:18} {g['size'] / 2**20:9.1f} MiB  {when}  {kinds}{extra}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    check_prune_args(args.keep, args.older_than)
    store = Store.existing(args.cache_dir)
    if store is None:
        raise LivelabError(f"no cache at {args.cache_dir or 'the default place'}: nothing removed")
    result = store.prune(keep=args.keep, older_than_days=args.older_than)
    for r in result.removed:
        print(f"removed {r}")
    for r in result.busy:
        print(f"kept {r}: a download into it is running")
    if result.kept:
        print(f"left alone {len(result.kept)} file(s) livelab did not write, e.g. {result.kept[0]}")
    if not result.removed:
        print("nothing to remove")
    return 0
