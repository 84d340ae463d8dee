"""`--show-settings`: every setting the first target is linted with, after the configuration files
and the command line are combined, in the shape of `[tool.gradlint]` (as ruff's --show-settings
answers "which settings does this file get?")."""

from __future__ import annotations

import json
import os
from typing import Any


def settings_text(plan, finder, run_config, limits, exclusions, fail_risk=None) -> str:
    """`plan` is the first target's (target, Settings, Overrides), or None when nothing is linted;
    `fail_risk` the run's risk threshold (--fail-risk, else the config's; None: off)."""
    if plan is None:
        return "No file to lint: nothing to resolve settings for.\n"
    target, settings, overrides = plan
    config = finder.for_path(target.path if target.kind != "import" else os.getcwd())
    lines = [f"Resolved settings for: {target.label}",
             f"Settings path: {config.path or 'none (the defaults)'}",
             f"Run settings path: {run_config.path or 'none (the defaults)'}",
             "",
             f"select = {_toml([rule.code for rule in settings.rules])}",
             f"severity = {_toml(dict(settings.severities))}",
             f"fail-on = {_toml((run_config.fail_on.value if run_config.fail_on else 'warning'))}",
             f"fail-risk = {_toml(fail_risk)}",
             f"output-format = {_toml(run_config.output_format or 'concise')}",
             f"baseline = {_toml(run_config.baseline)}",
             f"exclude = {_toml(list(exclusions.patterns))}",
             f"force-exclude = {_toml(exclusions.force)}",
             f"respect-gitignore = {_toml(exclusions.respect_gitignore)}",
             f"jobs = {_toml(run_config.jobs)}",
             f"timeout = {_toml(limits.timeout or 0)}",
             f"max-memory = {_toml(limits.max_memory)}",
             f"inline-suppressions = {_toml(settings.suppressions.inline)}",
             "",
             "[probe]",
             f"run = {_toml(settings.probe)}",
             f"device = {_toml(settings.device)}",
             f"seed = {_toml(settings.seed)}",
             f"thorough = {_toml(settings.thorough)}",
             f"batch-size = {_toml(overrides.batch_size)}",
             "",
             "[model]",
             f"factory = {_toml(target.name)}",
             f"input-shape = {_toml(list(overrides.input_shape) if overrides.input_shape else None)}",
             f"optimizer = {_toml(overrides.optimizer)}",
             f"lr = {_toml(overrides.lr)}",
             f"loss = {_toml(overrides.loss)}",
             f"gradient-clip-val = {_toml(overrides.gradient_clip_val)}"]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A value as TOML writes it; a setting left to the model file or the default is `none`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml(v.value if hasattr(v, 'value') else v)}"
                               for key, v in value.items()) + "}"
    return json.dumps(value)
