"""Suppressions: inline comments and config ignores, and the report of those that matched nothing.

In a .py file, on the statement that constructs the offending layer (or the `class` line, for
findings about the whole model):

    self.fc = nn.Linear(64, 64)  # noqa: GL201               flake8's form; other tools' codes are left alone
    self.fc = nn.Linear(64, 64)  # gradlint: ignore[GL201]   codes, prefixes or rule names; bare: all
    # gradlint: ignore[GL201]      on its own line: the next statement
    # gradlint: noqa               on its own line: the file is not linted
    # gradlint: noqa: GL201        on its own line: these codes, in the whole file

A comment anywhere on a multi-line statement covers all of its lines. A bare `# noqa` is meant for
flake8 or ruff and does not silence gradlint. ONNX files hold no comments: their findings are
suppressed by node name in `per-file-ignores` ("net.onnx::/encoder/*" = ["GL201"]).

A suppression that matched nothing, or that names an unknown code, is reported as GL901
(unused-suppression), as ruff's RUF100 does, so stale ones do not pile up. A code is judged unused
only when its rules ran on the model (not under --no-probe for probe rules, say).
"""

from __future__ import annotations

import fnmatch
import functools
import io
import os
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gradlint import sources
from gradlint.config import PathIgnore
from gradlint.findings import Finding, Fix, Location, Severity
from gradlint.locations import display_path
from gradlint.registry import all_rules, prefixes, rule_by_code
from gradlint.rule import Rule

UNUSED_CODE, UNUSED_NAME = "GL901", "unused-suppression"
_NOQA = re.compile(r"#\s*noqa(?::\s?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_GRADLINT = re.compile(r"#\s*gradlint:\s*(?P<kind>ignore|noqa)\b"
                       r"(?:\[(?P<bracket>[^\]]*)\]|:\s?(?P<colon>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?",
                       re.IGNORECASE)


@dataclass(frozen=True)
class SuppressionConfig:
    """The suppression settings of one lint: from the config file and --ignore-noqa."""

    inline: bool = True
    ignores: tuple[PathIgnore, ...] = ()
    external: tuple[str, ...] = ()  # codes of rules not installed here that comments may name


@dataclass
class Directive:
    """One suppression comment and what it covers."""

    path: str
    location: Location
    text: str  # as written, e.g. "# noqa: GL201"
    codes: tuple[str, ...] | None  # None: every gradlint code
    first: int = 0  # covered lines, inclusive; 0: the whole file
    last: int = 0
    used: set[str] = field(default_factory=set)

    @property
    def file_level(self) -> bool:
        return self.first == 0

    def covers(self, finding: Finding) -> bool:
        if not self.file_level and not self.first <= finding.location.line <= self.last:
            return False
        if self.codes is None:
            if finding.code == UNUSED_CODE and finding.location == self.location:
                return False  # a blanket comment cannot hide the report that it is unused
            self.used.add("*")
            return True
        hit = [entry for entry in self.codes if _names(entry, finding.code, finding.name)]
        self.used.update(hit)
        return bool(hit)


def apply(findings: Sequence[Finding], path: str, source_format: str, ran: Sequence[type[Rule]],
          config: SuppressionConfig) -> list[Finding]:
    """The findings no suppression covers, plus GL901 findings for the model file's (`path`)
    suppressions that matched nothing, when GL901 ran."""
    path = display_path(path)
    directives = {}
    if config.inline:  # comments live in .py files; ONNX findings point at the .onnx file
        for file in {f.location.path for f in findings} | ({path} if source_format == "python" else set()):
            if file.endswith(".py"):
                directives[file] = parse_file(file)
    ignores = config.ignores
    used_ignores: set[int] = set()

    def suppressed(finding: Finding) -> bool:
        hits = [d.covers(finding) for d in directives.get(finding.location.path, ())]  # no short-circuit: mark all
        for index, entry in enumerate(ignores):
            if _ignores(entry, finding, path):
                used_ignores.add(index)
                hits.append(True)
        return any(hits)

    kept = [f for f in findings if not suppressed(f)]
    if not any(rule.code == UNUSED_CODE for rule in ran):
        return kept
    comments = directives.get(path, ())
    unused = [*_unused_comments(comments, ran, config.external), *_unused_ignores(ignores, used_ignores, path, ran)]
    kept += [f for f in unused if not suppressed(f)]
    # Last, entries naming GL901 itself: used only if they silenced one of the findings above.
    return kept + list(_unused_comments(comments, ran, config.external, about_unused=True))


