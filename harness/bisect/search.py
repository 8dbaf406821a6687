"""The search of ``livelab bisect``: which release of an ordered list is the first bad one.

Plain data, no boots: ``Search`` proposes the releases to try next (``next_round``), is told each
verdict (``record``), and says when one good/bad boundary is left (``done``, ``result``).

- ``releases[0]`` is good (the user says so, as ``git bisect good``); ``releases[-1]`` is bad, but
  is tried first, since how it fails is what later failures are compared with.
- A round tries the untested release nearest the middle of the open range (``jobs`` 1), or
  ``jobs`` releases that cut it into equal parts.  Without skips the first bad of ``n`` releases
  is found in at most ⌈log2(n - 1)⌉ tries after the bad end's, so ⌈log2(n)⌉ + 1 boots in all.
- A ``skip`` (artifacts missing, a boot lost for another reason) tells nothing: the next try is
  the untested release nearest the middle.  When only skipped releases are left between the last
  good and the first bad, the first bad is one of them or the first bad itself (``Result.first_bad``
  is None, ``Result.suspects`` names them).
- Verdicts need not be monotonic: the boundary is the first bad release and the last good one
  before it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

GOOD, BAD, SKIP = "good", "bad", "skip"
VERDICTS = (GOOD, BAD, SKIP)


@dataclass(frozen=True)
class Result:
    """Where the search ended: the boundary (last good, first bad) and, when no skipped release is
    left inside it, the first bad release."""

    last_good: str
    first_bad_seen: str                         # the earliest release tried and found bad
    first_bad: str | None                       # None: a skipped release in between may be the first bad
    suspects: list[str] = field(default_factory=list)   # the releases that may be the first bad one

    def as_dict(self) -> dict:
        return {"first_bad": self.first_bad, "boundary": [self.last_good, self.first_bad_seen],
                "suspects": self.suspects}


class Search:
    """The first bad release of ``releases`` (oldest first): ``releases[0]`` good, ``releases[-1]``
    bad; ``jobs`` releases tried per round."""

    def __init__(self, releases: Sequence[str], jobs: int = 1):
        if len(releases) < 2:
            raise ValueError("a search needs a good and a bad release")
        if len(set(releases)) != len(releases):
            raise ValueError("a release is listed twice")
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.releases = list(releases)
        self.jobs = jobs
        self.verdicts: dict[int, str] = {0: GOOD}

    # ---------------------------------------------------------------- what is known

    def index(self, release: str) -> int:
        return self.releases.index(release)

    def verdict(self, release: str) -> str | None:
        return self.verdicts.get(self.index(release))

    def record(self, release: str, verdict: str) -> None:
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        i = self.index(release)
        if i == 0 and verdict != GOOD:
            raise ValueError(f"{release} is the good end of the search")
        self.verdicts[i] = verdict

    @property
    def bad_end_known(self) -> bool:
        """Whether the bad end has been tried (its verdict is what the search compares with)."""
        return len(self.releases) - 1 in self.verdicts

    def _bounds(self) -> tuple[int, int]:
        """(last good, first bad): the first bad index (the bad end while it is untried) and the last
        good index before it."""
        bads = [i for i, v in self.verdicts.items() if v == BAD]
        hi = min(bads) if bads else len(self.releases) - 1
        lo = max(i for i, v in self.verdicts.items() if v == GOOD and i < hi)
        return lo, hi

    def boundary(self) -> tuple[str, str]:
        """(last good, first bad) as the search stands (the bad end while nothing else failed)."""
        lo, hi = self._bounds()
        return self.releases[lo], self.releases[hi]

    def untested(self) -> list[int]:
        """The indices between the boundary not tried yet."""
        lo, hi = self._bounds()
        return [i for i in range(lo + 1, hi) if i not in self.verdicts]

    @property
    def done(self) -> bool:
        """The bad end failed and nothing untested is left between the last good and the first bad;
        also when the bad end turned out not bad (there is nothing to search)."""
        if not self.bad_end_known:
            return False
        if self.verdicts[len(self.releases) - 1] != BAD:
            return True
        return not self.untested()

    # ---------------------------------------------------------------- what to try next

    def next_round(self) -> list[str]:
        """The releases to try now (at most ``jobs``): the bad end first, then the untested releases
        that cut the open range most evenly; empty when the search is done."""
        if self.done:
            return []
        picks: list[int] = []
        if not self.bad_end_known:
            picks.append(len(self.releases) - 1)
        picks += self._spread(self.jobs - len(picks))
        return [self.releases[i] for i in picks]

    def _spread(self, k: int) -> list[int]:
        """Up to ``k`` untested indices nearest the points that cut (last good, first bad) into k + 1
        equal parts (ties: the earlier release)."""
        free = self.untested()
        if k <= 0 or not free:
            return []
        if k >= len(free):              # as many jobs as untested releases: try them all
            return free
        lo, hi = self._bounds()
        picks: list[int] = []
        for j in range(1, k + 1):
            target = lo + j * (hi - lo) / (k + 1)
            picks.append(min((i for i in free if i not in picks), key=lambda i: (abs(i - target), i)))
        return sorted(picks)

    # ---------------------------------------------------------------- the answer

    def result(self) -> Result:
        lo, hi = self._bounds()
        between = [self.releases[i] for i in range(lo + 1, hi)]     # all skipped once the search is done
        first_bad = self.releases[hi] if not between else None
        return Result(self.releases[lo], self.releases[hi], first_bad, [*between, self.releases[hi]])

    def max_boots(self) -> int:
        """The most boots left, one release a round, without skips or retries: the bad end's (while it
        is untried), then one per halving of the gaps between the last good and the first bad,
        ⌈log2(gaps)⌉."""
        lo, hi = self._bounds()
        return (0 if self.bad_end_known else 1) + (hi - lo - 1).bit_length()
