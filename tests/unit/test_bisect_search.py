"""The search of `livelab bisect` over fake release lists: midpoint order, skips, several jobs a round, the
boot bound (⌈log2(n)⌉ + 1 without skips)."""
import math

import hypothesis_profiles  # noqa: F401 -- registers and loads the profile
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bisect.search import BAD, GOOD, SKIP, Search


def releases(n: int) -> list[str]:
    return [f"r{i:03d}" for i in range(n)]


def drive(search: Search, verdict_of) -> list[list[str]]:
    """Run the search to its end, each release judged by ``verdict_of(index)``; the rounds it tried."""
    rounds = []
    while not search.done:
        batch = search.next_round()
        assert batch, "a search that is not done proposes something"
        assert len(batch) <= search.jobs
        for r in batch:
            assert search.verdict(r) is None, f"{r} tried twice"
            search.record(r, verdict_of(search.index(r)))
        rounds.append(batch)
    return rounds


def test_the_bad_end_first_then_the_middle():
    s = Search(releases(6))
    assert s.next_round() == ["r005"]
    s.record("r005", BAD)
    # 0 good, 5 bad: 1..4 untested; the middle of (0, 5) is 2.5, the earlier of 2 and 3
    assert s.next_round() == ["r002"]
    s.record("r002", GOOD)
    assert s.next_round() == ["r003"]        # (2, 5): middle 3.5, 3 and 4 as near: the earlier
    s.record("r003", BAD)
    assert s.done and s.result().first_bad == "r003"


def test_midpoint_search_names_the_first_bad_release():
    s = Search(releases(6))
    rounds = drive(s, lambda i: BAD if i >= 3 else GOOD)
    r = s.result()
    assert r.first_bad == "r003" and r.last_good == "r002" and r.suspects == ["r003"]
    assert [b for rnd in rounds for b in rnd] == ["r005", "r002", "r003"]
    assert sum(map(len, rounds)) <= math.ceil(math.log2(6)) + 1


def test_adjacent_good_and_bad_take_one_boot():
    s = Search(["good", "bad"])
    assert s.max_boots() == 1
    drive(s, lambda i: BAD)
    assert s.result().first_bad == "bad"


def test_a_bad_end_that_passes_ends_the_search():
    s = Search(releases(5))
    s.record("r004", GOOD)
    assert s.done and s.next_round() == []


def test_a_skip_next_to_the_boundary_leaves_suspects():
    s = Search(releases(6))
    drive(s, lambda i: SKIP if i == 2 else (BAD if i >= 3 else GOOD))
    r = s.result()
    assert r.first_bad is None
    assert r.last_good == "r001" and r.first_bad_seen == "r003" and r.suspects == ["r002", "r003"]


def test_a_skip_away_from_the_boundary_costs_one_more_try():
    s = Search(releases(9))
    rounds = drive(s, lambda i: SKIP if i == 4 else (BAD if i >= 6 else GOOD))
    flat = [b for rnd in rounds for b in rnd]
    assert flat[:2] == ["r008", "r004"]
    assert flat[2] in ("r003", "r005")      # the untested release nearest the middle instead
    assert s.result().first_bad == "r006"


def test_jobs_cut_the_range_into_equal_parts():
    s = Search(releases(13), jobs=3)
    first = s.next_round()
    assert first[0] == "r012" or "r012" in first        # the bad end is in the first round
    assert len(first) == 3
    s.record("r012", BAD)
    for r in first:
        if r != "r012":
            s.record(r, GOOD if s.index(r) < 7 else BAD)
    second = s.next_round()
    assert len(second) <= 3 and all(s.verdict(r) is None for r in second)


def test_jobs_try_every_untested_release_when_they_outnumber_them():
    s = Search(releases(4), jobs=5)
    assert sorted(s.next_round()) == ["r001", "r002", "r003"]


def test_bad_input():
    with pytest.raises(ValueError):
        Search(["only"])
    with pytest.raises(ValueError):
        Search(["a", "a"])
    with pytest.raises(ValueError):
        Search(["a", "b"], jobs=0)
    s = Search(["a", "b", "c"])
    with pytest.raises(ValueError):
        s.record("a", BAD)                  # the good end is given
    with pytest.raises(ValueError):
        s.record("b", "maybe")


@given(n=st.integers(2, 300), data=st.data())
def test_property_first_bad_within_log2_plus_one_boots(n, data):
    """Without skips: the first bad release, in at most ⌈log2(n)⌉ + 1 boots (the bad end's included)."""
    k = data.draw(st.integers(1, n - 1), label="first bad")
    s = Search(releases(n))
    bound = s.max_boots()
    rounds = drive(s, lambda i: BAD if i >= k else GOOD)
    boots = sum(map(len, rounds))
    assert s.result().first_bad == f"r{k:03d}"
    assert boots <= bound <= math.ceil(math.log2(n)) + 1


@given(n=st.integers(2, 120), jobs=st.integers(2, 6), data=st.data())
def test_property_jobs_find_the_same_release(n, jobs, data):
    k = data.draw(st.integers(1, n - 1), label="first bad")
    s = Search(releases(n), jobs=jobs)
    rounds = drive(s, lambda i: BAD if i >= k else GOOD)
    assert s.result().first_bad == f"r{k:03d}"
    # the bad end's round, then each round cuts the gaps left into jobs + 1 parts
    cuts = 0
    while (jobs + 1) ** cuts < n - 1:
        cuts += 1
    assert len(rounds) <= 1 + cuts


@given(n=st.integers(3, 150), data=st.data())
def test_property_skips_never_give_a_wrong_answer(n, data):
    """With skips: either the first bad release, or suspects that hold it and only skipped releases
    before it."""
    k = data.draw(st.integers(1, n - 1), label="first bad")
    skipped = data.draw(st.sets(st.integers(1, n - 2), max_size=n // 2), label="skipped")
    s = Search(releases(n), jobs=data.draw(st.integers(1, 3), label="jobs"))
    drive(s, lambda i: SKIP if i in skipped else (BAD if i >= k else GOOD))
    r = s.result()
    want = f"r{k:03d}"
    if r.first_bad is not None:
        assert r.first_bad == want
    else:
        assert want in r.suspects
        assert all(s.verdict(x) == SKIP for x in r.suspects[:-1])
        assert s.verdict(r.suspects[-1]) == BAD
