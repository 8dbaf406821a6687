"""livelab's pytest plugin (registered by the ``pytest11`` entry point): options, fixtures, scenarios.

Thin glue over plain classes (``LiveBoot``, ``Machine``, ``Console``, ``SSH``, ``Scenario``).
Defaults for the mirror, keyring and Ignition spec table can be set as ini options
(``livelab_mirror`` ...), which is how this repository points its own tests at the stand-in
mirror built by ``make images``.

- Scenario files (``*.yaml`` next to their Butane) in the directories of ini ``livelab_scenarios``
  (relative to the ini file) and ``--scenario-dir DIR`` are collected as cases named by their
  configuration: ``scenarios/base.yaml::fcos.stable.pxe.bios.base``.
- ``--os``, ``--stream``, ``--channel`` and ``--firmware`` keep the cases of that configuration:
  scenario cases, tests whose id names one, and tests marked ``livelab(os=..., stream=...)``.
- Workers on other hosts (``--tx ssh=...``, ``harness.hosts``): each boots on its own host, under
  its own run directory; its reports carry its host's name (property ``livelab_host``) and each
  test's per-VM files (``harness.attachments``), which the controller writes into its run directory.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import attachments, durations, hosts, options, run_media, runtime, selection
from . import scenario as sc
from .errors import LivelabError
from .lab import BootRequest, LabOptions, LiveBoot
from .matrix import HOST_PROPERTY, RUN_DIR_PROPERTY
from .progress import logs as progress_logs
from .progress import matrix as progress_matrix
from .ssh import SessionKey
from .triage.inputs import triage_run_dir
from .vm.accel import Accel
from .vocab import largest_memory_minimum

SESSION = pytest.StashKey["LivelabSession"]()
SELECTION = pytest.StashKey["selection.Selection"]()
SCENARIO_DIRS = pytest.StashKey[list[Path]]()
ARTIFACT_FILES = ("console.log", "console-timed.log", "qemu-cmdline.txt", "config.ign", "vm.json", "timings.json",
                  "kargs.txt", "checks.log")
# the run directories of a test's VMs, set on its pytest item (any item: not an attribute pytest declares)
RUN_DIRS_ATTR = "livelab_run_dirs"
FAILED_ATTR = "livelab_failed"       # set on an item when one of its reports failed
# what the controller tells each xdist worker (workerinput): whether it runs on another machine, how many
# workers share that machine (for --vm-cpus auto there), and the run's stamp (its runs/<stamp> there)
WORKER_REMOTE = "livelab_remote"
WORKER_HOST_WORKERS = "livelab_host_workers"
WORKER_STAMP = "livelab_run_stamp"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("livelab", "livelab: live FCOS / Flatcar boots")
    g.addoption("--os", action="append", default=None, metavar="OS",
                help="keep only cases of these OSes (fcos, flatcar; repeat or comma list)")
    g.addoption("--stream", action="append", default=None, metavar="STREAM",
                help="keep only FCOS cases of these streams (stable, testing, next), and run scenarios that "
                     "name no stream on them; without --channel, Flatcar cases are left out")
    g.addoption("--channel", action="append", default=None, metavar="CHANNEL",
                help="keep only Flatcar cases of these channels (stable, beta, alpha, lts), and run scenarios "
                     "that name no channel on them; without --stream, FCOS cases are left out")
    g.addoption("--firmware", action="append", default=None, metavar="FW",
                help="keep only cases of this firmware (bios, uefi, uefi-secure)")
    g.addoption("--scenario-dir", action="append", default=None, metavar="DIR",
                help="collect the scenario YAML files of DIR (besides ini livelab_scenarios)")
    options.add_options(g.addoption, options.ARTIFACT_OPTIONS + options.VM_OPTIONS + options.CONFIG_OPTIONS
                        + ("vm_cpus",))
    g.addoption("--release", default=None, metavar="VERSION",
                help="boot this release (an FCOS or Flatcar version of the case's stream or channel) instead of "
                     "the current one: a case re-run on an older release, as `livelab bisect` does; a test whose "
                     "BootRequest pins a version keeps its own")
    g.addoption("--keep-vms", action="store_true", help="leave VMs running after their test (for debugging); "
                                                        "their boot media and disks stay too")
    g.addoption("--keep-media", action="store_true",
                help="keep a passing test's boot media and disk images (live.iso, disk-*.qcow2) in its run "
                     "directory; by default only a failing test's stay (harness.run_media)")
    g.addoption("--real", action="store_true",
                help="run tests marked `real` against the real FCOS/Flatcar servers (needs the internet)")
    g.addoption("--durations-json", default=None, metavar="PATH",
                help="add each test's wall time (setup + call + teardown) and whether it ran beside other "
                     "xdist workers to PATH (JSON, merged with what PATH holds)")
    g.addoption("--run-dir", default=None, help="where per-VM artifacts go (default: runs/<timestamp>)")
    for name, help_ in (("livelab_mirror", "default --mirror"), ("livelab_keyring", "default --keyring"),
                        ("livelab_ignition_spec_table", "default --ignition-spec-table"),
                        ("livelab_ignition_validate", "default --ignition-validate (relative to the ini file; "
                                                      "ignored when that file is not there yet)")):
        parser.addini(name, help_, default=None)
    parser.addini("livelab_scenarios", "directories of scenario YAML files (relative to the ini file)",
                  type="paths", default=[])


def pytest_configure(config: pytest.Config) -> None:
    for line in ("ci: end-to-end boot in CI's budget",
                 "serial: needs the whole host or measures time; make test runs these alone, after the parallel part",
                 "e2e: boots VMs",
                 "real: needs real FCOS/Flatcar artifacts (skips with a reason when unreachable)",
                 "slow: long end-to-end test (make test-e2e)",
                 "livelab(os, stream, method, firmware): the configuration a test boots "
                 "(for --os/--stream/--channel/--firmware)"):
        config.addinivalue_line("markers", line)
    if remote_worker(config):
        # this host's share: the workers on it (--vm-cpus auto), and the run's stamp for its runs/<stamp>
        given = getattr(config, "workerinput")  # noqa: B009 -- set by xdist on its workers only
        os.environ[runtime.HOST_WORKERS_ENV] = str(given.get(WORKER_HOST_WORKERS) or 1)
        os.environ.setdefault("LIVELAB_RUN_STAMP", given[WORKER_STAMP])
    try:   # bad option values: one line, before anything is collected or booted
        runtime.parse_vm_cpus(config.getoption("vm_cpus"))
        config.stash[SELECTION] = selection.Selection.from_options(
            config.getoption("--os"), config.getoption("--stream"), config.getoption("--channel"),
            config.getoption("--firmware"))
        # the controller of workers on other hosts collects nothing: scenario directories are theirs
        config.stash[SCENARIO_DIRS] = [] if remote_controller(config) else _scenario_dirs(config)
        # the values given on the command line; the ini defaults (the stand-in mirror of a checkout
        # that has not built it yet, say) are checked when a test first needs them
        options.check_values(lambda name: config.getoption(name, default=None))
    except LivelabError as exc:
        raise pytest.UsageError(exc.one_line()) from None
    _collect_scenario_dirs_too(config)
    progress_logs.install(config)          # each boot's phases as log lines with -v / --log-cli-level=INFO
    if not hasattr(config, "workerinput"):
        progress_matrix.record_events(config)   # a `livelab matrix` run's cells as they start and end
        # one run directory for the controller and every xdist worker it starts (they inherit it)
        os.environ.setdefault("LIVELAB_RUN_STAMP", time.strftime("%Y%m%d-%H%M%S"))
        if config.getoption("--durations-json"):
            config.pluginmanager.register(durations.DurationsRecorder(config), "livelab-durations")
        # the per-VM files remote workers attach to their reports, written into this run directory
        config.pluginmanager.register(AttachmentReceiver(config), "livelab-attachments")


def remote_worker(config: pytest.Config) -> bool:
    """This process is an xdist worker on another machine than its controller."""
    return bool(getattr(config, "workerinput", {}).get(WORKER_REMOTE))


def remote_controller(config: pytest.Config) -> bool:
    """This process is the xdist controller of a run with workers on other machines (``--tx ssh=...``)."""
    if hasattr(config, "workerinput") or config.getoption("dist", "no") == "no":
        return False
    try:
        return hosts.remote_tx(config.getoption("tx", None))
    except LivelabError:
        return False        # xdist itself says what is wrong with a --tx value


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller, for each worker it starts (``node``: its ``WorkerController``)."""
    spec = node.gateway.spec
    node.workerinput[WORKER_REMOTE] = hosts.is_remote(spec)
    node.workerinput[WORKER_STAMP] = os.environ["LIVELAB_RUN_STAMP"]
    node.workerinput[WORKER_HOST_WORKERS] = sum(hosts.address(s) == hosts.address(spec)
                                                for s in node.nodemanager.specs)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: as many workers as VMs fit on this host at once (cores, and memory for the
    largest documented minimum), not one per core regardless of memory."""
    return runtime.plan_workers(largest_memory_minimum())


def _scenario_dirs(config: pytest.Config) -> list[Path]:
    """ini livelab_scenarios (relative to the ini file) + --scenario-dir (relative to the invocation)."""
    dirs = [Path(p) for p in config.getini("livelab_scenarios")]
    dirs += [Path(config.invocation_params.dir) / d for d in config.getoption("--scenario-dir") or []]
    return sc.scenario_dirs(dirs, where=" (livelab_scenarios / --scenario-dir)")


def _collect_scenario_dirs_too(config: pytest.Config) -> None:
    """A run that names no paths (testpaths, or the current directory) collects the scenario
    directories as well; ``pytest tests/e2e/test_live.py`` collects just that file."""
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    roots = [Path(config.invocation_params.dir, a.split("::")[0]).resolve() for a in config.args]
    for d in config.stash[SCENARIO_DIRS]:
        if not any(d == r or r in d.parents for r in roots):
            config.args.append(str(d))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.suffix in (".yaml", ".yml") and file_path.parent.resolve() in parent.config.stash[SCENARIO_DIRS]:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """One scenario YAML file: a case per configuration it applies to (``fcos.stable.pxe.bios.<name>[.4k]``)."""

    def collect(self) -> Iterator[ScenarioItem]:
        try:
            scen = sc.load(self.path)
        except LivelabError as exc:
            raise self.CollectError(f"livelab {exc.one_line()}") from None   # "livelab scenario x.yaml: ..."
        chosen = self.config.stash[SELECTION]
        for case in scen.cases(streams=chosen.streams_for_unpinned()):
            item = ScenarioItem.from_parent(self, name=case.id, scenario=scen, case=case)
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.livelab(os=case.os, stream=case.stream, method=case.method,
                                                firmware=case.firmware))
            if case.config in scen.ci:
                item.add_marker(pytest.mark.ci)
            if scen.slow:
                item.add_marker(pytest.mark.slow)
            yield item


class ScenarioItem(pytest.Item):
    """One scenario on one configuration: boots, checks, the evidence in ``checks.log``."""

    def __init__(self, *, scenario: sc.Scenario, case: sc.Case, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.case = case

    def runtest(self) -> None:
        factory = VMFactory(livelab_session(self.config), self)
        try:
            for line in sc.run_case(self.scenario, self.case, factory):
                print(line)
        finally:
            factory.close()

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, (AssertionError, LivelabError)):
            return f"{self.name}: {excinfo.typename}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, f"scenario {self.scenario.name}: {self.name}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.stash[SELECTION]
    if chosen.active:
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            (keep if chosen.keeps(selection.configuration_of(item)) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    if config.getoption("--real"):
        return
    skip = pytest.mark.skip(reason="opt-in: tests marked `real` reach the real FCOS/Flatcar servers; run with --real")
    for item in items:
        if "real" in item.keywords:
            item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    # VMs of dead runs are killed; VMs of live runs (other terminals, other workers) are kept
    runtime.reap_stale(log=lambda msg: print(msg))


def _ini_path(config: pytest.Config, name: str):
    value = config.getini(name)
    if not value:
        return None
    if re.match(r"^[a-z]+://", value):
        return value
    return str((Path(config.rootpath) / value).resolve())


def session_options(config: pytest.Config) -> LabOptions:
    """The run's options from the command line and the ini file, checked (one line on a bad value)."""
    opt = config.getoption
    mirror = opt("--mirror") or _ini_path(config, "livelab_mirror")
    if mirror == "none":
        mirror = None
    if mirror and not opt("--mirror") and "://" not in mirror and not Path(mirror).is_dir():
        raise LivelabError(f"livelab_mirror of {config.inipath}: {mirror} is not there (build it, e.g. "
                           "`make images` for the stand-in, or pass --mirror)")
    # the ini defaults (mirror, and the keyring and spec table that go with it) apply to a mirror only
    return options.lab_options(
        opt, cpus=runtime.parse_vm_cpus(opt("vm_cpus")), mirror=mirror,
        keyring=None if opt("keyring") or not mirror else _ini_path(config, "livelab_keyring"),
        ignition_spec_table=None if opt("ignition_spec_table") or not mirror else _ini_path(
            config, "livelab_ignition_spec_table"),
        ignition_validate=opt("ignition_validate") or _ini_validator(config))