def file_exempt(path: str) -> bool:
    """True when the file says `# gradlint: noqa` on a line of its own: it is not linted at all."""
    return any(d.file_level and d.codes is None for d in parse_file(path))


def parse_file(path: str) -> list[Directive]:
    """The file's suppression directives (fresh objects: they record their own use)."""
    try:
        stat = os.stat(path)
    except OSError:
        return []
    return [replace(d, used=set()) for d in _parse_cached(path, stat.st_mtime_ns, stat.st_size)]


@functools.lru_cache(maxsize=256)
def _parse_cached(path: str, _mtime: int, _size: int) -> tuple[Directive, ...]:
    """A file that cannot be read or decoded as Python source has no directives: the loader
    reports why when the file is linted, and a directory scan must not fail on it."""
    try:
        source = sources.read_python_source(path)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (sources.SourceError, SyntaxError, tokenize.TokenError):
        return ()
    return tuple(_directives(tokens, path))


def _directives(tokens: list[tokenize.TokenInfo], path: str) -> list[Directive]:
    """Walk the tokens by logical line: a statement's comments cover all of its physical lines;
    on a line of its own, `# gradlint: ignore` covers the next statement and `# gradlint: noqa`
    the file."""
    found: list[Directive] = []
    statement: list[Directive] = []  # directives of the statement being read
    waiting: list[Directive] = []  # own-line ignores for the next statement
    start = None
    for token in tokens:
        if token.type == tokenize.COMMENT:
            own_line = not token.line[:token.start[1]].strip() and start is None
            for directive, scope in _parse_comment(token, path):
                if not own_line:
                    statement.append(directive)
                elif scope == "file":
                    found.append(directive)
                elif scope == "next":
                    waiting.append(directive)
                else:  # flake8: a noqa comment covers its own line, here none
                    directive.first = directive.last = directive.location.line
                    found.append(directive)
        elif token.type == tokenize.NEWLINE:
            for directive in (*statement, *waiting):
                directive.first, directive.last = start or token.start[0], token.start[0]
                found.append(directive)
            statement, waiting, start = [], [], None
        elif token.type == tokenize.ENDMARKER:
            for directive in waiting:  # an own-line ignore with no statement after it covers nothing
                directive.first = directive.last = directive.location.line
                found.append(directive)
        elif token.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING) and start is None:
            start = token.start[0]
    return found


def _parse_comment(token: tokenize.TokenInfo, path: str):
    """(directive, scope when on a line of its own: file, next or self) for each suppression in a comment."""
    line, col = token.start
    for match in _GRADLINT.finditer(token.string):
        codes = match.group("bracket") if match.group("bracket") is not None else match.group("colon")
        entries = tuple(_split(codes)) if codes is not None else None
        location = Location(display_path(path), line, col + match.start() + 1)
        scope = "file" if match.group("kind").lower() == "noqa" else "next"
        yield Directive(path, location, match.group(0).strip(), entries or None), scope
    for match in _NOQA.finditer(token.string):
        ours = tuple(c for c in _split(match.group("codes") or "") if c.startswith(_prefixes()))
        if ours:  # a bare `# noqa`, or one naming only other tools' codes, is not for gradlint
            location = Location(display_path(path), line, col + match.start() + 1)
            yield Directive(path, location, match.group(0).strip(), ours), "self"


