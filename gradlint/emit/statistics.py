"""`--statistics`: how many findings each rule produced, most first (ruff's table), instead of
the findings. Targets that failed to load are listed first, as in the other formats."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from gradlint.emit.summary import error_line
from gradlint.findings import ModelReport


def render(reports: Sequence[ModelReport], output_format: str) -> str:
    counts = Counter((f.code, f.name) for r in reports for f in r.findings)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0][0]))
    errors = [r for r in reports if r.error is not None]
    if output_format == "json":
        document = {"statistics": [{"code": code, "name": name, "count": n} for (code, name), n in rows],
                    "errors": [{"target": r.target, "path": r.path, "error": r.error} for r in errors]}
        return json.dumps(document, indent=2) + "\n"
    width = max((len(str(n)) for n in counts.values()), default=1)
    lines = [error_line(r) for r in errors]
    lines += [f"{n:>{width}}\t{code}\t{name}" for (code, name), n in rows]
    return "\n".join(lines) + ("\n" if lines else "")
