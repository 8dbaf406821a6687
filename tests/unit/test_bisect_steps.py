"""A bisect's steps over a fake release list and a fake probe: the bad end's reason as the reference, skips
(missing artifacts, another reason twice), flaky results tried once more, rounds of several jobs, bisect.json."""
import json
import threading
import time

from harness.bisect.search import BAD, GOOD, SKIP
from harness.bisect.steps import FAIL, MISSING, PASS, Bisection, Outcome, judge

REASON = "check failed: boot 1: core has passwordless sudo"
RELEASES = [f"v{i}" for i in range(1, 8)]          # v1 good ... v7 bad; v4 the first bad


class FakeProbe:
    """Outcomes by release and attempt: ``plan[release]`` is a list (one per attempt) of
    (result, reason); default: pass before FIRST_BAD, the reference failure from it on."""

    def __init__(self, plan=None, first_bad="v4"):
        self.plan = plan or {}
        self.first_bad = RELEASES.index(first_bad)
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, release, attempt):
        with self.lock:
            self.calls.append((release, attempt))
        planned = self.plan.get(release)
        if planned:
            result, reason = planned[min(attempt, len(planned)) - 1]
        elif RELEASES.index(release) >= self.first_bad:
            result, reason = FAIL, REASON
        else:
            result, reason = PASS, ""
        booted = result != MISSING
        return Outcome(release, result, reason=reason, triage="ok" if booted else "",
                       run_dir=f"/runs/{release}-try{attempt}" if booted else None, seconds=1.0)


def run(probe, releases=RELEASES, jobs=1, tmp_path=None):
    lines = []
    record = tmp_path / "bisect.json" if tmp_path else None
    report = Bisection(releases, probe, jobs, record, meta={"test_id": "fcos.testing.iso.bios.base"},
                       say=lines.append).run()
    return report, lines


def test_judge():
    assert judge(Outcome("v", PASS), REASON) == GOOD
    assert judge(Outcome("v", FAIL, reason=REASON), REASON) == BAD
    assert judge(Outcome("v", MISSING, reason="artifacts missing: iso"), REASON) == SKIP
    assert judge(Outcome("v", FAIL, reason="lost: kernel panic"), REASON) == "unclear"


def test_finds_the_first_bad_release_and_records_every_step(tmp_path):
    probe = FakeProbe()
    report, lines = run(probe, tmp_path=tmp_path)
    assert report.result.first_bad == "v4" and report.result.last_good == "v3"
    assert report.reference == REASON
    assert [c[0] for c in probe.calls] == ["v7", "v4", "v2", "v3"]
    assert report.boots == 4 <= 4                   # ⌈log2(7)⌉ + 1
    doc = json.loads((tmp_path / "bisect.json").read_text())
    assert doc["schema"] == "livelab.bisect/1" and doc["test_id"] == "fcos.testing.iso.bios.base"
    assert doc["result"] == {"first_bad": "v4", "boundary": ["v3", "v4"], "suspects": ["v4"]}
    assert [(s["release"], s["verdict"], s["run_dir"]) for s in doc["steps"]] == [
        ("v7", "bad", "/runs/v7-try1"), ("v4", "bad", "/runs/v4-try1"), ("v2", "good", "/runs/v2-try1"),
        ("v3", "good", "/runs/v3-try1")]
    assert doc["reference"] == REASON and doc["boots"] == 4
    assert all(s["triage"] == "ok" for s in doc["steps"])
    text = "\n".join(lines)
    assert f"step 1 (round 1): v7 bad: {REASON}" in text and "triage: ok" in text


def test_the_bad_end_that_passes_is_a_problem(tmp_path):
    probe = FakeProbe(plan={"v7": [(PASS, "")]})
    report, _ = run(probe, tmp_path=tmp_path)
    assert report.result is None and "passed: nothing to bisect" in report.problem
    assert probe.calls == [("v7", 1)]
    assert json.loads((tmp_path / "bisect.json").read_text())["problem"].startswith("the bad release v7 passed")


def test_missing_artifacts_are_skipped_without_a_boot():
    probe = FakeProbe(plan={"v4": [(MISSING, "artifacts missing: iso (HTTP 404)")]})
    report, _ = run(probe)
    # v4 skipped: the boundary is v3 good .. v5 bad, v4 a suspect
    assert report.result.first_bad is None and report.result.suspects == ["v4", "v5"]
    assert ("v4", 2) not in probe.calls
    assert report.boots == len(probe.calls) - 1            # the skipped release did not boot
    skipped = next(s for s in report.steps if s.release == "v4")
    assert skipped.verdict == SKIP and "artifacts missing" in skipped.outcome.reason


def test_a_flaky_failure_is_tried_once_more_and_the_retry_counts(tmp_path):
    # v4 is lost on its first try (another reason), then fails as the bad end did: bad, and flaky
    probe = FakeProbe(plan={"v4": [(FAIL, "lost: network never up"), (FAIL, REASON)],
                            "v2": [(FAIL, "failed: no result: pytest exited N"), (PASS, "")]})
    report, _ = run(probe, tmp_path=tmp_path)
    assert report.result.first_bad == "v4"
    assert ("v4", 2) in probe.calls and ("v2", 2) in probe.calls
    steps = [(s.release, s.attempt, s.verdict) for s in report.steps]
    assert ("v4", 1, "retry") in steps and ("v4", 2, "bad") in steps
    assert ("v2", 1, "retry") in steps and ("v2", 2, "good") in steps
    flaky = next(s for s in report.steps if s.release == "v4" and s.attempt == 2)
    assert flaky.note == "flaky: the first try failed (lost: network never up)"
    doc = json.loads((tmp_path / "bisect.json").read_text())
    assert [s["attempt"] for s in doc["steps"] if s["release"] == "v4"] == [1, 2]


def test_another_reason_twice_is_a_skip():
    probe = FakeProbe(plan={"v4": [(FAIL, "lost: kernel panic"), (FAIL, "lost: kernel panic")]}, first_bad="v3")
    report, _ = run(probe)
    # v4's verdict is unknown; v3 bad and v2 good settle it anyway
    assert report.result.first_bad == "v3"
    assert next(s for s in report.steps if s.release == "v4" and s.attempt == 2).verdict == SKIP


def test_the_bad_ends_reference_is_a_triage_reason_too():
    lost = "lost: Ignition failed"
    probe = FakeProbe(plan={r: [(FAIL, lost)] for r in RELEASES[4:]} | {"v4": [(FAIL, "lost: kernel panic")] * 2},
                      first_bad="v5")
    report, _ = run(probe)
    assert report.reference == lost
    # v4 lost for another reason twice: skipped, so v5 is not proven first
    assert report.result.first_bad is None and report.result.suspects == ["v4", "v5"]


def test_jobs_boot_a_round_at_once():
    starts = []

    class Slow(FakeProbe):
        def __call__(self, release, attempt):
            starts.append(time.monotonic())
            time.sleep(0.3)
            return super().__call__(release, attempt)

    probe = Slow(first_bad="v4")
    report, lines = run(probe, jobs=3)
    assert report.result.first_bad == "v4"
    first_round = next(line for line in lines if line.startswith("round 1:"))
    assert "v7" in first_round and first_round.count("v") >= 3
    # the three releases of the first round started together
    assert max(starts[:3]) - min(starts[:3]) < 0.25
    assert len([line for line in lines if line.startswith("round ")]) < 4
