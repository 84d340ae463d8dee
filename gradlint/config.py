"""`[tool.gradlint]` in pyproject.toml, and how it combines with the command line.

Each linted file uses the nearest pyproject.toml with a `[tool.gradlint]` table, found by walking up
from the file (as ruff does); run-wide settings (output format, fail-on, baseline) come from the
one nearest the working directory. `--config PATH` names one file for everything, `--isolated`
ignores them all. Command-line options beat the file. Reading a config never imports torch.

    [tool.gradlint]
    select = ["GL"]                     # also: extend-select, ignore, external
    fail-on = "error"
    fail-risk = 0.5                     # also exit 1 when a model's risk is at least this
    baseline = ".gradlint-baseline.json"
    exclude = [".venv", "build"]        # paths never scanned (replaces the defaults); also: extend-exclude
    force-exclude = true                # exclude named paths too (pre-commit names each file)
    respect-gitignore = true            # pass over what git ignores
    jobs = 2                            # targets linted at once (worker processes)
    timeout = 600                       # seconds per target; 0: no limit
    max-memory = "8GB"                  # resident memory per target's worker

    [tool.gradlint.per-file-ignores]
    "legacy/*.py" = ["GL2"]
    "exports/net.onnx::/encoder/*" = ["GL201"]   # FILE::MODULE: by module path or ONNX node name

    [tool.gradlint.severity]
    GL3 = "info"                        # a code, prefix, rule name or family
    init = "error"

    [tool.gradlint.probe]
    batch-size = 4                      # also: seed, device, thorough

    [tool.gradlint.models."research/odd.py"]
    factory = "make_net"                # also: input-shape, optimizer, lr, loss

    [tool.gradlint.models."exports/*.onnx"]   # an ONNX file holds no training setup
    optimizer = "SGD"
    lr = 0.1
    loss = "cross-entropy"              # or "mse": the loss when the file defines no loss_fn
    gradient-clip-val = 1.0             # global grad-norm clipping (Lightning's name)
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gradlint.discover import glob_match
from gradlint.emit import FORMATS
from gradlint.errors import UsageError
from gradlint.findings import Location, Severity
from gradlint.locations import display_path
from gradlint.losses import LOSSES
from gradlint.registry import all_rules
from gradlint.rule import Rule
from gradlint.selection import Selection, specificity

FORMAT_NAMES = tuple(FORMATS)
_TOP_KEYS = ("select", "extend-select", "ignore", "external", "per-file-ignores", "severity", "fail-on",
             "fail-risk", "output-format", "baseline", "probe", "models", "jobs", "timeout", "max-memory", "exclude",
             "extend-exclude", "force-exclude", "respect-gitignore")
_PROBE_KEYS = ("batch-size", "seed", "device", "thorough")
_MODEL_KEYS = ("factory", "input-shape", "optimizer", "lr", "loss", "gradient-clip-val")


@dataclass(frozen=True)
class ModelSettings:
    """How to load a file that does not follow the naming conventions."""

    factory: str | None = None
    input_shape: tuple[int, ...] | None = None
    optimizer: str | None = None
    lr: float | None = None
    loss: str | None = None  # "cross-entropy" or "mse" (losses.LOSSES)
    gradient_clip_val: float | None = None


@dataclass(frozen=True)
class PathIgnore:
    """A per-file-ignores entry: codes ignored in files matching `pattern` (relative to `root`),
    optionally only for modules (or ONNX nodes) matching `module`."""

    root: str
    pattern: str
    codes: tuple[str, ...]
    module: str | None = None
    key: str = ""  # as written in the config, for messages
    location: Location | None = None  # the key's line in the config file

    def matches_path(self, path: str) -> bool:
        negated = self.pattern.startswith("!")
        return glob_match(self.pattern.lstrip("!"), self.root, path) != negated

    @property
    def names_one_file(self) -> bool:
        return not self.pattern.startswith("!") and not any(c in self.pattern for c in "*?[")


@dataclass(frozen=True)
class Config:
    """One `[tool.gradlint]` table, validated. `path` is None for the defaults."""

    path: str | None = None
    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    external: tuple[str, ...] = ()
    per_file_ignores: tuple[PathIgnore, ...] = ()
    severity: tuple[tuple[str, Severity], ...] = ()
    fail_on: Severity | None = None
    fail_risk: float | None = None  # exit 1 when a model's risk is >= this (0 < fail_risk <= 1)
    output_format: str | None = None
    baseline: str | None = None  # absolute
    batch_size: int | None = None
    seed: int | None = None
    device: str | None = None
    thorough: bool | None = None
    models: tuple[tuple[str, ModelSettings], ...] = ()
    jobs: int | None = None
    timeout: float | None = None  # seconds; 0: no limit
    max_memory: int | None = None  # bytes
    exclude: tuple[str, ...] | None = None  # replaces discover.DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    force_exclude: bool | None = None
    respect_gitignore: bool | None = None

    @property
    def root(self) -> str:
        return os.path.dirname(os.path.abspath(self.path)) if self.path else os.getcwd()

    def model_settings(self, path: str) -> ModelSettings:
        """The [tool.gradlint.models] entries matching `path`, later entries winning per field."""
        merged = ModelSettings()
        for pattern, settings in self.models:
            if glob_match(pattern, self.root, path):
                merged = replace(merged, **{k: v for k, v in vars(settings).items() if v is not None})
        return merged


@dataclass(frozen=True)
class CliOptions:
    """What the command line says; None (or empty) means "not given: use the config"."""

    select: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    severity: tuple[tuple[str, Severity], ...] = ()
    device: str | None = None
    seed: int | None = None
    batch_size: int | None = None
    thorough: bool = False
    probe: bool = True
    input_shape: tuple[int, ...] | None = None
    lr: float | None = None
    optimizer: str | None = None
    loss: str | None = None
    inline_suppressions: bool = True


class ConfigFinder:
    """Finds and caches the config for each linted path."""

    def __init__(self, config_path: str | None = None, isolated: bool = False) -> None:
        self.isolated = isolated
        self.fixed = load_config(config_path) if config_path else None
        self._by_dir: dict[str, Config | None] = {}

    def for_run(self) -> Config:
        """Run-wide settings: --config, else the nearest config above the working directory."""
        if self.fixed is not None or self.isolated:
            return self.fixed or Config()
        return self._nearest(os.getcwd()) or Config()

    def for_path(self, path: str) -> Config:
        """The config a file is linted with: the nearest above it, else the run's."""
        if self.fixed is not None or self.isolated:
            return self.for_run()
        directory = os.path.dirname(os.path.abspath(path)) if os.path.exists(path) else os.getcwd()
        return self._nearest(directory) or self.for_run()

    def _nearest(self, directory: str) -> Config | None:
        if directory not in self._by_dir:
            candidate = os.path.join(directory, "pyproject.toml")
            document = _read_toml(candidate) if os.path.isfile(candidate) else {}
            parent = os.path.dirname(directory)
            if "gradlint" in _tool_table(document):
                self._by_dir[directory] = _from_document(document, candidate)
            else:
                self._by_dir[directory] = None if parent == directory else self._nearest(parent)
        return self._by_dir[directory]


