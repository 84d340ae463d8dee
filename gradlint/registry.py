"""Find rules: built-in and third-party rules load through the same entry-point group.

An entry point in the group `gradlint.rules` names a module, a package (walked recursively),
or a single Rule class. gradlint's own rules are registered as `builtin = "gradlint.rules"`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import warnings
from importlib.metadata import entry_points
from typing import Any

from gradlint.rule import Rule, iter_rule_classes

GROUP = "gradlint.rules"


@functools.cache
def all_rules() -> tuple[type[Rule], ...]:
    """Every installed rule class, sorted by code; a code claimed twice keeps its first owner."""
    points = entry_points(group=GROUP)  # scans every installed distribution: once
    targets = [ep.load for ep in points]
    if not any(ep.value == "gradlint.rules" for ep in points):
        # Running from a source tree that is not installed: load the built-in rules directly.
        targets.insert(0, lambda: importlib.import_module("gradlint.rules"))
    found: dict[str, type[Rule]] = {}
    for load in targets:
        for cls in _rules_in(load()):
            if cls.code in found and found[cls.code] is not cls:
                warnings.warn(f"rule code {cls.code} is defined twice ({found[cls.code].__module__} and "
                              f"{cls.__module__}); keeping the first", stacklevel=2)
                continue
            found[cls.code] = cls
    return tuple(sorted(found.values(), key=lambda cls: cls.code))


def _rules_in(obj: Any) -> list[type[Rule]]:
    if isinstance(obj, type) and issubclass(obj, Rule):
        return [obj]
    rules = list(iter_rule_classes(obj))
    if hasattr(obj, "__path__"):  # a package: walk its submodules
        for info in pkgutil.walk_packages(obj.__path__, prefix=obj.__name__ + "."):
            rules.extend(iter_rule_classes(importlib.import_module(info.name)))
    return rules


def rule_by_code(code: str) -> type[Rule] | None:
    for cls in all_rules():
        if cls.code == code.upper() or cls.name == code.lower():
            return cls
    return None
