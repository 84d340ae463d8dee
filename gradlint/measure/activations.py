"""Shared by the activation rules: group activation calls by the line a fix would change."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gradlint.measure.signal import SignalFlow, label


@dataclass(frozen=True)
class ActivationSite:
    """The worst of the activation calls that share a fix: those fed by layers built on one
    line (a loop or comprehension), or the same activation call when no layer feeds it."""

    activation: Any  # Node: the worst call
    layer: Any  # Node: the weighted layer feeding it, where init fixes go; None if none
    calls: int

    def target(self) -> dict:
        """`finding()` keyword arguments that point at the layer, else at the activation."""
        if self.layer is not None:
            return {"module": self.layer.path}
        return {"module": self.activation.path, "location": self.activation.location}

    @property
    def name(self) -> str:
        """What the message calls it: the layer and its activation, or the activation."""
        if self.layer is not None:
            return f"{self.activation.name} after {label(self.layer.path)}"
        return f"{self.activation.name} in {label(self.activation.path)}"

    def calls_note(self) -> str:
        return f" (worst of {self.calls} calls)" if self.calls > 1 else ""


def worst_sites(flow: SignalFlow, names: Iterable[str], badness: Callable[[Any], float | None]) -> list[ActivationSite]:
    """One site per fix location, for activation nodes named in `names` whose badness is known."""
    names = set(names)
    sites: dict = {}
    for node in flow.nodes:
        if node.name not in names or badness(node) is None:
            continue
        layer = flow.feeding_layer(node)
        key = layer.location if layer is not None else node.location
        site = sites.get(key)
        if site is None:
            sites[key] = ActivationSite(node, layer, 1)
        else:
            worse = badness(node) > badness(site.activation)
            sites[key] = ActivationSite(node if worse else site.activation, layer if worse else site.layer,
                                        site.calls + 1)
    return list(sites.values())