def load_config(path: str) -> Config:
    """Read and validate a config file: a pyproject.toml ([tool.gradlint]) or any other TOML file
    holding the same keys at the top level. Every problem is a UsageError naming the key."""
    if not os.path.isfile(path):
        raise UsageError(f"{path}: config file not found")
    return _from_document(_read_toml(path), path)


def _from_document(document: dict, path: str) -> Config:
    if os.path.basename(path) == "pyproject.toml":
        table, prefix = _tool_table(document).get("gradlint", {}), "tool.gradlint."
    else:
        table, prefix = document, ""
    return _parse(table, path, prefix, _read_text(path))


def resolve_rules(config: Config, cli: CliOptions, rules: Sequence[type[Rule]], path: str | None = None
                  ) -> list[type[Rule]]:
    """Enabled rules, as ruff layers them: the config, then the command line. A layer's `select`
    starts the set afresh; its `extend-select` and `ignore` adjust it, the more specific selector
    winning. Per-file ignores for `path` come last and always win."""
    enabled: set[str] = {rule.code for rule in rules}
    layers = [(config.select, config.extend_select, config.ignore), (cli.select or None, cli.extend_select, cli.ignore)]
    for select, extend_select, ignore in layers:
        turned_on = {r.code for r in Selection(select=(*(select or ()), *extend_select), ignore=ignore).apply(rules)}
        turned_off = {r.code for r in Selection(select=ignore, ignore=(*(select or ()), *extend_select)).apply(rules)}
        enabled = turned_on if select else (enabled | turned_on) - turned_off
    if path is not None:
        for entry in config.per_file_ignores:
            if entry.module is None and entry.matches_path(path):
                enabled -= {r.code for r in Selection(select=entry.codes).apply(rules)}
    return [rule for rule in rules if rule.code in enabled]


def resolve_severities(config: Config, cli: CliOptions, rules: Sequence[type[Rule]]
                       ) -> tuple[tuple[str, Severity], ...]:
    """(code, severity) for every rule with an override: the command line's beat the config's;
    within one, an exact code or name beats a longer prefix beats a shorter one or a family."""
    result: dict[str, Severity] = {}
    for overrides in (config.severity, cli.severity):
        for rule in rules:
            ranked = [(specificity(key, rule, families=True), severity) for key, severity in overrides]
            ranked = [item for item in ranked if item[0] > 0]
            if ranked:
                result[rule.code] = max(ranked, key=lambda item: item[0])[1]
    return tuple(sorted(result.items()))


