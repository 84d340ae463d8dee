"""Read the user's .py files safely: only regular files, never more than MAX_SOURCE_BYTES, decoded
as Python decodes them. Discovery, the suppression parser and the loader all read through here,
so a FIFO, a link to /dev/zero or a latin-1 file gets the same one-line reason everywhere.

Imports nothing heavy: a run over files without a model must not import torch.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import re
import stat
import tokenize

from gradlint.errors import LoadError
from gradlint.locations import display_path

# Hand-written model files are tens of kilobytes (the largest Hugging Face modeling files, a few
# hundred). A .py file over 4 MB is generated data (weight tables, protobuf modules, vendored
# bundles), not a model source; reading it whole for a regex or the tokenizer costs time and
# memory for nothing, so it is never read.
MAX_SOURCE_BYTES = 4 * 1024 * 1024
TOO_LARGE = f"larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MB: not a model source file"
NULL_BYTES = "not Python source: source code cannot contain null bytes (a binary or UTF-16 file?)"
UTF16 = "not Python source: a UTF-16 file (Python reads UTF-8, or the encoding a PEP 263 coding line names)"

# PEP 263's coding line, as the tokenizer recognises it on line 1 or 2.
_CODING_LINE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")
# How Python's own SyntaxError messages begin when the bytes, not the syntax, are at fault.
_ENCODING_ERRORS = ("(unicode error)", "unknown encoding", "encoding problem")
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class SourceError(LoadError):
    """A source file that cannot be read, or that is no Python source; the message is the reason."""


class NotAFile(SourceError):
    """Something is at the path, but not a file gradlint reads (a FIFO, a device, a file over
    MAX_SOURCE_BYTES): a directory scan passes over it, while a path named explicitly is an error."""


def file_problem(path: str) -> str | None:
    """Why `path` is not a regular file, from its metadata alone; None when it is one. Symbolic
    links are followed: a link to a regular file is one."""
    try:
        check_regular_file(path)
    except SourceError as error:
        return str(error)
    return None


def source_problem(path: str) -> str | None:
    """Why `path` cannot be a model source file, without reading it: file_problem, or too large."""
    try:
        check_source_file(path)
    except SourceError as error:
        return str(error)
    return None


def check_regular_file(path: str) -> None:
    """SourceError unless `path` leads to a regular file: NotAFile for a FIFO or a device."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise SourceError(_os_reason(error, path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise NotAFile(_not_regular(info.st_mode))


def check_source_file(path: str) -> None:
    """check_regular_file, and NotAFile for a file too large to be a model source."""
    check_regular_file(path)
    if os.path.getsize(path) > MAX_SOURCE_BYTES:
        raise NotAFile(TOO_LARGE)


def read_source(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_SOURCE_BYTES, or SourceError. Never blocks on a
    FIFO and never reads a device: the file is checked before it is opened, and the open file is
    checked again in case it was replaced in between."""
    check_source_file(path)
    # O_NONBLOCK: opening a FIFO that replaced the file since the check returns at once.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise SourceError(_os_reason(error, path)) from None
    with open(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFile(_not_regular(mode))
        data = handle.read(MAX_SOURCE_BYTES + 1)  # bounded even if the file grew since the check
    if len(data) > MAX_SOURCE_BYTES:
        raise NotAFile(TOO_LARGE)
    return data


def python_source(data: bytes) -> str:
    """The text Python compiles from these bytes, or SourceError naming why it cannot: the PEP 263
    coding line's encoding if there is one, else UTF-8; no null bytes."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceError(UTF16)
    if b"\0" in data:
        raise SourceError(NULL_BYTES)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        # Refused: a coding line naming no known encoding, or, without one, a first line that
        # is no UTF-8 (the tokenizer reads it as UTF-8 to look for a coding line).
        if _declares_encoding(data) or _is_utf8(data):
            raise SourceError(f"bad PEP 263 coding line: {error}") from None
        raise SourceError(_undecodable(data, "utf-8", declared=False)) from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise SourceError(_undecodable(data, encoding, _declares_encoding(data))) from None
    except LookupError as error:  # a codec that is no text encoding (rot13)
        raise SourceError(f"bad PEP 263 coding line: {error}") from None


def read_python_source(path: str) -> str:
    """read_source, then python_source: the file's text, or SourceError with the reason."""
    return python_source(read_source(path))


def syntax_error_message(error: SyntaxError) -> str:
    """One line for a SyntaxError that importing a file raised. Python reports bytes that are no
    source at all (null bytes) with no line, and undecodable bytes as a "(unicode error)": both
    are named here for what they are, with the file when Python says which."""
    if error.lineno is None and "null bytes" in str(error.msg):
        return NULL_BYTES
    if str(error.msg).startswith(_ENCODING_ERRORS) and error.filename and os.path.isfile(error.filename):
        try:
            read_python_source(error.filename)
        except SourceError as reason:
            return f"{display_path(error.filename)}: {reason}"
    if error.lineno is None:
        return f"syntax error: {error.msg}"
    return f"syntax error at line {error.lineno}: {error.msg}"


def text_for_scan(data: bytes) -> str:
    """The text for a cheap regex check, never failing: undecodable bytes become U+FFFD (the
    loader reports them if the file is linted)."""
    try:
        return python_source(data)
    except SourceError:
        return data.decode("utf-8", errors="replace")


def _declares_encoding(data: bytes) -> bool:
    return any(_CODING_LINE.match(line) for line in data.split(b"\n", 2)[:2])


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _undecodable(data: bytes, encoding: str, declared: bool) -> str:
    """`cannot decode as UTF-8 (byte 0xe9 at line 3) and no PEP 263 coding line`, for the first
    byte that `encoding` rejects."""
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        name, encoding = "UTF-8", "utf-8"
        data = data.removeprefix(codecs.BOM_UTF8)  # offsets past the byte-order mark; no line moves
    else:
        name = encoding
    try:
        data.decode(encoding)
    except UnicodeDecodeError as error:
        byte, line = data[error.start], data.count(b"\n", 0, error.start) + 1
    where = f"byte 0x{byte:02x} at line {line}"
    if declared:
        return f"cannot decode as {name} ({where}), the encoding its PEP 263 coding line names"
    return f"cannot decode as {name} ({where}) and no PEP 263 coding line"


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "an unknown kind of file")
    return f"not a regular file ({kind})"


def _os_reason(error: OSError, path: str) -> str:
    """`no such file or directory`, `symbolic link loop`, `broken symbolic link ...`, or the
    system's own words."""
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if error.errno == errno.ENOENT and os.path.islink(path):
        return "broken symbolic link (what it points to does not exist)"
    return (error.strerror or type(error).__name__).lower()
