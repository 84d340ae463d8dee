"""Which rules a selector names, and how specifically: --select / --extend-select / --ignore by code
prefix, as ruff and flake8 do, and the same matching for the config's severity overrides and
per-file-ignores (gradlint.config)."""

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
            if not any(specificity(selector, rule) for rule in rules):
                raise UsageError(f"unknown rule selector {selector!r}: matches no rule code or name "
                                 "(see gradlint --list-rules)")
        enabled = []
        for rule in rules:
            selected = max((specificity(s, rule) for s in (*self.select, *self.extend_select)), default=0)
            ignored = max((specificity(s, rule) for s in self.ignore), default=0)
            if selected > ignored:
                enabled.append(rule)
        return enabled


def parse_selectors(values: Iterable[str] | None) -> tuple[str, ...]:
    """`--select GL1,GL2 --select GL5` -> ("GL1", "GL2", "GL5")."""
    result: list[str] = []
    for value in values or ():
        result.extend(part.strip().upper() for part in value.split(",") if part.strip())
    return tuple(result)


def specificity(selector: str, rule: type[Rule], families: bool = False) -> int:
    """How specifically `selector` names `rule`; 0 when it does not. ALL is the least specific (1),
    then a code prefix (its length + 1: GL2 below GL20), a family where allowed (like a one-digit
    prefix: `init` ranks with GL2), and the exact code or the rule's name the most (100). Of two
    selectors naming a rule, the more specific wins: a select against an ignore, one severity
    override against another."""
    if selector.upper() == "ALL":
        return 1
    if selector.upper() == rule.code or selector.lower() == rule.name:
        return 100
    if rule.code.startswith(selector.upper()):
        return len(selector) + 1
    if families and selector.lower() == rule.family:
        return 4
    return 0
