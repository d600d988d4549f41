"""IM credentials: the auth-file format (one ``id = X; type = T; key = value`` entry per line).

Called by the IM client (to build the ``Authorization`` header), by ``deployer.lifecycle.credentials``
(auth files and the generated local credentials) and by the cloud-profiles adapter (entries built from
profiles). The rules mirror how the IM (2.0, ``IM.auth.Authentication.read_auth_data``) reads these
lines back, so that what we write round-trips:

- a line is split on ``;`` outside single or double quotes, then each part on ``=`` outside quotes;
  the quote characters themselves are dropped, so ``'a;b'`` and ``"x=="`` protect ``;`` and ``=``;
- keys and values are stripped; a literal backslash-n inside a value means a newline (private keys);
- ``file(/path)`` as a value means "the contents of that file": resolved here, on the client side,
  relative to the auth file's folder, the way im_client does it;
- a file may instead hold a JSON list of objects (the IM accepts that too);
- in the HTTP header the lines are joined with backslash-n and newlines inside values become
  backslash-backslash-n.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from deployer.errors import UserError

# The IM's two separators in the Authorization header (two and three characters).
HEADER_LINE_SEPARATOR = "\\n"
HEADER_NEWLINE_IN_VALUE = "\\\\n"
# Inside an auth-file line, a newline in a value is written as backslash-n.
FILE_NEWLINE_IN_VALUE = "\\n"

# Field names whose values are credentials. Matched exactly or as a ``_suffix`` (``client_secret``).
_SECRET_NAMES = ("password", "token", "secret", "key", "proxy", "certificate", "credentials")
_ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_FILE_VALUE = re.compile(r"^file\((?P<path>.+)\)$")


def _is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(lowered == word or lowered.endswith("_" + word) for word in _SECRET_NAMES)


def _quote(value: str) -> str:
    """Write ``value`` so that the IM's quote-aware splitter gives it back unchanged.

    Quotes are needed around ``;``, ``=`` and quote characters, for the empty value, and to keep a
    trailing backslash from merging with the header's line separator. A value holding both quote kinds
    is written as adjacent segments (``'a"b'"c'd"``), which the IM concatenates.
    """
    needs_quotes = not value or any(ch in value for ch in ";='\"") or value.endswith("\\")
    if not needs_quotes:
        return value
    segments: list[str] = []
    current = ""
    for ch in value:
        # A single quote can only live inside double quotes and vice versa; cut a segment when the
        # current one already holds the other kind.
        if (ch == "'" and '"' in current) or (ch == '"' and "'" in current):
            segments.append(current)
            current = ""
        current += ch
    segments.append(current)
    return "".join(f'"{seg}"' if "'" in seg else f"'{seg}'" for seg in segments)


@dataclass(frozen=True)
class AuthEntry:
    """One credential line. ``id`` is None for the IM's own line (``type = InfrastructureManager``)."""

    type: str
    id: str | None
    fields: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.type:
            raise ValueError("an auth entry needs a type")
        if self.id is not None and not _ID_PATTERN.match(self.id):
            raise ValueError(f"auth id {self.id!r} must start with a letter (letters, digits, _ . -)")
        for key in self.fields:
            if key in ("id", "type") or not _KEY_PATTERN.match(key):
                raise ValueError(f"invalid auth field name {key!r}")

    def line(self) -> str:
        """One auth-file line that the IM (and im_client) parse back into exactly this entry."""
        parts: list[tuple[str, str]] = []
        if self.id is not None:
            parts.append(("id", self.id))
        parts.append(("type", self.type))
        parts.extend(self.fields.items())
        return "; ".join(f"{key} = {_encode_value(key, value)}" for key, value in parts)

    def secret_values(self) -> list[str]:
        """The values that must never be printed, logged or stored (for ``register_secret``)."""
        return [value for key, value in self.fields.items() if _is_secret_field(key) and value]


def _encode_value(key: str, value: str) -> str:
    if value != value.strip():
        raise ValueError(f"auth field {key!r}: leading/trailing spaces cannot be represented")
    if FILE_NEWLINE_IN_VALUE in value:
        raise ValueError(f"auth field {key!r}: a literal backslash-n would be read back as a newline")
    if _FILE_VALUE.match(value):
        raise ValueError(f"auth field {key!r}: the IM would read a file(...) value as a server-side path")
    return _quote(value.replace("\n", FILE_NEWLINE_IN_VALUE))


