"""Shared options are defined once (harness/options.py) and mean the same in every front-end."""
import argparse

from harness import options
from harness.cli import build_parser
from harness.pytest_plugin import pytest_addoption


class _Group:
    def __init__(self):
        self.flags = {}

    def addoption(self, *flags, **kwargs):
        for f in flags:
            self.flags[f] = kwargs

    def getgroup(self, *a, **k):
        return self

    def addini(self, *a, **k):
        pass


def _subparser(argv):
    parser = build_parser()
    actions = {}
    sub = parser
    for word in argv:
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    for a in sub._actions:
        for f in a.option_strings:
            actions[f] = a
    return actions


def test_every_front_end_takes_the_shared_definition():
    pytest_opts = _Group()
    pytest_addoption(pytest_opts)
    fronts = {"pytest": {f: kw.get("help") for f, kw in pytest_opts.flags.items()}}
    for argv in (["boot"], ["check"], ["min-ram"], ["artifacts", "fetch"], ["matrix", "fcos"]):
        fronts[" ".join(argv)] = {f: a.help for f, a in _subparser(argv).items()}
    for name, opt in options.OPTIONS.items():
        flag = opt.flags[0]
        helps = {front: flags[flag] for front, flags in fronts.items() if flag in flags}
        assert helps, name
        assert set(helps.values()) == {opt.kwargs["help"]}, (name, helps)
    assert "--mirror" in fronts["boot"] and "--mirror" in fronts["pytest"] and "--mirror" in fronts["matrix fcos"]


def test_lab_options_from_any_front_end(tmp_path):
    (tmp_path / "k.gpg").write_bytes(b"")
    (tmp_path / "m").mkdir()
    args = argparse.Namespace(mirror="none", keyring=str(tmp_path / "k.gpg"), insecure=False, offline=True,
                              cache_dir=None, accel="tcg", extend_timeout=50.0, ignition_spec_table=None,
                              ignition_max_spec=None, below_minimum=True, backend="qemu", libvirt_uri=None)
    o = options.lab_options(lambda n: getattr(args, n, None), cpus=1)
    assert o.mirror is None and o.keyring == str(tmp_path / "k.gpg") and o.offline and o.accel == "tcg"
    assert o.extend_timeout == 50.0 and o.below_minimum and o.cpus == 1
    o = options.lab_options(lambda n: None, mirror=str(tmp_path / "m"), keyring=None)
    assert o.mirror == str(tmp_path / "m") and o.keyring is None and o.accel == "auto"
