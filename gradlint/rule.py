"""The rule contract: one class per rule, carrying its metadata, documentation and examples.

A rule subclasses `Rule`, sets the class attributes below, and implements `check(ctx)`,
yielding findings through `self.finding(...)`. Its docstring is its documentation, in ruff's
template (What it does / Why is this bad? / Example / Use instead / References). `INVALID`
and `VALID` hold tiny model files in gradlint's conventions: the rule must fire on each
invalid one (on the line marked `# expect: CODE` when there is one) and stay quiet on each
valid one. They become tests, and `gradlint --explain CODE` prints them.

Rule modules import nothing of gradlint but this module, which is the whole of what a rule may
use: the contract (`Rule`, `Finding`, `Fix`, `RuleContext`, ...), the context's typed and cached
accessors to the measurements (`ctx.trace`, `ctx.probe`, `ctx.signal_flow()`, `ctx.first_step()`,
`ctx.lookahead(...)`, ...), and the functions that read them, re-exported at the end of this
module from gradlint.measure. tests/test_architecture.py holds rules/ to that.

Rule modules must not import torch at import time: the registry loads every rule on every
run, including runs over files without a model.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gradlint.findings import Finding, Fix, Location, Severity, Stage
from gradlint.measure.attention import AttentionScores, attention_scores
from gradlint.measure.first_step import FirstStep, first_step
from gradlint.measure.gradients import Observed, observed
from gradlint.measure.graph import DepthProfile, ResidualChain, depth_profile, residual_chains
from gradlint.measure.hessian import top_eigenvalue
from gradlint.measure.lookahead import RESAMPLED, LookaheadRun, lookahead_run
from gradlint.measure import memory
from gradlint.measure.optimizer import OptimizerSite, optimizer_site
from gradlint.measure.recurrent import TimeProfile, gradient_through_time
from gradlint.measure.scale import (
    cross_entropy_loss, downscaled_residual_outputs, output_weights, scale_invariant_weights,
)
from gradlint.measure.signal import SignalFlow
from gradlint.measure.surface import LossSurface, loss_surface
from gradlint.optimizers import UnsupportedOptimizer
from gradlint.probe import Probe
from gradlint.spec import ModelSpec
from gradlint.trace import Trace

CODE_PATTERN = re.compile(r"^GL[0-9]{3}$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
DOC_HEADINGS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## References")


@dataclass(frozen=True)
class RuleContext:
    """What a rule sees: the model and its training setup, plus the trace and probe when it asked."""

    spec: ModelSpec
    trace: Trace | None = None  # the recorded forward pass, when a rule needs Stage.TRACE or Stage.PROBE
    probe: Probe | None = None  # the probe's backward pass, when a rule needs Stage.PROBE
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

    def measure(self, key: Any, compute):
        """`compute()` once per model and lint run, shared between rules: what every accessor
        below is built on, and what a plugin's own shared measurement can use too."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]

    # -- measurements, each computed once per model (gradlint.measure) ------------------------------
    # The trace-level views need the trace (Stage.TRACE); observed() the probe (Stage.PROBE); the
    # others run passes of their own over the example batch, counted in ctx.passes.
    def signal_flow(self) -> SignalFlow:
        """The trace's chains of weighted layers joined by activations (measure.signal)."""
        return self.measure("signal_flow", lambda: SignalFlow(self.trace))

    def residual_chains(self) -> list[ResidualChain]:
        """Runs of residual adds along the trace, block by block (measure.graph)."""
        return self.measure("residual_chains", lambda: residual_chains(self.trace))

    def depth_profile(self) -> DepthProfile:
        """The longest and shortest weighted paths through the trace (measure.graph)."""
        return self.measure("depth_profile", lambda: depth_profile(self.trace))

    def attention_scores(self) -> list[AttentionScores]:
        """Each softmax over query-key products in the trace, with its scale and logits (measure.attention)."""
        return self.measure("attention_scores", lambda: attention_scores(self.trace))

    def observed(self) -> Observed:
        """The trace with the probe's dloss/d(output) per node (measure.gradients)."""
        return self.measure("observed", lambda: observed(self))

    def first_step(self) -> FirstStep | None:
        """The optimizer's first update on the example batch, gradient_clip_val applied; None when
        the optimizer cannot be stepped outside training or the loss is not finite. Lean (numbers
        only, no gradient and update vectors) for a large model (measure.first_step)."""
        return self.measure("first_step", self._first_step)

    def _first_step(self) -> FirstStep | None:
        with self.loss_surface() as surface:
            try:
                step = first_step(surface, self.spec.optimizer_object, self.spec.optimizer,
                                  self.spec.gradient_clip_val, lean=self.lean)
            except UnsupportedOptimizer:
                return None
        return step if step is not None and math.isfinite(step.loss) else None

    def top_eigenvalue(self, iterations: int, restarts: int = 0, start: Any = None,
                       fixed: frozenset = frozenset()) -> float:
        """The top Hessian eigenvalue of the example-batch loss by Lanczos, from `start` (the
        gradient is a good guess) and `restarts` random vectors; with the parameters named in
        `fixed` held still, that of the Hessian over the others (measure.hessian)."""
        return self.measure(("top_eigenvalue", iterations, restarts, fixed), lambda: self._with_surface(
            lambda surface: top_eigenvalue(surface, iterations, start=start, restarts=restarts,
                                           fixed=fixed).value))

    def scale_invariant_weights(self) -> frozenset[str]:
        """Names of the weights whose scale a normalization after them divides out: the loss sees
        only their direction (measure.scale). Needs the trace."""
        return self.measure("scale_invariant_weights", lambda: scale_invariant_weights(self.trace, self.model))

    def output_weights(self) -> frozenset[str]:
        """The weight of the layer that produces the model's output (measure.scale). Needs the trace."""
        return self.measure("output_weights", lambda: output_weights(self.trace, self.model))

    def downscaled_residual_outputs(self) -> dict[str, float]:
        """Residual branches' last weights initialized below their branch's scale (GPT-2's
        output projections): parameter name -> the RMS at the branch's scale (measure.scale)."""
        return self.measure("downscaled_residual_outputs",
                            lambda: downscaled_residual_outputs(self.trace, self.model))

    def lookahead(self, steps: int, flop_budget: float | None, rows: int | None = None,
                  counted: float | None = None) -> LookaheadRun:
        """`steps` real optimizer steps on a copy of the model, on the example batch or (given its
        `rows`) on rows drawn from it at every step, cut to what `flop_budget` affords (measure.lookahead)."""
        return self.measure(("lookahead", steps, flop_budget, rows), lambda: lookahead_run(
            self.spec, self.device, self.seed, steps, flop_budget, rows=rows, counted=counted,
            count_passes=self.count_passes))

    def gradient_through_time(self) -> dict[str, TimeProfile]:
        """Per recurrent layer, the loss gradient's norm at each time step of its input (measure.recurrent)."""
        return self.measure("gradient_through_time", lambda: gradient_through_time(self))

    def optimizer_site(self) -> OptimizerSite:
        """Where the optimizer is constructed: the line an lr fix rewrites (measure.optimizer)."""
        return self.measure("optimizer_site", lambda: optimizer_site(self))

    @contextlib.contextmanager
    def loss_surface(self) -> Iterator[LossSurface]:
        """The example-batch loss as a function of the parameters, for a measurement of a rule's
        own; the model is restored and the passes counted on exit (measure.surface)."""
        with loss_surface(self.spec, self.device, self.seed) as surface:
            try:
                yield surface
            finally:
                self.count_passes(**surface.passes)

    def _with_surface(self, measure):
        with self.loss_surface() as surface:
            return measure(surface)

    def note(self, key: str, text: str) -> None:
        self.notes[key] = text

    @property
    def lean(self) -> bool:
        """The model is too large for probes that hold whole copies of its parameters
        (measure.memory.LEAN_BYTES); --thorough runs them anyway."""
        return not self.thorough and self._parameter_bytes() > memory.LEAN_BYTES

    def lean_skip(self, what: str) -> None:
        """State that a probe (`what`, e.g. "GL602 curvature") did not run because the model is large."""
        skipped = self.shared.setdefault("lean.skipped", [])
        if what not in skipped:
            skipped.append(what)
        self.note("lean", f"probe: lean, the trainable parameters take {self._parameter_bytes() / 2**20:.3g} MB "
                          f"(over {memory.LEAN_BYTES / 2**20:.3g} MB): skipped {', '.join(skipped)}; --thorough runs them")

    def _parameter_bytes(self) -> int:
        return self.measure("model.parameter_bytes", lambda: memory.parameter_bytes(self.model))

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
    # The verdict depends on the learning rate: the lr suggestion (gradlint.suggest) re-runs the
    # rule at candidate rates, on the same measurements with the optimizer's lr scaled.
    reads_lr: ClassVar[bool] = False
    # The verdict depends on gradient clipping (spec.gradient_clip_val): the suggestion re-runs the
    # rule when it tries a clip.
    reads_clip: ClassVar[bool] = False
    # The rule trains real optimizer steps (a lookahead): the suggestion runs it only to verify a
    # candidate, as it costs many passes.
    steps_optimizer: ClassVar[bool] = False

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
    for flag in ("reads_lr", "reads_clip", "steps_optimizer"):
        if not isinstance(getattr(cls, flag), bool):
            return f"{flag} must be True or False"
    if cls.check is Rule.check:
        return "it does not implement check(ctx)"
    return None


