"""Find rules: built-in and third-party rules load through the same entry-point group.

A rule package registers an entry point in the group `gradlint.rules`, whose **name is the
prefix of its codes** and whose value names a module, a package (walked recursively) or one Rule
class:

    [project.entry-points."gradlint.rules"]
    XT = "gradlint_xt.rules"        # rules XT101, XT102, ...

gradlint's own rules are registered the same way, as `GL = "gradlint.rules"`. Every rule is
validated when it is registered (rule.contract_problem): a broken plugin is one line naming the
plugin and the rule, never a crash in the middle of a lint. The prefix GL is gradlint's own; when
two plugins share a prefix and a code, the first one loaded keeps it, built-ins first, and the
clash is reported (`clashes`).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from gradlint.errors import UsageError
from gradlint.rule import Rule, contract_problem, iter_rule_classes

GROUP = "gradlint.rules"
BUILTIN_PREFIX = "GL"
BUILTIN_MODULE = "gradlint.rules"
PREFIX_PATTERN = re.compile(r"^[A-Z]{1,8}$")


class PluginError(UsageError):
    """A rule package that cannot be used: named, with the reason, in one line (exit code 2)."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of the group: its code prefix and what it names."""

    prefix: str
    value: str  # "module" or "module:Class"
    load: Any

    @property
    def label(self) -> str:
        return f"plugin {self.prefix} ({self.value})"


@functools.cache
def _registry() -> tuple[tuple[type[Rule], ...], tuple[str, ...], tuple[str, ...]]:
    """(every rule, sorted by code; the prefixes; the clashes, one line each)."""
    found: dict[str, tuple[type[Rule], Plugin]] = {}
    clashes: list[str] = []
    plugins = _plugins()
    for plugin in plugins:
        if plugin.prefix == BUILTIN_PREFIX and plugin.value != BUILTIN_MODULE:
            raise PluginError(f"{plugin.label}: the prefix {BUILTIN_PREFIX} is gradlint's own; name the entry point "
                              "after your rules' prefix")
        if not PREFIX_PATTERN.match(plugin.prefix):
            raise PluginError(f"{plugin.label}: the entry point's name is the rules' code prefix and must be 1 to 8 "
                              "capital letters")
        for cls in _rules_in(plugin):
            problem = contract_problem(cls, plugin.prefix)
            if problem:
                raise PluginError(f"{plugin.label}: rule {cls.__module__}.{cls.__qualname__}: {problem}")
            if cls.code in found and found[cls.code][0] is not cls:
                kept = found[cls.code][1]
                clashes.append(f"rule {cls.code} is defined by {kept.label} and {plugin.label}; {kept.label}'s is used")
                continue
            found[cls.code] = (cls, plugin)
    rules = tuple(sorted((cls for cls, _ in found.values()), key=lambda cls: cls.code))
    return rules, tuple(dict.fromkeys(p.prefix for p in plugins)), tuple(clashes)


def all_rules() -> tuple[type[Rule], ...]:
    """Every installed rule class, sorted by code. Raises PluginError for a broken rule package."""
    return _registry()[0]


def prefixes() -> tuple[str, ...]:
    """The code prefixes of the installed rule packages (GL first): what `# noqa` comments may name."""
    return _registry()[1]


def clashes() -> tuple[str, ...]:
    return _registry()[2]


def _plugins() -> list[Plugin]:
    """Built-ins first, then the other entry points by prefix (a stable order for clashes)."""
    points = list(entry_points(group=GROUP))
    builtin = [Plugin(p.name, p.value, p.load) for p in points if p.value == BUILTIN_MODULE]
    if not builtin:  # running from a source tree that is not installed: load the built-ins directly
        builtin = [Plugin(BUILTIN_PREFIX, BUILTIN_MODULE, lambda: importlib.import_module(BUILTIN_MODULE))]
    others = sorted((Plugin(p.name, p.value, p.load) for p in points if p.value != BUILTIN_MODULE),
                    key=lambda p: (p.prefix, p.value))
    return builtin[:1] + others


def _rules_in(plugin: Plugin) -> list[type[Rule]]:
    try:
        obj = plugin.load()
        if isinstance(obj, type) and issubclass(obj, Rule):
            return [obj]
        rules = list(iter_rule_classes(obj))
        if hasattr(obj, "__path__"):  # a package: walk its submodules
            for info in pkgutil.walk_packages(obj.__path__, prefix=obj.__name__ + "."):
                rules.extend(iter_rule_classes(importlib.import_module(info.name)))
    except Exception as error:  # an import that fails is the plugin's, not the user's model's
        raise PluginError(f"{plugin.label} could not be loaded: {type(error).__name__}: {error}") from error
    return rules


def rule_by_code(code: str) -> type[Rule] | None:
    for cls in all_rules():
        if cls.code == code.upper() or cls.name == code.lower():
            return cls
    return None
