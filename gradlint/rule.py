"""The rule contract: one class per rule, carrying its metadata, documentation and examples.

A rule subclasses `Rule`, sets the class attributes below, and implements `check(ctx)`,
yielding findings through `self.finding(...)`. Its docstring is its documentation, in ruff's
template (What it does / Why is this bad? / Example / Use instead / References). `INVALID`
and `VALID` hold tiny model files in gradlint's conventions: the rule must fire on each
invalid one (on the line marked `# expect: CODE` when there is one) and stay quiet on each
valid one. They become tests, and `gradlint --explain CODE` prints them.

Rule modules must not import torch at import time: the registry loads every rule on every
run, including runs over files without a model.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gradlint.findings import Finding, Fix, Location, Severity, Stage
from gradlint.spec import ModelSpec

CODE_PATTERN = re.compile(r"^GL[0-9]{3}$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
DOC_HEADINGS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## References")


@dataclass(frozen=True)
class RuleContext:
    """What a rule sees: the model and its training setup, plus the trace and probe when it asked."""

    spec: ModelSpec
    trace: Any = None  # gradlint.trace.Trace, when the rule needs Stage.TRACE or Stage.PROBE
    probe: Any = None  # gradlint.probe.Probe, when the rule needs Stage.PROBE
    device: str = "cpu"
    seed: int = 0
    thorough: bool = False  # --thorough: rules may spend more passes (seeds, iterations)
    # Extra forward/backward passes rules spend beyond the shared probe (reported per model).
    passes: dict = field(default_factory=lambda: {"forward": 0, "backward": 0})
    # Measurements several rules need (e.g. the optimizer's first step), computed once per model.
    shared: dict = field(default_factory=dict)

    # Continuous measurements for the risk model, recorded whether or not a rule fires
    # (a finding is a threshold; the risk wants the distance to it).
    evidence: dict = field(default_factory=dict)
    # What the user should know about how this model was checked (e.g. probes skipped for
    # memory); reported with the model's assumptions.
    notes: dict = field(default_factory=dict)  # key -> text, one note per key

    def record(self, name: str, value: float) -> None:
        """Record a risk feature: non-negative, larger means riskier, 0 when absent."""
        self.evidence[name] = max(self.evidence.get(name, 0.0), max(0.0, float(value)))

    def measure(self, key: str, compute):
        """`compute()` once per model and lint run, shared between rules."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]

    def note(self, key: str, text: str) -> None:
        self.notes[key] = text

    @property
    def lean(self) -> bool:
        """The model is too large for probes that hold whole copies of its parameters
        (gradlint.curvature.LEAN_BYTES); --thorough runs them anyway."""
        from gradlint.curvature import LEAN_BYTES

        return not self.thorough and self._parameter_bytes() > LEAN_BYTES

    def lean_skip(self, what: str) -> None:
        """State that a probe (`what`, e.g. "GL602 curvature") did not run because the model is large."""
        from gradlint.curvature import LEAN_BYTES

        skipped = self.shared.setdefault("lean.skipped", [])
        if what not in skipped:
            skipped.append(what)
        self.note("lean", f"probe: lean, the trainable parameters take {self._parameter_bytes() / 2**20:.3g} MB "
                          f"(over {LEAN_BYTES / 2**20:.3g} MB): skipped {', '.join(skipped)}; --thorough runs them")

    def _parameter_bytes(self) -> int:
        from gradlint.curvature import parameter_bytes

        return self.measure("model.parameter_bytes", lambda: parameter_bytes(self.model))

    def count_passes(self, forward: int = 0, backward: int = 0) -> None:
        self.passes["forward"] += forward
        self.passes["backward"] += backward

    @property
    def model(self) -> Any:
        return self.spec.model

    def module_location(self, module: Any) -> Location:
        return self.spec.location_of(module)

    def module_at(self, path: str) -> Any:
        return self.spec.model.get_submodule(path) if path else self.spec.model

    def location_of_path(self, path: str) -> Location:
        """The construction line of the module at `path`. Layers cloned by deepcopy (as
        nn.TransformerEncoder clones its layer) have none: use the nearest ancestor's."""
        try:
            module = self.module_at(path)
        except AttributeError:
            return self.spec.location_of(self.spec.model)
        if self.spec.sites is not None:
            parts = path.split(".") if path else []
            for end in range(len(parts), -1, -1):
                site = self.spec.sites.get(self.module_at(".".join(parts[:end])))
                if site is not None:
                    return site
        return self.spec.location_of(module)


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    family: ClassVar[str]  # depth, init, activation, norm, probe, optimizer, recurrent, attention, numerics
    severity: ClassVar[Severity] = Severity.WARNING
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.STATIC})
    INVALID: ClassVar[tuple[str, ...]] = ()
    VALID: ClassVar[tuple[str, ...]] = ()
    # Other rules the examples need selected beside this one (GL902 reports another rule failing).
    EXAMPLE_SELECT: ClassVar[tuple[str, ...]] = ()

    def check(self, ctx: RuleContext) -> Iterable[Finding]:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------
    def finding(self, ctx: RuleContext, message: str, *, module: str = "", location: Location | None = None,
                fix: Fix | str | None = None, weight: float = 0.0, severity: Severity | None = None) -> Finding:
        """A finding at `location`, or where the module at path `module` was constructed."""
        if location is None:
            location = ctx.location_of_path(module)
        if isinstance(fix, str):
            fix = Fix(fix)
        return Finding(
            code=self.code, name=self.name, severity=severity or self.severity, message=message,
            location=location, module=module, fix=fix, weight=max(0.0, min(1.0, weight)),
        )

    # -- documentation ---------------------------------------------------------------------
    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first sentence under "What it does", for listings and SARIF shortDescription."""
        text = cls.doc()
        _, _, rest = text.partition("## What it does")
        paragraph = " ".join((rest or text).strip().split("\n\n")[0].split())
        sentence, dot, _ = paragraph.partition(". ")
        return sentence + "." if dot else paragraph

    @classmethod
    def needs(cls, stage: Stage) -> bool:
        return stage in cls.stages


def contract_problem(cls: type, prefix: str) -> str | None:
    """What makes `cls` unusable as a rule of a package whose codes start with `prefix`, or None.
    Checked once, when the rule is registered, so that a broken rule fails by name and not in the
    middle of a model's lint."""
    code = getattr(cls, "code", None)
    if not isinstance(code, str) or not re.fullmatch(rf"{prefix}[0-9]+", code):
        return f"code {code!r} is not the package's prefix {prefix} followed by digits"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return f"name {name!r} is not a kebab-case name such as init-scale-too-large"
    family = getattr(cls, "family", None)
    if not isinstance(family, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", family):
        return f"family {family!r} is not a lower-case word such as init (families group rules in docs and config)"
    if not isinstance(getattr(cls, "severity", None), Severity):
        return "severity must be a gradlint.findings.Severity (ERROR, WARNING or INFO)"
    stages = getattr(cls, "stages", None)
    if not isinstance(stages, frozenset) or not stages or not all(isinstance(s, Stage) for s in stages):
        return "stages must be a non-empty frozenset of gradlint.findings.Stage"
    if cls.check is Rule.check:
        return "it does not implement check(ctx)"
    return None


def iter_rule_classes(namespace: Any) -> Iterator[type[Rule]]:
    """Concrete rule classes defined in a module (Fixit-style discovery, no hand-kept list)."""
    for value in vars(namespace).values():
        if isinstance(value, type) and issubclass(value, Rule) and value is not Rule and hasattr(value, "code") \
                and value.__module__ == namespace.__name__:
            yield value