def iter_rule_classes(namespace: Any) -> Iterator[type[Rule]]:
    """Concrete rule classes defined in a module (Fixit-style discovery, no hand-kept list)."""
    for value in vars(namespace).values():
        if isinstance(value, type) and issubclass(value, Rule) and value is not Rule and hasattr(value, "code") \
                and value.__module__ == namespace.__name__:
            yield value


# -- what a rule may use besides the contract ------------------------------------------------------
# Rules import from this module only (tests/test_architecture.py). The functions below read the
# measurements above; they live in gradlint.measure, by what they measure, and are re-exported
# here so that the contract is one import. Constants are the thresholds several rules share.
from gradlint.batches import shared_rows  # noqa: E402
from gradlint.locations import display_path, is_library_file  # noqa: E402
from gradlint.measure.activations import worst_sites  # noqa: E402
from gradlint.measure.attention import MAX_LOGIT, MIN_ENTROPY, MIN_HEAD_DIM, scores_fix_code  # noqa: E402
from gradlint.measure.first_step import lookahead  # noqa: E402
from gradlint.measure.gradients import (  # noqa: E402
    backward_profile, depth_fix, growth, has_weight_matrix, relative_sensitivities, sci,
)
from gradlint.measure.graph import (  # noqa: E402
    branch_nodes, branch_tail, forward_reaches, is_batch_norm, is_layer_norm, is_norm, is_weighted, longest_run,
    sited_path, skip_and_branch, stream_source,
)
from gradlint.measure.norm import enclosing, encoder_call  # noqa: E402
from gradlint.measure.numerics import (  # noqa: E402
    BOUNDING, EPS_GUARDS, NEGATIONS, NONNEGATIVE, PASS_THROUGH, SOFTMAXES, depends_on_data, finite_absmax,
    input_node, upstream,
)
from gradlint.measure.optimizer import (  # noqa: E402
    assumed_optimizer, clipping_note, first_update_ratios, format_lr, is_piecewise_linear, lr_name, stability_bound,
    warmed_up, warmup_hint, warmup_steps,
)
from gradlint.measure.recurrent import clipping_mitigates, gate_radii, recurrent_layers  # noqa: E402
from gradlint.measure.signal import (  # noqa: E402
    RECTIFIERS, SATURATING, critical_gain_squared, init_call, is_normalization, label, mean_squared_slope,
    weight_gain,
)
from gradlint.measure.signal import is_weighted as is_fan_in_scaled  # noqa: E402
from gradlint.measure.source import (  # noqa: E402
    call_argument, call_name, expression_at, parsed_source, replace_in_line, segment,
)
from gradlint.optimizers import DEFAULT_LR  # noqa: E402
from gradlint.trace import MODEL_INPUT, TRANSPARENT, Node  # noqa: E402

