"""The console-triage corpus (tests/data/triage/), replayed: logs the harness recorded from the
stand-in broken on purpose, and passing logs of every boot method and firmware.  Nothing boots."""

import pytest
import repo_scripts

from harness.triage.inputs import triage_path

corpus = repo_scripts.load("scripts/record-triage-corpus.py")

ENTRIES = corpus._load_manifest()


def test_the_corpus_has_failures_and_healthy_logs():
    expects = [e["expect"] for e in ENTRIES]
    assert expects.count("ok") >= 4, "healthy logs of the boot methods and firmware"
    assert len(set(expects) - {"ok"}) >= 6, "failures of several kinds"
    for e in ENTRIES:
        assert (corpus.CORPUS / e["file"]).stat().st_size < 64 * 1024, f"{e['file']}: an excerpt, kilobytes"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_replay_gives_the_recorded_verdict(entry):
    verdict = triage_path(corpus.CORPUS / entry["file"]).verdict
    if entry["expect"] == "ok":
        assert verdict.headline == "ok", verdict.summary()
        assert verdict.failure is None
    else:
        assert verdict.headline == f"lost: {entry['expect']}", verdict.summary()
        # the live console tap gave the same reason when the harness recorded it
        assert entry["live"] == entry["expect"]


def test_readme_table_is_the_corpus_replayed():
    assert corpus.readme_table(corpus.README.read_text()) == corpus.table(corpus.replay()), \
        "run scripts/record-triage-corpus.py --readme"
