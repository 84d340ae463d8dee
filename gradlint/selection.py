"""Which rules run: --select / --extend-select / --ignore by code prefix, as ruff and flake8 do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gradlint.errors import UsageError
from gradlint.rule import Rule


@dataclass(frozen=True)
class Selection:
    select: tuple[str, ...] = ("ALL",)
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def apply(self, rules: Sequence[type[Rule]]) -> list[type[Rule]]:
        """Rules enabled by this selection. When a code matches both a selector and an ignore,
        the longer (more specific) prefix wins, so `--select GL201 --ignore GL2` runs GL201."""
        for selector in (*self.select, *self.extend_select, *self.ignore):
            if not any(_matches(selector, rule) for rule in rules):
                raise UsageError(f"unknown rule selector {selector!r}: matches no rule code or name "
                                 "(see gradlint --list-rules)")
        enabled = []
        for rule in rules:
            selected = _longest_match((*self.select, *self.extend_select), rule)
            ignored = _longest_match(self.ignore, rule)
            if selected > ignored:
                enabled.append(rule)
        return enabled


def parse_selectors(values: Iterable[str] | None) -> tuple[str, ...]:
    """`--select GL1,GL2 --select GL5` -> ("GL1", "GL2", "GL5")."""
    result: list[str] = []
    for value in values or ():
        result.extend(part.strip().upper() for part in value.split(",") if part.strip())
    return tuple(result)


def _matches(selector: str, rule: type[Rule]) -> bool:
    return selector == "ALL" or rule.code.startswith(selector) or rule.name == selector.lower()


def _longest_match(selectors: Iterable[str], rule: type[Rule]) -> int:
    """Length of the most specific selector matching the rule; 0 when none does."""
    best = 0
    for selector in selectors:
        if selector == "ALL":
            best = max(best, 1)
        elif rule.code.startswith(selector) or rule.name == selector.lower():
            best = max(best, len(rule.code) + 1 if rule.name == selector.lower() else len(selector) + 1)
    return best
