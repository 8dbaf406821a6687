"""bench (f) with --cases re-measures some cases: its files go to the work directory, and
bench/results keeps the last full run's (a partial run once overwrote them)."""
import json

import repo_scripts

bench = repo_scripts.load("bench/run.py")


def _fake_boots(monkeypatch, tmp_path):
    results = tmp_path / "results"
    monkeypatch.setattr(bench, "RESULTS", results)
    monkeypatch.setattr(bench, "_boot_sample", lambda checkout, case, run_dir, work, side: {
        "ssh_s": 10.0 if case[2] == "iso" else 20.0, "spans": {"ignition": 1.5}})
    return results


def test_a_partial_run_leaves_bench_results_alone(tmp_path, monkeypatch):
    results = _fake_boots(monkeypatch, tmp_path)
    work = tmp_path / "work"
    rec = bench.bench_boot_phases(work, 1, {}, None, only_cases=["fcos.stable.iso.bios.base"])
    assert not results.exists()
    assert json.loads((work / "boot_phases.json").read_text())["figures"] == rec["figures"]
    assert rec["figures"]["fcos.stable.iso.bios.base.after_s"] == 10.0 and rec["figures"]["boot_to_ssh_cut"] is None
    assert "fcos.stable.iso.bios.base" in (work / "boot_phases.md").read_text()


def test_a_full_run_writes_bench_results(tmp_path, monkeypatch):
    results = _fake_boots(monkeypatch, tmp_path)
    bench.bench_boot_phases(tmp_path / "work", 1, {}, None)
    saved = json.loads((results / "boot_phases.json").read_text())
    assert sorted(saved["samples"]["medians"]) == sorted(bench._case_id(c) for c in bench.BOOT_CASES)
    assert (results / "boot_phases.md").is_file()