def _split_quoted(text: str, separator: str, *, keep_quotes: bool) -> tuple[list[str], bool]:
    """Split on ``separator`` outside quotes, as the IM does. Returns (parts, quotes_balanced)."""
    parts: list[str] = []
    part = ""
    in_single = in_double = quoted = False
    for ch in text:
        if ch == '"' and not in_single:
            in_double, quoted = not in_double, True
            part += ch if keep_quotes else ""
        elif ch == "'" and not in_double:
            in_single, quoted = not in_single, True
            part += ch if keep_quotes else ""
        elif ch == separator and not in_single and not in_double:
            parts.append(part)
            part = ""
        else:
            part += ch
    if part.strip() or quoted:
        parts.append(part)
    return parts, not (in_single or in_double)


def parse_auth_text(text: str, source: str, *, base_dir: Path | None = None) -> list[AuthEntry]:
    """Parse auth-file text. ``source`` names the file in errors (``auth.dat:3: ...``).

    ``base_dir`` resolves relative ``file(...)`` values (default: the current directory).
    """
    if text.lstrip().startswith("["):
        return _parse_json_entries(text, source)
    entries: list[AuthEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        tokens, balanced = _split_quoted(line, ";", keep_quotes=True)
        if not balanced:
            raise UserError(f"{where}: unterminated quote; close the ' or \" around the value")
        values: dict[str, str] = {}
        for token in tokens:
            pieces, _ = _split_quoted(token, "=", keep_quotes=False)
            if len(pieces) != 2:
                raise UserError(
                    f"{where}: {_shorten(token)!r} is not 'key = value'; separate fields with ';' and put "
                    "values containing '=' or ';' in quotes"
                )
            key = pieces[0].strip()
            if key in values:
                raise UserError(f"{where}: field {key!r} appears twice; keep one")
            value = pieces[1].strip().replace(FILE_NEWLINE_IN_VALUE, "\n")
            values[key] = _read_file_value(value, where, base_dir)
        entries.append(_entry_from_fields(values, where))
    return entries


def _shorten(token: str) -> str:
    token = token.strip()
    # Never echo what may be a secret in full.
    return token if len(token) <= 12 else token[:12] + "..."


def _entry_from_fields(values: dict[str, str], where: str) -> AuthEntry:
    values = dict(values)
    kind = values.pop("type", "")
    if not kind:
        raise UserError(f"{where}: missing 'type = ...' (e.g. type = InfrastructureManager or OpenStack)")
    ident = values.pop("id", None)
    try:
        return AuthEntry(kind, ident, values)
    except ValueError as err:
        raise UserError(f"{where}: {err}") from None


def _parse_json_entries(text: str, source: str) -> list[AuthEntry]:
    try:
        items = json.loads(text)
    except ValueError as err:
        raise UserError(
            f"{source}: not valid JSON ({err.msg} at line {err.lineno}); fix the syntax"
        ) from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise UserError(f"{source}: a JSON auth file must be a list of objects, one per credential")
    return [
        _entry_from_fields({str(k): str(v) for k, v in item.items()}, f"{source}: entry {index}")
        for index, item in enumerate(items, start=1)
    ]


def _read_file_value(value: str, where: str, base_dir: Path | None) -> str:
    match = _FILE_VALUE.match(value)
    if not match:
        return value
    path = Path(match.group("path")).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text().strip()
    except OSError as err:
        raise UserError(f"{where}: cannot read {path} named by file(...): {err.strerror}") from None


def load_auth_file(path: Path) -> list[AuthEntry]:
    """Read an auth file (the format im_client uses). Errors name ``path:line``."""
    try:
        text = path.read_text()
    except OSError as err:
        raise UserError(f"cannot read auth file {path}: {err.strerror}; pass an existing file") from None
    entries = parse_auth_text(text, str(path), base_dir=path.parent)
    if not entries:
        raise UserError(f"{path}: no credential lines; add at least 'type = InfrastructureManager; ...'")
    return entries


def auth_header(entries: Iterable[AuthEntry]) -> str:
    """The ``Authorization`` header value: lines joined with backslash-n."""
    return HEADER_LINE_SEPARATOR.join(
        entry.line().replace(FILE_NEWLINE_IN_VALUE, HEADER_NEWLINE_IN_VALUE) for entry in entries
    )


def write_auth_file(path: Path, entries: Iterable[AuthEntry]) -> None:
    """Write entries as an auth file readable by deployer and im_client, mode 0600 from the start."""
    import os

    text = "".join(entry.line() + "\n" for entry in entries)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
