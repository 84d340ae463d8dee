"""The data that flows out of the rules: findings, fixes and per-model reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradlint.measure.export import Measurements


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, value: str) -> "Severity":
        try:
            return cls(value.lower())
        except ValueError:
            raise ValueError(f"unknown severity {value!r} (expected error, warning or info)") from None


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Stage(str, enum.Enum):
    """What a rule needs, in order of cost: source/structure, one recorded forward, forward+backward."""

    STATIC = "static"
    TRACE = "trace"
    PROBE = "probe"


@dataclass(frozen=True)
class Location:
    """Where a finding points: 1-based line and column in `path`."""

    path: str
    line: int = 1
    col: int = 1


@dataclass(frozen=True)
class Fix:
    """A suggested change. `code` is what to write at the finding's line, when there is one."""

    message: str
    code: str | None = None


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    location: Location
    module: str = ""
    fix: Fix | None = None
    # The rule's own estimate that this cause alone makes training diverge; feeds the risk.
    weight: float = 0.0

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.location.path,
            "line": self.location.line,
            "col": self.location.col,
            "module": self.module,
            "fix": None if self.fix is None else {"message": self.fix.message, "code": self.fix.code},
        }


NOT_RUN = "static rules only: "  # opens the assumption engine.lint_spec states for a model that cannot run


@dataclass(frozen=True)
class Suggestion:
    """The largest learning rate at which gradlint predicts the run trains (gradlint.suggest), for
    the configured optimizer, with its schedule scaled by the same factor. Learning rates are the
    checked ones: a schedule's peak when there is a schedule."""

    lr: float | None  # None: no lr gradlint tried is predicted to train (`basis` says why)
    configured_lr: float
    gradient_clip_val: float | None  # to train with beside `lr`: the configured one, or a suggested one
    # The predicted risk at the largest rate predicted to train, of which `lr` keeps a margin
    # (gradlint.suggest.MARGIN); at `lr` itself it is lower.
    risk: float | None
    basis: str  # what bounded it: curvature, first-update size, lookahead, ...
    clip_suggested: bool = False  # `gradient_clip_val` is the suggestion's, not the file's

    def line(self) -> str:
        """`suggested lr: 0.018 (configured 5, 256x too high)`, as the text formats print it."""
        configured = _lr(self.configured_lr)
        if self.clip_suggested:
            return (f"suggested lr: {_lr(self.lr)} with gradient_clip_val = {self.gradient_clip_val:g} "
                    f"(configured {configured} without clipping; {self.basis})")
        if self.lr is None:
            return f"suggested lr: none ({self.basis}; configured {configured})"
        if self.lr < self.configured_lr:
            how = f"{_ratio(self.configured_lr / self.lr)}x too high"
        elif self.lr > self.configured_lr:
            how = f"{_ratio(self.lr / self.configured_lr)}x headroom"
        else:
            how = "no more headroom"
        return f"suggested lr: {_lr(self.lr)} (configured {configured}, {how}; bound: {self.basis})"

    def to_dict(self) -> dict:
        return {"lr": self.lr, "configured_lr": self.configured_lr, "gradient_clip_val": self.gradient_clip_val,
                "risk": None if self.risk is None else round(self.risk, 4), "basis": self.basis}


def _lr(value: float) -> str:
    return f"{value:.2g}"


def _ratio(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class ModelReport:
    """Everything gradlint says about one linted target.

    A target that failed to load has only `error`. A model that loaded but failed to run has the
    static rules' findings, the `error`, and no risk. `risk` is None whenever the model did not
    run: the risk is fitted on what running it shows; `incomplete` then says why, and otherwise
    lists what the risk could not weigh (rules not selected, failed, or skipped for memory).
    """

    target: str
    path: str
    risk: float | None = None
    level: str | None = None
    assumptions: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    causes: tuple[str, ...] = ()
    passes: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)  # the risk model's inputs (gradlint.risk)
    error: str | None = None
    incomplete: tuple[str, ...] = ()
    # Where the model is defined (its class or factory), for formats that place the risk in a file.
    location: Location | None = None
    # Why the file was passed over: it holds no model gradlint can build by itself (errors.NoModel).
    skipped: str | None = None
    # Whether rules ran: False for a target that failed to load (`error` only); True for a model
    # that failed to run too, whose `error` comes with the static rules' findings.
    linted: bool = False
    # The learning-rate suggestion (gradlint.suggest); None when none was made (the model did not
    # run, has no optimizer, or no selected rule reads the lr).
    suggestion: Suggestion | None = None
    # The numbers behind the verdict that the run measured (per-layer gradients, lookahead curves,
    # ...), for the HTML report's plots and the JSON; None when the model did not run.
    measurements: Measurements | None = None

    @property
    def not_run(self) -> str | None:
        """Why only the static rules ran (the model cannot run: an unsupported ONNX op), as the
        engine states it among the assumptions; None when the model ran."""
        return next((a for a in self.assumptions if a.startswith(NOT_RUN)), None)

    def to_dict(self) -> dict:
        if not self.linted:
            return {"target": self.target, "error": self.error}
        return {
            "target": self.target,
            **({} if self.error is None else {"error": self.error}),
            "risk": None if self.risk is None else round(self.risk, 4),
            "level": self.level,
            # Only when there is something to say, so a complete risk reads as it always did.
            **({"risk_incomplete": list(self.incomplete)} if self.incomplete else {}),
            "assumptions": list(self.assumptions),
            "causes": list(self.causes),
            "passes": dict(self.passes),
            "evidence": {k: round(v, 4) for k, v in sorted(self.evidence.items())},
            "findings": [f.to_dict() for f in self.findings],
            "suggestion": None if self.suggestion is None else self.suggestion.to_dict(),
            **({"measurements": self.measurements.to_dict()} if self.measurements else {}),
        }
