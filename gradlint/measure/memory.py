"""How much of the model's size a measurement may hold: above LEAN_BYTES of trainable
parameters the optimizer measurements run lean (RuleContext.lean). The first step then goes one
tensor at a time (first_step.first_step(lean=True), well under one copy of the parameters), and
the measurements that need whole vectors (Lanczos, the lookahead) are skipped and say so.

Memory, in multiples of the trainable parameters (P): a full first step holds the gradient, the
update, cloned parameters and the optimizer's state (3-5 P); Lanczos keeps its basis (one P per
iteration); the lookahead a copy of the model and of the optimizer's state.
"""

from __future__ import annotations

from typing import Any

# Models with more trainable parameter bytes than this get the lean optimizer probes (see above):
# a 256 MB model then lints within about 1.5x its size of extra memory (BENCHMARKS.md).
LEAN_BYTES = 256 * 2**20


def parameter_bytes(model: Any) -> int:
    """Bytes of the model's trainable parameters (tied weights counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
