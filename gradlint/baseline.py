"""Baselines: adopt gradlint on legacy models without fixing them first.

`--write-baseline FILE` records the current findings; `--baseline FILE` hides the findings it
records, so CI fails only on new ones. Entries are keyed by model file, code and module path (the
ONNX node name for ONNX models), never by line number, so they survive edits around them, and
counted, so a second bad layer under a known module path is still new. Paths are relative to the
baseline file. The file is sorted JSON, one key per line, for readable diffs:

    {
      "gradlint-baseline": 1,
      "findings": {
        "models/legacy.py": {
          "GL201": {
            "encoder.fc1": 1
          }
        }
      }
    }
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from gradlint.errors import UsageError
from gradlint.findings import ModelReport
from gradlint.locations import display_path

VERSION = 1
Entries = dict[str, dict[str, dict[str, int]]]  # file -> code -> module -> count


@dataclass(frozen=True)
class BaselineResult:
    """What the baseline did in this run, for the summary."""

    path: str
    hidden: int  # findings the baseline knew, not reported
    fixed: int  # baseline entries of the linted files that no longer occur


def load(path: str) -> Entries:
    if not os.path.isfile(path):
        raise UsageError(f"baseline {path} not found (create it with --write-baseline {path})")
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"baseline {path} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("gradlint-baseline") != VERSION \
            or not _well_formed(document.get("findings")):
        raise UsageError(f"baseline {path} is not a gradlint baseline (write one with --write-baseline)")
    return document["findings"]


class Filter:
    """Hides the findings a baseline records, one report at a time (the CLI streams reports),
    counting what it hid and which entries no longer occur."""

    def __init__(self, entries: Entries, path: str) -> None:
        self.entries = entries
        self.path = path
        self.root = _root(path)
        self.hidden = self.fixed = 0

    def __call__(self, report: ModelReport, codes: Collection[str]) -> ModelReport:
        """`report` without its known findings. `codes` holds the codes that ran on it: an entry
        counts as fixed only when its rule ran on its file and found less than recorded."""
        if report.error is not None:
            return report
        known = self.entries.get(_key(report.path, self.root), {})
        budget = Counter({(code, module): n for code, modules in known.items() for module, n in modules.items()})
        kept = []
        for finding in report.findings:
            if budget[(finding.code, finding.module)] > 0:
                budget[(finding.code, finding.module)] -= 1
                self.hidden += 1
            else:
                kept.append(finding)
        self.fixed += sum(n for (code, _), n in budget.items() if code in codes and n > 0)
        return replace(report, findings=tuple(kept))

    def result(self) -> BaselineResult:
        return BaselineResult(display_path(self.path), self.hidden, self.fixed)


def apply(entries: Entries, path: str, reports: Sequence[ModelReport], ran: Sequence[Collection[str]]
          ) -> tuple[list[ModelReport], BaselineResult]:
    """Drop the findings the baseline records from every report (see Filter)."""
    hide = Filter(entries, path)
    return [hide(report, codes) for report, codes in zip(reports, ran)], hide.result()


def write(path: str, reports: Sequence[ModelReport], ran: Sequence[Collection[str]]) -> int:
    """Record the reports' findings in `path` and return the number of findings recorded. Entries
    of files not linted in this run, and of rules that did not run, are kept (a pre-commit run
    lints only the staged files)."""
    root = _root(path)
    entries: Entries = {}
    if os.path.isfile(path):
        try:
            entries = load(path)
        except UsageError:
            entries = {}  # unreadable: start afresh
    for report, codes in zip(reports, ran):
        if report.error is not None:
            continue
        key = _key(report.path, root)
        by_code = {code: modules for code, modules in entries.get(key, {}).items() if code not in codes}
        for finding in report.findings:
            modules = by_code.setdefault(finding.code, {})
            modules[finding.module] = modules.get(finding.module, 0) + 1
        entries[key] = by_code
    entries = {file: codes for file, codes in entries.items() if codes}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"gradlint-baseline": VERSION, "findings": entries}, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return sum(n for codes in entries.values() for modules in codes.values() for n in modules.values())


def _root(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _key(model_path: str, root: str) -> str:
    """The model file relative to the baseline's folder, with forward slashes (the same on every OS)."""
    absolute = os.path.abspath(model_path)
    relative = os.path.relpath(absolute, root) if os.path.splitdrive(absolute)[0] == os.path.splitdrive(root)[0] \
        else absolute
    return relative.replace(os.sep, "/")


def _well_formed(entries: object) -> bool:
    return isinstance(entries, dict) and all(
        isinstance(codes, dict) and all(
            isinstance(modules, dict) and all(isinstance(n, int) and n > 0 for n in modules.values())
            for modules in codes.values())
        for codes in entries.values())
