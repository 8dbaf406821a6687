"""Boot triage: which console or journal line lost a boot, and why.

- ``rules``: the failure lines, taken from the programs that print them;
- ``text``: console and journal text made into comparable lines;
- ``engine``: the line-by-line triage (live in the console tap, after the fact in
  ``livelab triage``) and its verdict;
- ``inputs``: logs from files, pastes and livelab run directories.
"""
from .engine import Failure, Finding, Triage, Verdict, triage_text
from .rules import FAILURE_RULES, PHASES, REASONS, RULES, Rule

__all__ = ["FAILURE_RULES", "PHASES", "REASONS", "RULES", "Failure", "Finding", "Rule", "Triage", "Verdict",
           "triage_text"]