def _prefixes() -> tuple[str, ...]:
    """The code prefixes of every installed rule package: a `# noqa: XT101` is for gradlint when
    a plugin registered XT."""
    return prefixes()


def _split(codes: str) -> list[str]:
    return [part.upper() if re.fullmatch(r"[A-Za-z]+[0-9]*", part) else part.lower()
            for part in re.split(r"[,\s]+", codes) if part]


def _names(entry: str, code: str, name: str) -> bool:
    """A suppression entry names a rule by code prefix (flake8) or kebab name."""
    return code.startswith(entry.upper()) or entry.lower() == name


def _ignores(entry: PathIgnore, finding: Finding, model_path: str) -> bool:
    if not any(_names(code, finding.code, finding.name) for code in entry.codes):
        return False
    if entry.module is not None:
        return entry.matches_path(model_path) and fnmatch.fnmatchcase(finding.module, entry.module)
    # By the file the finding points at (on the model's own file, the ignored rules did not even run).
    return entry.matches_path(finding.location.path)


def _unused_comments(directives: Sequence[Directive], ran: Sequence[type[Rule]], external: Sequence[str],
                     about_unused: bool = False):
    """GL901 findings for comments whose entries matched nothing or name unknown codes. Entries
    naming GL901 itself are judged apart (`about_unused`), once the other GL901 findings had their
    chance to be silenced by them."""
    known, ran_codes = all_rules(), {r.code for r in ran}
    for directive in directives:
        if directive.codes is None:
            if not about_unused and "*" not in directive.used and {r.code for r in known} <= ran_codes:
                yield _unused(directive.location, f"unused blanket `{directive.text}`", "remove the comment")
            continue
        entries = [e for e in directive.codes if _names(e, UNUSED_CODE, UNUSED_NAME) == about_unused]
        unknown = [e for e in entries if not any(_names(e, r.code, r.name) for r in known)
                   and not e.startswith(tuple(external))]
        unused = [e for e in entries if e not in directive.used and e not in unknown and _judged(e, known, ran_codes)]
        if unknown or unused:
            parts = [f"{label}: {', '.join(codes)}" for label, codes in (("unused", unused), ("unknown", unknown))
                     if codes]
            kind = "file-level " if directive.file_level else ""
            everything = len(unused) + len(unknown) == len(directive.codes)
            yield _unused(directive.location, f"unused {kind}`{directive.text}` ({'; '.join(parts)})",
                          "remove the comment" if everything else f"remove {', '.join(unused + unknown)} from it")


def _unused_ignores(ignores: Sequence[PathIgnore], used: set[int], model_path: str, ran: Sequence[type[Rule]]):
    """Config ignores for the modules of one named file are judged like comments; globs over many
    files are not (another file may need them)."""
    known, ran_codes = all_rules(), {r.code for r in ran}
    for index, entry in enumerate(ignores):
        if index in used or entry.module is None or not entry.names_one_file or entry.location is None \
                or not entry.matches_path(model_path):
            continue
        if all(_judged(code, known, ran_codes) for code in entry.codes):
            yield _unused(entry.location, f'unused per-file-ignores entry "{entry.key}" '
                          f'(unused: {", ".join(entry.codes)})', "remove the entry")


def _judged(entry: str, known: Sequence[type[Rule]], ran_codes: set[str]) -> bool:
    """An entry can be called unused only when it names installed rules and all of them ran."""
    named = [r.code for r in known if _names(entry, r.code, r.name)]
    return bool(named) and all(code in ran_codes for code in named)


def _unused(location: Location, message: str, fix: str) -> Finding:
    rule = rule_by_code(UNUSED_CODE)
    return Finding(code=UNUSED_CODE, name=UNUSED_NAME, severity=rule.severity if rule else Severity.WARNING,
                   message=message, location=location, fix=Fix(fix))
