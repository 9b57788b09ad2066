"""Input from outside the process, read with bounds: files, JSON and TOML documents, values.

Everything vmbspec reads from a user (replay files, traces, suppression files, command-line
values) enters through here, so that a bad input becomes one :class:`InputError` that says
what was wrong and where, and never a traceback, a silent wrong answer or a verdict against
the target. The bounds:

* a file is read up to ``max_bytes`` and no further (``/dev/zero`` is refused, not read);
* a document nests at most :data:`MAX_DEPTH` containers deep;
* an integer literal has at most :data:`MAX_INT_DIGITS` digits (a u64 has 20);
* ``NaN``, ``Infinity`` and ``-Infinity``, which Python's ``json`` accepts, are refused;
* a value has the type the caller asked for (``True`` is not an integer here, ``4096.0``
  neither).

The remote protocol has its own reader in ``adapters.remote``: targets import nothing from
the suite.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

#: The deepest nesting any vmbspec document needs is about 5 (steps, an MDL chain, its PFNs).
MAX_DEPTH = 64
#: Digits in an integer literal: a u64 has 20; anything much longer is not a size or a PFN.
MAX_INT_DIGITS = 40
#: The default cap on a file read whole (replay files, traces and suppressions are far smaller).
MAX_FILE_BYTES = 64 * 1024 * 1024


class InputError(ValueError):
    """Input from outside that vmbspec cannot use; the text says what and where."""


def read_bytes(path: Path | str, what: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The contents of ``path``, refusing a file larger than ``max_bytes`` without reading it
    all (a device such as ``/dev/zero`` never ends)."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except FileNotFoundError as error:
        raise InputError(f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise InputError(f"{path}: is a folder, not a {what}") from error
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what}: {error.strerror or error}") from error
    if len(data) > max_bytes:
        raise InputError(f"{path}: larger than {max_bytes} bytes: not a {what}")
    return data


def decode_text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{where}: not UTF-8 text (byte {error.start})") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(literal)


def check_depth(document: Any, where: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a document nested deeper than ``max_depth`` (checked without recursion)."""
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth >= max_depth:
            raise InputError(f"{where}: nested deeper than {max_depth} levels")
        pending.extend((child, depth + 1) for child in children)


def parse_json(text: str | bytes, where: str, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON document, bounded in depth and integer length, without NaN or Infinity."""
    if isinstance(text, bytes):
        text = decode_text(text, where)
    try:
        document = json.loads(
            text, parse_constant=_refuse_constant, parse_int=_bounded_int
        )
    except json.JSONDecodeError as error:
        raise InputError(
            f"{where}: not valid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from error
    except RecursionError as error:
        raise InputError(f"{where}: nested deeper than {max_depth} levels") from error
    except ValueError as error:  # from the hooks above, or Python's own digit limit
        raise InputError(f"{where}: {error}") from error
    check_depth(document, where, max_depth)
    return document


def parse_toml(text: str | bytes, where: str, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A TOML document, bounded in depth."""
    if isinstance(text, bytes):
        text = decode_text(text, where)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{where}: not valid TOML: {error}") from error
    except RecursionError as error:
        raise InputError(f"{where}: nested deeper than {max_depth} levels") from error
    except ValueError as error:  # Python's own digit limit on a huge integer
        raise InputError(f"{where}: {error}") from error
    check_depth(document, where, max_depth)
    return document


def load_json_file(
    path: Path | str, what: str, max_bytes: int = MAX_FILE_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    return parse_json(read_bytes(path, what, max_bytes), str(path), max_depth)


def load_toml_file(
    path: Path | str, what: str, max_bytes: int = MAX_FILE_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    return parse_toml(read_bytes(path, what, max_bytes), str(path), max_depth)


# -- values ---------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def require_int(value: Any, where: str, low: int = 0, high: int = 0xFFFF_FFFF) -> int:
    """``value`` as an integer in ``low..high`` (booleans and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: expected an integer, found {_kind(value)}")
    if not low <= value <= high:
        raise InputError(f"{where}: {value} is out of range {low:#x}..{high:#x}")
    return value


def require_str(value: Any, where: str, max_length: int = 1 << 20) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: expected a string, found {_kind(value)}")
    if len(value) > max_length:
        raise InputError(f"{where}: a string of {len(value)} characters (at most {max_length})")
    return value


def require_list(value: Any, where: str, max_length: int = 1 << 20) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(f"{where}: expected an array, found {_kind(value)}")
    if len(value) > max_length:
        raise InputError(f"{where}: an array of {len(value)} items (at most {max_length})")
    return value


def require_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected an object, found {_kind(value)}")
    return value


def shorten(text: str, limit: int = 400) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out (for texts
    that come from outside: an agent's error message, a target's exception)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
