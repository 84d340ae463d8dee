"""The `gradlint` command: a thin shell over the engine. Exit codes follow ruff: 0 clean,
1 findings at or above --fail-on, 2 usage errors or targets that failed to load."""

from __future__ import annotations

import sys

import click

from gradlint import __version__
from gradlint.emit import FORMATS
from gradlint.errors import UsageError
from gradlint.findings import Severity, Stage

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _shape(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(part) for part in value.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a shape such as 8,3,32,32") from None
    if not shape or any(size <= 0 for size in shape):
        raise click.BadParameter(f"{value!r} is not a shape such as 8,3,32,32")
    return shape


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("paths", nargs=-1)
@click.option("--format", "--output-format", "output_format", type=click.Choice(sorted(FORMATS)), default="concise",
              show_default=True, help="Output format.")
@click.option("--select", multiple=True, metavar="CODES", help="Rules to run, by code prefix or name (GL1, GL201).")
@click.option("--extend-select", multiple=True, metavar="CODES", help="Rules to run in addition to --select.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Rules to skip, by code prefix or name.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]), default="warning", show_default=True,
              help="Lowest severity that makes the exit code 1.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings (load errors still exit 2).")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
@click.option("--explain", metavar="CODE", help="Print a rule's documentation and exit.")
@click.option("--input-shape", metavar="SHAPE", help="Shape of a random input batch, e.g. 8,3,32,32.")
@click.option("--lr", type=float, help="Learning rate to check instead of the model file's.")
@click.option("--optimizer", metavar="NAME", help="torch.optim class to check instead of the model file's.")
@click.option("--device", default="cpu", show_default=True, help="Where the probe pass runs (cpu, cuda, cuda:1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the model, inputs and probe.")
@click.option("--no-probe", is_flag=True, help="Static rules only: do not run the model.")
@click.option("--skip-non-models", is_flag=True,
              help="Skip named .py files that define no model, as a directory scan does (for pre-commit).")
@click.option("-q", "--quiet", is_flag=True, help="Print findings and errors only.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="gradlint")
def main(paths, output_format, select, extend_select, ignore, fail_on, exit_zero, list_rules, explain, input_shape,
         lr, optimizer, device, seed, no_probe, skip_non_models, quiet, verbose) -> None:
    """Find the causes of exploding gradients in PyTorch and ONNX models before training.

    PATHS are model files (.py, .onnx), directories, file.py::NAME or pkg.module:NAME.
    """
    try:
        code = _run(paths, output_format, select, extend_select, ignore, fail_on, exit_zero, list_rules, explain,
                    _shape(input_shape), lr, optimizer, device, seed, no_probe, skip_non_models, quiet, verbose)
    except UsageError as error:
        click.echo(f"gradlint: error: {error}", err=True)
        code = EXIT_ERROR
    sys.exit(code)


def _run(paths, output_format, select, extend_select, ignore, fail_on, exit_zero, list_rules, explain, input_shape,
         lr, optimizer, device, seed, no_probe, skip_non_models, quiet, verbose) -> int:
    from gradlint import discover
    from gradlint.engine import Settings, lint_target
    from gradlint.load import Overrides
    from gradlint.registry import all_rules
    from gradlint.selection import Selection, parse_selectors

    if list_rules:
        click.echo(_rule_table(all_rules()), nl=False)
        return EXIT_CLEAN
    if explain:
        click.echo(_explanation(explain), nl=False)
        return EXIT_CLEAN
    if not paths:
        raise UsageError("no paths given (try `gradlint samples/` or `gradlint --help`)")

    selection = Selection(select=parse_selectors(select) or ("ALL",), extend_select=parse_selectors(extend_select),
                          ignore=parse_selectors(ignore))
    settings = Settings(rules=tuple(selection.apply(all_rules())), device=device, seed=seed, probe=not no_probe)
    overrides = Overrides(input_shape=input_shape, lr=lr, optimizer=optimizer, seed=seed)
    targets = discover.expand(list(paths), skip_non_models=skip_non_models)
    reports = [lint_target(target, settings, overrides, verbose) for target in targets]
    click.echo(FORMATS[output_format](reports, quiet=quiet), nl=False)
    return exit_code(reports, Severity(fail_on), exit_zero)


def exit_code(reports, fail_on: Severity, exit_zero: bool) -> int:
    if any(r.error is not None for r in reports):
        return EXIT_ERROR
    if exit_zero:
        return EXIT_CLEAN
    failing = any(f.severity.rank >= fail_on.rank for r in reports for f in r.findings)
    return EXIT_FINDINGS if failing else EXIT_CLEAN


def _rule_table(rules) -> str:
    lines = [f"{'code':<6} {'name':<34} {'severity':<8} {'needs':<6} summary"]
    for rule in rules:
        needs = max(rule.stages, key=list(Stage).index).value
        lines.append(f"{rule.code:<6} {rule.name:<34} {rule.severity.value:<8} {needs:<6} {rule.summary()}")
    return "\n".join(lines) + "\n"


def _explanation(code: str) -> str:
    from gradlint.registry import rule_by_code

    rule = rule_by_code(code)
    if rule is None:
        raise UsageError(f"unknown rule {code!r} (see gradlint --list-rules)")
    stages = ", ".join(s.value for s in Stage if s in rule.stages)
    header = [f"# {rule.name} ({rule.code})", "",
              f"Family: {rule.family}. Default severity: {rule.severity.value}. Needs: {stages}.", ""]
    examples = []
    for title, sources in (("Triggering model", rule.INVALID), ("Healthy twin", rule.VALID)):
        for source in sources[:1]:
            examples += [f"## {title}", "", "```python", source.strip("\n"), "```", ""]
    return "\n".join(header) + "\n" + rule.doc() + "\n\n" + "\n".join(examples).rstrip("\n") + "\n"