def _ini_validator(config: pytest.Config) -> str | None:
    """ini livelab_ignition_validate when that file is there (a checkout that has not built the
    stand-in yet falls back to PATH's validator)."""
    path = _ini_path(config, "livelab_ignition_validate")
    return path if path and Path(path).is_file() else None


def run_root(config: pytest.Config) -> Path:
    """This process's run directory (created): ``--run-dir``, else ``$LIVELAB_RUN_DIR``, else
    ``<rootdir>/runs/<stamp>``.  A worker on another host leaves out ``--run-dir``: that path is the
    controller's, where the files its reports carry are written."""
    root = None if remote_worker(config) else config.getoption("--run-dir")
    root = root or os.environ.get("LIVELAB_RUN_DIR")
    if not root:
        stamp = os.environ.setdefault("LIVELAB_RUN_STAMP", time.strftime("%Y%m%d-%H%M%S"))
        root = str(Path(config.rootpath) / "runs" / stamp)
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


class LivelabSession:
    """Session-wide state: options, accelerator, SSH key, run directory."""

    def __init__(self, config: pytest.Config):
        opt = config.getoption
        self.options = session_options(config)
        self.run_root = run_root(config)
        self.keep_vms = opt("--keep-vms")
        self.keep_media = opt("--keep-media") or self.keep_vms
        self.release: str | None = opt("--release")
        self._key: SessionKey | None = None
        self._accel: Accel | None = None

    @property
    def ssh_key(self) -> SessionKey:
        if self._key is None:
            self._key = SessionKey(self.run_root / "ssh")
        return self._key

    @property
    def accel(self) -> Accel:
        if self._accel is None:
            from .vm.accel import choose
            self._accel = choose(self.options.accel)
        return self._accel

    def run_dir_for(self, nodeid: str, vm: str = "") -> Path:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1])
        path = self.run_root / name
        if vm:
            path = path / vm
        path.mkdir(parents=True, exist_ok=True)
        return path


