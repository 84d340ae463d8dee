"""GL902 rule-failed: reported by the engine (gradlint/engine.py) when another rule raises."""

from __future__ import annotations

from gradlint.rule import Rule, RuleContext, Severity, Stage


class RuleFailed(Rule):
    """
    ## What it does
    Reports a rule that raised an exception on this model instead of finishing its check, with
    the exception's type and message; `-v` prints its traceback. The model keeps the other
    rules' findings, and its risk is marked incomplete, naming the rule.

    ## Why is this bad?
    The check that failed may be the one that would have found the cause of an explosion, so a
    clean report is not the whole verdict. Most failures come from model code that a rule runs
    (a property or a forward pass that raises only in some configurations), the rest are bugs
    in gradlint: please report those with the model that shows them. Like a panic in ruff, it
    is reported rather than allowed to drop the results of the other rules and files.

    ## Example
    ```python
    class Linear(nn.Module):
        @property
        def weight(self):            # a rule reads it, and it raises
            raise RuntimeError("the weight is packed: call unpack() first")
    ```

    ## Use instead
    ```python
    class Linear(nn.Module):
        @property
        def weight(self):            # reading it gives the weight
            return self.packed.view(self.shape)
    ```

    ## References
    - ruff reports a rule that panics as a diagnostic naming the file, and goes on:
      https://docs.astral.sh/ruff/
    """

    code = "GL902"
    name = "rule-failed"
    family = "meta"
    severity = Severity.WARNING
    stages = frozenset({Stage.STATIC})
    # Another rule has to run and fail for this one to report anything.
    EXAMPLE_SELECT = ("GL201",)

    INVALID = ('''
import torch
import torch.nn as nn

class Linear(nn.Module):
    """A linear layer that keeps its weight packed (as quantized kernels do)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.packed = nn.Parameter(torch.randn(n_out * n_in) / n_in ** 0.5)
        self.shape = (n_out, n_in)

    @property
    def weight(self):  # a rule reads it, and it raises
        raise RuntimeError("the weight is packed: call unpack() first")

    def forward(self, x):
        return x @ self.packed.view(self.shape).T

class Net(nn.Module):  # expect: GL902
    def __init__(self):
        super().__init__()
        self.fc = Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.relu(self.fc(x)))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(x)
''',)

    def check(self, ctx: RuleContext):
        return ()  # the engine reports GL902: it sees the other rules fail
