"""The `gradlint` command: a thin shell over the engine. Exit codes follow ruff: 0 clean,
1 findings at or above --fail-on, 2 usage errors or targets that failed to load."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
from dataclasses import replace

import click

from gradlint import __version__, baseline as baselines, discover, runner, suppress
from gradlint.config import (
    CliOptions, ConfigFinder, ModelSettings, parse_size, resolve_rules, resolve_severities, valid_fail_risk,
    validate_keys,
)
from gradlint.emit import FORMATS, statistics as stats, streaming, suggestions
from gradlint.emit.style import PLAIN, palette_for
from gradlint.engine import Settings, active_rules
from gradlint.errors import UsageError
from gradlint.findings import ModelReport, Severity, Stage
from gradlint.overrides import Overrides
from gradlint.losses import LOSSES
from gradlint.progress import Progress
from gradlint.registry import all_rules, clashes, rule_by_code
from gradlint.selection import parse_selectors
from gradlint.show import settings_text
from gradlint.worker import Job

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
# 128 + the signal's number, as shells report a command that a signal stopped: Ctrl-C's SIGINT,
# and the SIGTERM a cancelled CI job sends.
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def _shape(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(part) for part in value.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(size <= 0 for size in shape):
        raise UsageError(f"--input-shape {value!r} is not a shape such as 8,3,32,32")
    return shape


class _Command(click.Command):
    """click, with gradlint's one error style: `gradlint: error: ...` on stderr and exit code 2 for
    every usage error, click's own (an unknown option, a bad value) included."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as error:
            hint = " (see gradlint --help)" if isinstance(error, click.NoSuchOption) else ""
            click.echo(f"gradlint: error: {error.format_message()}{hint}", err=True)
            sys.exit(EXIT_ERROR)
        except click.Abort:  # Ctrl-C while click itself was reading options
            click.echo("gradlint: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("paths", nargs=-1)
@click.option("--output-format", "--format", "output_format", type=click.Choice(list(FORMATS)),
              help="Output format (--format is an alias).  [default: concise, or output-format in the config]")
@click.option("-o", "--output-file", metavar="FILE", help="Write the output to FILE instead of stdout.")
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule instead of the findings.")
@click.option("--suggest-lr", is_flag=True, help="Print only each model's suggested learning rate.")
@click.option("--select", multiple=True, metavar="CODES", help="Rules to run, by code prefix or name (GL1, GL201).")
@click.option("--extend-select", multiple=True, metavar="CODES", help="Rules to run in addition to --select.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Rules to skip, by code prefix or name.")
@click.option("--severity", multiple=True, metavar="CODE=LEVEL",
              help="Override the severity of rules by code, prefix, name or family (GL3=info, init=error).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]),
              help="Lowest severity that makes the exit code 1.  [default: warning]")
@click.option("--fail-risk", type=float, metavar="P",
              help="Also exit 1 when a model's risk of diverging is P or more (0 < P <= 1).  [default: off]")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings (load errors still exit 2).")
@click.option("--config", "config_path", metavar="PATH",
              help="Use this config file for every linted file (a pyproject.toml, or a TOML file with the keys "
                   "of [tool.gradlint] at its top level).")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--ignore-noqa", is_flag=True, help="Ignore suppression comments: report what they hide.")
@click.option("--baseline", "baseline_path", metavar="FILE",
              help="Hide the findings recorded in FILE: only new ones are reported and fail.")
@click.option("--write-baseline", metavar="FILE", help="Record the current findings in FILE, then hide them.")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
@click.option("--explain", metavar="CODE", help="Print a rule's documentation and exit.")
@click.option("--input-shape", metavar="SHAPE", help="Shape of a random input batch, e.g. 8,3,32,32.")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Batch size of the random batch gradlint infers for files without example_inputs().  [default: 8]")
@click.option("--lr", type=float, help="Learning rate to check instead of the model file's.")
@click.option("--optimizer", metavar="NAME", help="torch.optim class to check instead of the model file's.")
@click.option("--loss", type=click.Choice(LOSSES),
              help="Training loss for files without loss_fn (ONNX files have none).  [default: from the output]")
@click.option("--device", metavar="DEVICE", help="Where the probe pass runs (cpu, cuda, cuda:1).  [default: cpu]")
@click.option("--seed", type=int, metavar="N", help="Seed for the model, inputs and probe.  [default: 0]")
@click.option("--no-probe", is_flag=True, help="Static rules only: do not run the model.")
@click.option("--thorough", is_flag=True, help="Let rules spend extra forward/backward passes (slower).")
@click.option("--skip-non-models", is_flag=True,
              help="Skip named .py files that define no model, as a directory scan does (for pre-commit).")
@click.option("--exclude", multiple=True, metavar="GLOBS",
              help="Paths a scan passes over, replacing the defaults (.venv, build, ...); comma-separated.")
@click.option("--extend-exclude", multiple=True, metavar="GLOBS", help="Paths to pass over besides the defaults.")
@click.option("--force-exclude/--no-force-exclude", default=None,
              help="Apply the exclusions to paths named on the command line too (as pre-commit passes them).")
@click.option("--respect-gitignore/--no-respect-gitignore", default=None,
              help="Pass over files git ignores.  [default: respect]")
@click.option("--show-files", is_flag=True, help="List the files gradlint would lint, and exit.")
@click.option("--show-settings", is_flag=True, help="Print the settings the first target is linted with, and exit.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N",
              help="Targets to lint at once, each in a worker process.  [default: the CPU cores, at most the targets]")
@click.option("--timeout", type=float, metavar="SECONDS",
              help=f"Time limit per target; 0: none.  [default: {runner.DEFAULT_TIMEOUT:g}]")
@click.option("--max-memory", metavar="SIZE",
              help="Resident memory limit per target, e.g. 8GB.  [default: none; a target is stopped when the "
                   "machine runs out]")
@click.option("-q", "--quiet", is_flag=True, help="Print findings and errors only.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="gradlint")
def main(paths, **options) -> None:
    """Find the causes of exploding gradients in PyTorch and ONNX models before training.

    PATHS are model files (.py, .onnx), directories, file.py::NAME or pkg.module:NAME.
    Settings come from [tool.gradlint] in the nearest pyproject.toml; options beat it.
    """
    try:
        with _terminated_as_interrupt():
            code = _run(paths, **options)
    except UsageError as error:
        click.echo(f"gradlint: error: {error}", err=True)
        code = EXIT_ERROR
    except _Terminated:
        click.echo("gradlint: terminated", err=True)
        code = EXIT_TERMINATED
    except KeyboardInterrupt:  # the workers are gone already (runner.run's cleanup)
        click.echo("gradlint: interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _run(paths, *, output_format, output_file, statistics, suggest_lr, select, extend_select, ignore, severity,
         fail_on, fail_risk, exit_zero, config_path, isolated, ignore_noqa, baseline_path, write_baseline, list_rules,
         explain, input_shape, batch_size, lr, optimizer, loss, device, seed, no_probe, thorough, skip_non_models,
         exclude, extend_exclude, force_exclude, respect_gitignore, show_files, show_settings, jobs, timeout,
         max_memory, quiet, verbose) -> int:
    if list_rules:
        click.echo(_rule_list(all_rules(), output_format or "concise"), nl=False)
        return EXIT_CLEAN
    if explain:
        click.echo(_explanation(explain), nl=False)
        return EXIT_CLEAN
    if config_path and isolated:
        raise UsageError("--config and --isolated cannot be used together")
    if fail_risk is not None and not valid_fail_risk(fail_risk):
        raise UsageError(f"--fail-risk {fail_risk:g}: give a risk above 0 and at most 1, such as 0.5")
    finder = ConfigFinder(config_path, isolated)
    run_config = finder.for_run()
    cli = CliOptions(
        select=parse_selectors(select), extend_select=parse_selectors(extend_select), ignore=parse_selectors(ignore),
        severity=_severities(severity), device=device, seed=_seed(seed), batch_size=batch_size, thorough=thorough,
        probe=not no_probe, input_shape=_shape(input_shape), lr=_learning_rate(lr), optimizer=optimizer, loss=loss,
        inline_suppressions=not ignore_noqa)
    limits = runner.Limits(timeout=_timeout(timeout, run_config), max_memory=_max_memory(max_memory, run_config))
    paths = paths or (".",)  # as ruff: lint the working directory
    exclusions = _exclusions(run_config, exclude, extend_exclude, force_exclude, respect_gitignore)
    targets = [t for t in _targets(paths, finder, skip_non_models, exclusions)
               if not (cli.inline_suppressions and t.kind == "python" and t.error is None
                       and suppress.file_exempt(t.path))]
    if show_files:
        click.echo("".join(f"{t.label}\n" for t in targets), nl=False)
        return EXIT_CLEAN
    if targets or cli.select or cli.extend_select or cli.ignore or run_config.select or run_config.extend_select or run_config.ignore:
        # Unknown selectors are usage errors even with nothing to lint; a pre-commit run over
        # files without a model and without selectors skips loading the rules altogether.
        resolve_rules(run_config, cli, all_rules())
        for clash in clashes():
            click.echo(f"gradlint: warning: {clash}", err=True)
    plans = [_plan(target, finder, cli) for target in targets]
    if show_settings:
        click.echo(settings_text(plans[0] if plans else None, finder, run_config, limits, exclusions,
                                 _first(fail_risk, run_config.fail_risk)), nl=False)
        return EXIT_CLEAN
    ran = [{rule.code for rule in active_rules(settings)} for _, settings, _ in plans]
    fmt = output_format or run_config.output_format or "concise"
    if quiet and fmt in ("concise", "full") and not suggest_lr:  # nothing would print the suggestion
        plans = [(target, replace(settings, suggest_lr=False), overrides) for target, settings, overrides in plans]
    baseline_file = write_baseline or baseline_path or run_config.baseline
    hide = baselines.Filter(baselines.load(baseline_file), baseline_file) \
        if baseline_file and not write_baseline else None
    # Text formats print each target as it finishes; a document (JSON, SARIF), the statistics,
    # a file and a baseline still to be written need every report first.
    stream = None if statistics or suggest_lr or output_file or write_baseline else streaming(fmt)
    parallel = jobs or run_config.jobs or default_jobs(len(plans))
    reports, printed = _lint(plans, ran, parallel, limits, hide, stream, quiet=quiet, verbose=verbose)

    baseline_result = hide.result() if hide is not None else None
    if write_baseline:
        count = baselines.write(write_baseline, reports, ran)
        click.echo(f"gradlint: wrote {count} finding{'' if count == 1 else 's'} to {write_baseline}", err=True)
        reports, baseline_result = baselines.apply(baselines.load(write_baseline), write_baseline, reports, ran)
    if stream is not None:
        click.echo(stream.render_end(reports, quiet=quiet, baseline=baseline_result, first=not printed), nl=False)
    elif suggest_lr:  # for scripts: the suggestions only, and exit 2 only when a target failed to load
        _write(suggestions.render(reports), output_file)
        return EXIT_ERROR if any(r.error is not None and not r.linted for r in reports) else EXIT_CLEAN
    else:
        text = stats.render(reports, fmt) if statistics else FORMATS[fmt](reports, quiet=quiet, baseline=baseline_result)
        _write(text, output_file)
    threshold = Severity(fail_on) if fail_on else run_config.fail_on or Severity.WARNING
    return exit_code(reports, threshold, exit_zero, _first(fail_risk, run_config.fail_risk))


def _lint(plans, ran, parallel: int, limits: runner.Limits, hide, stream, *, quiet: bool, verbose: bool
          ) -> tuple[list[ModelReport], bool]:
    """Lint every planned target in workers and print each report as it comes (`stream`, a text
    format's module, or None to print nothing yet); return the reports, baseline applied, and
    whether anything was printed. With -v, the skipped files and each target's captured output
    follow its findings on stderr."""
    jobs = [Job(target, settings, overrides, verbose) for target, settings, overrides in plans]
    preload = ("gradlint.onnx",) if any(target.kind == "onnx" for target, _, _ in plans) else ()
    palette = palette_for(sys.stdout) if stream is not None else PLAIN
    reports: list[ModelReport] = []
    printed = False
    with Progress(len(jobs), enabled=not quiet and sys.stderr.isatty()) as progress, \
            contextlib.closing(runner.run(jobs, parallel, limits, preload, progress.update)) as outcomes:
        for outcome in outcomes:
            report = hide(outcome.report, ran[outcome.index]) if hide is not None else outcome.report
            reports.append(report)
            if stream is not None:
                text = stream.render_model(report, quiet=quiet, first=not printed, palette=palette)
                progress.write(text)
                printed = printed or bool(text)
            if verbose and report.skipped is not None:
                progress.write(f"{report.path}: skipped: {report.skipped}\n", err=True)
            if verbose and outcome.output:
                progress.write(_captured(report, outcome.output), err=True)
    return reports, printed


def default_jobs(targets: int) -> int:
    """One worker per usable CPU core, at most one per target."""
    return max(1, min(_cpus(), targets))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (a CI container's share)
    except AttributeError:  # macOS
        return os.cpu_count() or 1


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised like Ctrl-C's KeyboardInterrupt so that the same cleanup runs."""


@contextlib.contextmanager
def _terminated_as_interrupt():
    """SIGTERM (a cancelled CI job) ends the run the way Ctrl-C does, so the workers are killed
    too rather than left running on their own."""
    def interrupt(signum, frame):
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _captured(report: ModelReport, output: str) -> str:
    """What the model's code printed (and gradlint's traceback for it), shown with -v."""
    return f"--- {report.path}: output of the model's code ---\n{output.rstrip(chr(10))}\n--- end of output ---\n"


def _write(text: str, output_file: str | None) -> None:
    if not output_file:
        click.echo(text, nl=False)
        return
    try:
        with open(output_file, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise UsageError(f"cannot write {output_file}: {error.strerror}") from None


def _targets(paths, finder, skip_non_models: bool, exclusions: discover.Exclusions):
    """Expand the arguments; with --skip-non-models, a file named in [tool.gradlint.models] is
    still linted (it may build its model under another name)."""
    targets = []
    for argument in paths:
        path = argument.partition("::")[0]
        configured = os.path.isfile(path) and finder.for_path(path).model_settings(path) != ModelSettings()
        targets.extend(discover.expand([argument], skip_non_models and not configured, exclusions))
    return list(dict.fromkeys(targets))


def _exclusions(config, exclude, extend_exclude, force_exclude, respect_gitignore) -> discover.Exclusions:
    """The command line's exclusions over the run's config: `--exclude` (or `exclude`) replaces the
    defaults, `--extend-exclude` and `extend-exclude` add to them."""
    def globs(values) -> tuple[str, ...]:
        return tuple(g.strip() for value in values for g in value.split(",") if g.strip())

    base = globs(exclude) or config.exclude or discover.DEFAULT_EXCLUDE
    return discover.Exclusions(
        patterns=(*base, *config.extend_exclude, *globs(extend_exclude)),
        root=config.root,
        force=_first(force_exclude, config.force_exclude, False),
        respect_gitignore=_first(respect_gitignore, config.respect_gitignore, True))


def _plan(target, finder, cli):
    """The target, Settings and Overrides to lint it with: its config, overridden by the command line."""
    config = finder.for_path(target.path if target.kind != "import" else os.getcwd())
    model = config.model_settings(target.path)
    if target.kind == "python" and target.name is None and model.factory:
        target = replace(target, name=model.factory)
    seed = _first(cli.seed, config.seed, 0)
    settings = Settings(
        rules=tuple(resolve_rules(config, cli, all_rules(), None if target.kind == "import" else target.path)),
        device=cli.device or config.device or "cpu", seed=seed, probe=cli.probe,
        thorough=cli.thorough or bool(config.thorough), severities=resolve_severities(config, cli, all_rules()),
        suppressions=suppress.SuppressionConfig(inline=cli.inline_suppressions, ignores=config.per_file_ignores,
                                                external=config.external))
    overrides = Overrides(input_shape=cli.input_shape or model.input_shape, lr=_first(cli.lr, model.lr),
                          optimizer=cli.optimizer or model.optimizer, loss=cli.loss or model.loss, seed=seed,
                          batch_size=cli.batch_size or config.batch_size, gradient_clip_val=model.gradient_clip_val)
    return target, settings, overrides


def _severities(values) -> tuple[tuple[str, Severity], ...]:
    result = []
    for value in values:
        key, sep, level = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--severity {value!r}: expected CODE=LEVEL, e.g. GL3=info")
        try:
            severity = Severity.parse(level.strip())
        except ValueError as error:
            raise UsageError(f"--severity {value!r}: {error}") from None
        validate_keys([key.strip()], all_rules(), f"--severity {value!r}", families=True)
        result.append((key.strip(), severity))
    return tuple(result)


def _learning_rate(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"--lr {value:g}: the learning rate must be a positive finite number")
    return value


def _seed(value: int | None) -> int | None:
    # torch.manual_seed takes seeds in [-2**63, 2**64); gradlint's are the non-negative ones.
    if value is not None and not 0 <= value < 2**64:
        raise UsageError(f"--seed {value}: the seed must be an integer from 0 to 2**64 - 1")
    return value


def _timeout(value: float | None, config) -> float | None:
    """Seconds per target from --timeout, else the config, else the default; 0 means no limit."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise UsageError(f"--timeout {value:g}: give a number of seconds, or 0 for no limit")
    chosen = _first(value, config.timeout, runner.DEFAULT_TIMEOUT)
    return chosen or None


def _max_memory(value: str | None, config) -> int | None:
    if value is None:
        return config.max_memory
    try:
        return parse_size(value)
    except ValueError as error:
        raise UsageError(f"--max-memory: {error}") from None


def _first(*values):
    return next((v for v in values if v is not None), None)


def exit_code(reports, fail_on: Severity, exit_zero: bool, fail_risk: float | None = None) -> int:
    """With `fail_risk`, a model whose risk is at least that fails the run like a finding at
    `fail_on`; a model without a risk (it did not run, or --no-probe) cannot reach it."""
    if any(r.error is not None for r in reports):
        return EXIT_ERROR
    if exit_zero:
        return EXIT_CLEAN
    failing = any(f.severity.rank >= fail_on.rank for r in reports for f in r.findings)
    risky = fail_risk is not None and any(r.risk is not None and r.risk >= fail_risk for r in reports)
    return EXIT_FINDINGS if failing or risky else EXIT_CLEAN


def _rule_list(rules, output_format: str) -> str:
    """--list-rules: a table, or with --output-format json (or json-lines), one object per rule."""
    records = [{"code": r.code, "name": r.name, "family": r.family, "severity": r.severity.value,
                "needs": max(r.stages, key=list(Stage).index).value, "summary": r.summary()} for r in rules]
    if output_format == "json":
        return json.dumps(records, indent=2) + "\n"
    if output_format == "json-lines":
        return "".join(json.dumps(record) + "\n" for record in records)
    if output_format not in ("concise", "full"):
        raise UsageError(f"--list-rules prints concise, full, json or json-lines, not {output_format}")
    lines = [f"{'code':<6} {'name':<34} {'severity':<8} {'needs':<6} summary"]
    lines += [f"{r['code']:<6} {r['name']:<34} {r['severity']:<8} {r['needs']:<6} {r['summary']}" for r in records]
    return "\n".join(lines) + "\n"


def _explanation(code: str) -> str:
    rule = rule_by_code(code)
    if rule is None:
        raise UsageError(f"unknown rule {code!r} (see gradlint --list-rules)")
    return explanation(rule)


def explanation(rule) -> str:
    """A rule's documentation and first examples: `--explain` and the pages in docs/rules/."""
    stages = ", ".join(s.value for s in Stage if s in rule.stages)
    header = [f"# {rule.name} ({rule.code})", "",
              f"Family: {rule.family}. Default severity: {rule.severity.value}. Needs: {stages}.", ""]
    examples = []
    for title, sources in (("Triggering model", rule.INVALID), ("Healthy twin", rule.VALID)):
        for source in sources[:1]:
            examples += [f"## {title}", "", "```python", source.strip("\n"), "```", ""]
    return "\n".join(header) + "\n" + rule.doc() + "\n\n" + "\n".join(examples).rstrip("\n") + "\n"