__all__ = [
    # the contract
    "Rule", "RuleContext", "Finding", "Fix", "Location", "Severity", "Stage", "contract_problem",
    "iter_rule_classes",
    # the measurements' types
    "AttentionScores", "DepthProfile", "FirstStep", "LookaheadRun", "LossSurface", "ModelSpec", "Node",
    "Observed", "OptimizerSite", "Probe", "ResidualChain", "SignalFlow", "TimeProfile", "Trace",
    # reading them
    "BOUNDING", "DEFAULT_LR", "EPS_GUARDS", "MAX_LOGIT", "MIN_ENTROPY", "MIN_HEAD_DIM", "MODEL_INPUT", "NEGATIONS",
    "NONNEGATIVE", "PASS_THROUGH", "RECTIFIERS", "RESAMPLED", "SATURATING", "SOFTMAXES", "TRANSPARENT",
    "assumed_optimizer", "backward_profile", "branch_nodes", "branch_tail", "call_argument", "call_name",
    "clipping_mitigates", "clipping_note", "critical_gain_squared", "cross_entropy_loss", "depends_on_data", "depth_fix", "display_path",
    "enclosing", "encoder_call", "expression_at", "finite_absmax", "first_update_ratios", "format_lr",
    "forward_reaches", "gate_radii", "growth", "has_weight_matrix", "init_call", "input_node", "is_batch_norm",
    "is_fan_in_scaled", "is_layer_norm", "is_library_file", "is_norm", "is_normalization", "is_piecewise_linear",
    "is_weighted", "label", "longest_run", "lookahead", "lr_name", "mean_squared_slope", "parsed_source",
    "recurrent_layers", "relative_sensitivities", "replace_in_line", "scores_fix_code", "sci", "segment",
    "shared_rows", "sited_path", "skip_and_branch", "stability_bound", "stream_source", "upstream", "warmed_up",
    "warmup_hint", "warmup_steps", "weight_gain", "worst_sites",
]
