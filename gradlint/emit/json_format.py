"""Machine-readable output: {"version", "models": [...], "summary"}."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from gradlint import __version__
from gradlint.findings import ModelReport


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    severities = Counter(f.severity.value for r in reports for f in r.findings)
    document = {
        "version": __version__,
        "models": [r.to_dict() for r in reports if r.skipped is None],
        "summary": {
            "models": sum(r.linted for r in reports),
            "errors_loading": sum(r.error is not None for r in reports),
            "findings": sum(severities.values()),
            "by_severity": {s: severities[s] for s in ("error", "warning", "info")},
        },
    }
    skipped = [{"path": r.path, "reason": r.skipped} for r in reports if r.skipped is not None]
    if skipped:  # files without a model gradlint can build: neither a model nor an error
        document["skipped"] = skipped
    if baseline is not None:
        document["summary"]["baseline"] = {"path": baseline.path, "hidden": baseline.hidden, "fixed": baseline.fixed}
    return json.dumps(document, indent=2) + "\n"