def validate_keys(keys: Sequence[str], rules: Sequence[type[Rule]], where: str, families: bool = False) -> None:
    """Every selector must name a rule (code prefix or name) or, where allowed, a family."""
    for key in keys:
        if key.upper() == "ALL":
            if not families:  # select and per-file-ignores take ALL; a severity override names rules
                continue
        elif any(specificity(key, rule, families) for rule in rules):
            continue
        raise UsageError(f"{where}: unknown rule selector {key!r}: matches no rule code or name "
                             "(see gradlint --list-rules)")


# -- parsing --------------------------------------------------------------------------------------

def _parse(table: Any, path: str, prefix: str, text: str) -> Config:
    where = display_path(path)
    rules = all_rules()
    _check_table(table, prefix.rstrip(".") or "the top level", where)
    _check_keys(table, _TOP_KEYS, prefix, where)
    root = os.path.dirname(os.path.abspath(path))

    def selectors(key: str) -> tuple[str, ...] | None:
        if key not in table:
            return None
        values = tuple(v.upper() for v in _strings(table[key], prefix + key, where))
        validate_keys(values, rules, f"{where}: {prefix}{key}")
        return values

    per_file = []
    pfi = table.get("per-file-ignores", {})
    _check_table(pfi, prefix + "per-file-ignores", where)
    for key, codes in pfi.items():
        name = f"{prefix}per-file-ignores.{_quoted(key)}"
        codes = tuple(c.upper() for c in _strings(codes, name, where))
        validate_keys(codes, rules, f"{where}: {name}")
        pattern, sep, module = key.partition("::")
        per_file.append(PathIgnore(root, pattern, codes, module if sep else None, key,
                                   Location(where, _key_line(text, key), 1)))

    severity = []
    sev_table = table.get("severity", {})
    _check_table(sev_table, prefix + "severity", where)
    for key, value in sev_table.items():
        name = f"{prefix}severity.{_quoted(key)}"
        validate_keys([key], rules, f"{where}: {name}", families=True)
        severity.append((key, _severity(value, name, where)))

    probe = table.get("probe", {})
    _check_table(probe, prefix + "probe", where)
    _check_keys(probe, _PROBE_KEYS, prefix + "probe.", where)

    models = []
    model_table = table.get("models", {})
    _check_table(model_table, prefix + "models", where)
    for pattern, entry in model_table.items():
        name = f"{prefix}models.{_quoted(pattern)}"
        _check_table(entry, name, where)
        _check_keys(entry, _MODEL_KEYS, name + ".", where)
        models.append((pattern, ModelSettings(
            factory=_typed(entry, "factory", str, name + ".", where),
            input_shape=_shape(entry.get("input-shape"), name + ".input-shape", where),
            optimizer=_typed(entry, "optimizer", str, name + ".", where),
            lr=_positive(entry, "lr", float, name + ".", where),
            loss=_loss(entry, name + ".", where),
            gradient_clip_val=_positive(entry, "gradient-clip-val", float, name + ".", where),
        )))

    output_format = _typed(table, "output-format", str, prefix, where)
    if output_format is not None and output_format not in FORMAT_NAMES:
        raise UsageError(f"{where}: {prefix}output-format: {output_format!r} is not one of "
                         f"{', '.join(FORMAT_NAMES)}")
    fail_on = table.get("fail-on")
    baseline = _typed(table, "baseline", str, prefix, where)
    timeout = _typed(table, "timeout", float, prefix, where)
    if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
        raise UsageError(f"{where}: {prefix}timeout must be a number of seconds (0: no limit), not {timeout!r}")
    max_memory = _typed(table, "max-memory", str, prefix, where)
    if max_memory is not None:
        try:
            max_memory = parse_size(max_memory)
        except ValueError as error:
            raise UsageError(f"{where}: {prefix}max-memory: {error}") from None
    return Config(
        path=os.path.abspath(path),
        select=selectors("select"),
        extend_select=selectors("extend-select") or (),
        ignore=selectors("ignore") or (),
        external=tuple(v.upper() for v in _strings(table.get("external", []), prefix + "external", where)),
        per_file_ignores=tuple(per_file),
        severity=tuple(severity),
        fail_on=None if fail_on is None else _severity(fail_on, prefix + "fail-on", where),
        fail_risk=_fail_risk(table, prefix, where),
        output_format=output_format,
        baseline=os.path.join(root, baseline) if baseline else None,
        batch_size=_positive(probe, "batch-size", int, prefix + "probe.", where),
        seed=_seed(probe, prefix + "probe.", where),
        device=_typed(probe, "device", str, prefix + "probe.", where),
        thorough=_typed(probe, "thorough", bool, prefix + "probe.", where),
        models=tuple(models),
        jobs=_positive(table, "jobs", int, prefix, where),
        timeout=timeout,
        max_memory=max_memory,
        exclude=tuple(_strings(table["exclude"], prefix + "exclude", where)) if "exclude" in table else None,
        extend_exclude=tuple(_strings(table.get("extend-exclude", []), prefix + "extend-exclude", where)),
        force_exclude=_typed(table, "force-exclude", bool, prefix, where),
        respect_gitignore=_typed(table, "respect-gitignore", bool, prefix, where),
    )


