"""GL901 unused-suppression: reported by the suppression step (gradlint/suppress.py), not here."""

from __future__ import annotations

from gradlint.rule import Rule, RuleContext, Severity, Stage


class UnusedSuppression(Rule):
    """
    ## What it does
    Flags suppression comments (`# noqa: GL201`, `# gradlint: ignore[GL201]`, a file-level
    `# gradlint: noqa: GL201`) and per-file-ignores entries for one module that matched no
    finding, and suppressions that name a code no installed rule has.

    ## Why is this bad?
    A suppression outlives the problem it silenced: after the layer is fixed or moved, the
    comment stays and would hide the next real finding on that line. An unknown code is usually
    a typo, so the finding it meant to silence is still reported. A code is called unused only
    when its rules ran on the model, so `--no-probe` or `--select` runs report no false ones.
    Like ruff's RUF100.

    ## Example
    ```python
    self.fc = nn.Linear(64, 64)  # noqa: GL201   (the init was fixed; GL201 no longer fires)
    ```

    ## Use instead
    ```python
    self.fc = nn.Linear(64, 64)
    ```

    ## References
    - ruff RUF100 unused-noqa: https://docs.astral.sh/ruff/rules/unused-noqa/
    """

    code = "GL901"
    name = "unused-suppression"
    family = "meta"
    severity = Severity.WARNING
    stages = frozenset({Stage.STATIC})

    INVALID = ('''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)  # noqa: GL999  # expect: GL901

    def forward(self, x):
        return self.fc(x)
''', '''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)  # gradlint: ignore[GL901]  # expect: GL901

    def forward(self, x):
        return self.fc(x)
''')
    VALID = ('''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)  # noqa: E501 (for flake8: gradlint leaves other tools' codes alone)

    def forward(self, x):
        return self.fc(x)
''',)

    def check(self, ctx: RuleContext):
        return ()  # the suppression step reports GL901: it needs every other rule's findings