def livelab_session(config: pytest.Config) -> LivelabSession:
    """The one LivelabSession of this pytest process (fixtures and scenario items share it)."""
    if SESSION not in config.stash:
        config.stash[SESSION] = LivelabSession(config)
    return config.stash[SESSION]


@pytest.fixture(scope="session")
def livelab(pytestconfig: pytest.Config) -> LivelabSession:
    return livelab_session(pytestconfig)


class VMFactory:
    """Boots live VMs for one test (``node``); closes them (or keeps them with --keep-vms) at its end."""

    def __init__(self, session: LivelabSession, node: pytest.Item):
        self.session = session
        self.node = node
        self.boots: list[LiveBoot] = []

    def __call__(self, boot: BootRequest, start: bool = True, name: str = "", **option_changes) -> LiveBoot:
        name = name or f"vm{len(self.boots) + 1}"
        run_dir = self.session.run_dir_for(self.node.nodeid, name if self.boots or name != "vm1" else "")
        options = dataclasses.replace(self.session.options, **option_changes)
        if self.session.release and boot.version is None:
            boot = dataclasses.replace(boot, version=self.session.release)
        lb = LiveBoot(boot, options, run_dir, ssh_key=self.session.ssh_key,
                      accel=self.session.accel)
        self.boots.append(lb)
        setattr(self.node, RUN_DIRS_ATTR, [b.run_dir for b in self.boots])
        if start:
            lb.start()
        return lb

    def close(self) -> None:
        for lb in self.boots:
            m = lb.machine
            if self.session.keep_vms and m is not None and m.proc is not None and m.running:
                print(f"livelab: keeping {lb.name} (pid {m.proc.pid}), SSH port {m.spec.ssh_port}")
                continue
            lb.close()