def _tool_table(document: dict) -> dict:
    tool = document.get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _read_toml(path: str) -> dict:
    try:
        return tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{display_path(path)}: invalid TOML: {error}") from None


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{display_path(path)}: cannot read the config: {error}") from None


def _check_table(value: Any, name: str, where: str) -> None:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {name} must be a table, not {_type(value)}")


def _check_keys(table: dict, allowed: Sequence[str], prefix: str, where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key.replace("_", "-"), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (expected one of: {', '.join(allowed)})"
            raise UsageError(f"{where}: unknown key {prefix}{key}{hint}")


def _strings(value: Any, name: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: {name} must be a list of strings, not {_type(value)}")
    return value


def _typed(table: dict, key: str, kind: type, prefix: str, where: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise UsageError(f"{where}: {prefix}{key} must be {_KIND_NAMES[kind]}, not {_type(value)}")
    return value


def _positive(table: dict, key: str, kind: type, prefix: str, where: str) -> Any:
    value = _typed(table, key, kind, prefix, where)
    if value is None:
        return None
    # TOML spells nan and inf as floats: an lr or a clipping value of either is no setting.
    if kind is float and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{where}: {prefix}{key} must be a positive finite number, not {value!r}")
    if value <= 0:
        raise UsageError(f"{where}: {prefix}{key} must be positive, not {value!r}")
    return value


def _fail_risk(table: dict, prefix: str, where: str) -> float | None:
    value = _typed(table, "fail-risk", float, prefix, where)
    if value is not None and not valid_fail_risk(value):
        raise UsageError(f"{where}: {prefix}fail-risk must be a probability above 0 and at most 1, not {value!r}")
    return value


def valid_fail_risk(value: float) -> bool:
    """A risk threshold: a probability above 0 (a threshold of 0 would fail every model that has
    a risk at all) and at most 1 (the highest risk there is)."""
    return math.isfinite(value) and 0 < value <= 1


# torch.manual_seed (and torch.Generator.manual_seed) take any 64-bit integer, unsigned or
# signed, and wrap a negative one around 2**64 (-1 seeds as 2**64 - 1); beyond, they raise.
SEED_LIMIT = 2**64


def _seed(table: dict, prefix: str, where: str) -> int | None:
    """A seed torch.manual_seed takes as written: it would wrap a negative one around to another
    number, and raise on one of 2**64 or more."""
    value = _typed(table, "seed", int, prefix, where)
    if value is not None and not 0 <= value < SEED_LIMIT:
        raise UsageError(f"{where}: {prefix}seed must be an integer from 0 to 2**64 - 1 (torch.manual_seed's "
                         f"range), not {value!r}")
    return value


def _shape(value: Any, name: str, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise UsageError(f"{where}: {name} must be a list of positive integers such as [8, 3, 32, 32]")
    return tuple(value)


def _loss(table: dict, prefix: str, where: str) -> str | None:
    value = _typed(table, "loss", str, prefix, where)
    if value is not None and value not in LOSSES:
        raise UsageError(f"{where}: {prefix}loss: {value!r} is not one of {', '.join(LOSSES)}")
    return value


def _severity(value: Any, name: str, where: str) -> Severity:
    if not isinstance(value, str):
        raise UsageError(f"{where}: {name} must be \"error\", \"warning\" or \"info\", not {_type(value)}")
    try:
        return Severity.parse(value)
    except ValueError as error:
        raise UsageError(f"{where}: {name}: {error}") from None


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _type(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _quoted(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else f'"{key}"'


def _key_line(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith((f'"{key}"', f"'{key}'")):
            return number
    return 1


_SIZE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[KMGT]?)(?:I?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a memory size such as "8GB", "512M", "1.5g" or "4096" (units are binary, as
    Docker's --memory and the kernel count them). Raises ValueError with the expected form."""
    match = _SIZE.fullmatch(text.strip())
    size = float(match["number"]) * _UNITS[match["unit"].upper()] if match else 0
    if size < 1:
        raise ValueError(f"{text!r} is not a memory size such as 8GB or 512MB")
    return int(size)