@pytest.fixture
def live_vm(livelab: LivelabSession, request: pytest.FixtureRequest) -> Iterator[VMFactory]:
    """Factory: ``vm = live_vm(BootRequest(...))`` boots a VM; all are closed after the test."""
    factory = VMFactory(livelab, request.node)
    yield factory
    factory.close()


def _add_property(item: pytest.Item, report: pytest.TestReport, name: str, value: str) -> None:
    # junitxml writes the teardown report's properties, a copy of the item's made as it is created
    if (name, value) not in item.user_properties:
        item.user_properties.append((name, value))
        report.user_properties.append((name, value))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    remote = remote_worker(item.config)
    if remote and report.when == "setup":
        _add_property(item, report, HOST_PROPERTY, hosts.host_name())
    if report.failed:
        setattr(item, FAILED_ATTR, True)
    dirs = getattr(item, RUN_DIRS_ATTR, None)
    if not dirs:
        return
    if report.when == "teardown":
        # the VMs are closed: a passing test's media go, and (remote) its files go home with this
        # report (written by AttachmentReceiver)
        session = livelab_session(item.config)
        if not getattr(item, FAILED_ATTR, False) and not session.keep_media:
            for d in dirs:
                run_media.shed(Path(d), "after the test passed (pytest --keep-media keeps them)")
        if remote:
            setattr(report, attachments.REPORT_ATTR, attachments.pack(session.run_root, dirs, hosts.host_name()))
    if report.when != "call":
        return
    for d in dirs:
        _add_property(item, report, RUN_DIR_PROPERTY, str(d))
    if not report.failed:
        return
    verdicts = []
    for d in dirs:
        triaged = triage_run_dir(d)
        verdicts.append(f"{Path(d).name}: console: {triaged.verdict.headline if triaged else 'no console log'}")
        if triaged is not None:
            report.sections.append((f"livelab {Path(d).name}/triage", triaged.summary()))
        for fname in ARTIFACT_FILES:
            path = Path(d) / fname
            if not path.exists():
                continue
            text = path.read_text(errors="replace")
            if fname == "console.log":
                text = "\n".join(text.splitlines()[-80:])
            report.sections.append((f"livelab {Path(d).name}/{fname}", text[-20000:]))
    # the failure again, last: a log cut to its tail (a CI system's excerpt) still says why
    report.sections.append(("livelab: why it failed", failure_recap(report, verdicts)))


def failure_recap(report: pytest.TestReport, verdicts: list[str]) -> str:
    """The error's first lines, then each VM's console verdict: the end of a failure report."""
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr)
    lines = message.strip().splitlines() or ["(no message)"]
    return "\n".join([f"error: {lines[0][:500]}", *(f"       {line[:500]}" for line in lines[1:3]), *verdicts])


class AttachmentReceiver:
    """pytest plugin for the controller: writes the per-VM files a remote worker's teardown report
    carries into this run directory, and points the report's ``livelab_run_dir`` properties (what
    junitxml writes, what ``livelab matrix`` reads) at them.  It runs before any other plugin sees
    the report, and drops the files' data from it once written."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = report.__dict__.pop(attachments.REPORT_ATTR, None)
        if payload is None:
            return
        try:
            here = attachments.unpack(payload, run_root(self.config))
        except LivelabError as exc:
            report.sections.append(("livelab attachments", exc.one_line()))
            return
        report.user_properties = [
            (name, str(here[value]) if name == RUN_DIR_PROPERTY and value in here else value)
            for name, value in report.user_properties]
