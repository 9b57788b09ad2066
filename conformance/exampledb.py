"""The shared failure store: every failure ``vmbspec check`` finds, replayed first by the next.

A team runs the suite against many guests, on many machines, for hours: what one run finds,
every later run should try first. The store is Hypothesis's own database interface
(``hypothesis.database.ExampleDatabase``), so any of its back ends works:

* ``--db DIR``: a :class:`~hypothesis.database.DirectoryBasedExampleDatabase` (the default is
  :data:`DEFAULT_DB`, ``.vmbspec/db`` in the current directory; ``VMBSPEC_DB`` in the
  environment changes the default; ``--db none`` uses no store);
* ``--db redis://HOST:PORT[/N]``: a :class:`~hypothesis.extra.redis.RedisExampleDatabase`
  (the ``redis`` package, Hypothesis's ``redis`` extra), shared by a fleet of machines.

Every failure is one value under the key :data:`FAILURES_KEY`: a JSON document with its
minimal replayable steps (``conformance.driver`` steps, as a replay file holds them), kind,
requirements, message, the target it was found on, the profile and the vmbspec version. Its
``id`` is a digest of the steps, so the same steps found twice are stored once.

The next ``check`` replays every stored failure on its target(s) before the cases
(``conformance.runner.KnownFailure``), reported like cases with source ``known:<id>``. A known
failure that passes is reported as passing and *kept*: the store is shared by targets that
differ (a fix on one guest says nothing about another, nor about the next build), so nothing
is dropped automatically; remove the directory (or the Redis key) to start afresh.

A value read from the store comes from outside (another version, another machine, a hand):
it is read with the bounds of ``conformance.inputs`` and its steps checked against the step
schema (``conformance.steps``); a value that fails is skipped with a warning, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from vmbspec.conformance.driver import Step
from vmbspec.conformance.inputs import InputError, parse_json, require_list, require_str
from vmbspec.conformance.runner import Failure, KnownFailure
from vmbspec.conformance.steps import check_steps

#: The one key every failure is stored under (a new format would take a new key).
FAILURES_KEY = b"vmbspec/failures/v1"
#: The store of a ``check`` given no ``--db`` (relative to the current directory).
DEFAULT_DB = ".vmbspec/db"
#: The environment variable that changes the default store.
ENVIRONMENT_VARIABLE = "VMBSPEC_DB"
#: ``--db none``: no store.
NO_DB = "none"
#: Bounds of what is read back: one value, and values under the key.
MAX_VALUE_BYTES = 16 * 1024 * 1024
MAX_FAILURES = 10_000
MAX_TEXT = 1 << 20
#: Redis keeps a value this long after it was last written (Hypothesis's default is 8 days:
#: too short for a store of what a fleet found).
REDIS_EXPIRY = timedelta(days=3650)
#: Seconds to connect to (and wait for) a Redis server before the ``--db`` is refused.
REDIS_TIMEOUT = 5.0


class DatabaseError(InputError):
    """A ``--db`` that cannot be used (a bad value, an unreachable server): a usage error."""


@dataclass
class StoredFailure:
    """One failure of the store."""

    id: str
    steps: list[Step]
    kind: str
    requirements: tuple[str, ...]
    message: str
    target: str
    profile: str
    vmbspec: str
    source: str

    def as_known(self) -> KnownFailure:
        return KnownFailure(self.id, self.steps, self.kind, self.requirements, self.target)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "requirements": list(self.requirements),
            "message": self.message, "target": self.target, "profile": self.profile,
            "vmbspec": self.vmbspec, "source": self.source, "steps": self.steps,
        }


def failure_id(steps: list[Step]) -> str:
    """The id of a failure: the first 16 hex digits of SHA-256 over its steps."""
    return hashlib.sha256(json.dumps(steps, sort_keys=True).encode()).hexdigest()[:16]


def default_db() -> str:
    """The store of a ``check`` given no ``--db``: ``$VMBSPEC_DB``, else :data:`DEFAULT_DB`."""
    return os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_DB


def open_database(text: str) -> ExampleDatabase | None:
    """The store ``--db TEXT`` names (None for ``none``); :class:`DatabaseError` saying what
    is wrong with the value otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise DatabaseError("--db: empty; give a directory or redis://HOST:PORT[/N]")
    if len(text) > 4096:
        raise DatabaseError(f"--db: {len(text)} characters is too long for a store")
    if text == NO_DB:
        return None
    if text.startswith("redis://"):
        return _open_redis(text)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise DatabaseError(
            f"--db {text}: unknown kind of store; give a directory or redis://HOST:PORT[/N]")
    return _open_directory(text)


def _open_directory(text: str) -> ExampleDatabase:
    if any(ord(character) < 0x20 for character in text):
        raise DatabaseError(f"--db {text!r}: a control character in a directory name")
    path = Path(text)
    try:
        if path.exists() and not path.is_dir():
            raise DatabaseError(f"--db {text}: not a directory")
        # Created when the first failure is stored, not before: a run that finds nothing
        # leaves no directory behind. The nearest existing folder must let it be created.
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        usable = existing.is_dir() and os.access(existing, os.R_OK | os.W_OK | os.X_OK)
    except (OSError, ValueError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise DatabaseError(f"--db {text}: {detail}") from error
    if not usable:
        raise DatabaseError(f"--db {text}: {existing} is not a directory vmbspec can read "
                            "and write")
    return DirectoryBasedExampleDatabase(path)


def parse_redis_url(text: str) -> tuple[str, int, int]:
    """``(host, port, database)`` of ``redis://HOST:PORT[/N]``."""
    usage = "expected redis://HOST:PORT[/N]"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise DatabaseError(f"--db {text}: {error}; {usage}") from error
    if not parts.hostname or port is None or port == 0:
        raise DatabaseError(f"--db {text}: {usage} (a host and a port 1..65535)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise DatabaseError(f"--db {text}: {usage}, nothing else")
    number = parts.path.removeprefix("/")
    if number and not (number.isdigit() and len(number) <= 5 and int(number) <= 65535):
        raise DatabaseError(f"--db {text}: the database number must be 0..65535, "
                            f"not {number!r}")
    return parts.hostname, port, int(number or 0)


def _open_redis(text: str) -> ExampleDatabase:
    host, port, number = parse_redis_url(text)
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError as error:
        raise DatabaseError(
            f"--db {text}: the redis package is not installed (pip install "
            f"'hypothesis[redis]')") from error
    client = redis.Redis(host=host, port=port, db=number, socket_timeout=REDIS_TIMEOUT,
                         socket_connect_timeout=REDIS_TIMEOUT)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        raise DatabaseError(f"--db {text}: cannot reach the Redis server at {host}:{port}: "
                            f"{error}") from error
    return RedisExampleDatabase(client, expire_after=REDIS_EXPIRY)


def _backend_errors() -> tuple[type[BaseException], ...]:
    """What a store's back end raises when it fails (OSError; Redis's own errors)."""
    errors: list[type[BaseException]] = [OSError]
    try:
        import redis
    except ImportError:
        return tuple(errors)
    errors.append(redis.exceptions.RedisError)
    return tuple(errors)


def parse_value(raw: bytes, where: str) -> StoredFailure:
    """One stored value, read with bounds and its steps checked; :class:`InputError` if it
    is not a failure this vmbspec can read."""
    if len(raw) > MAX_VALUE_BYTES:
        raise InputError(f"{where}: {len(raw)} bytes, more than {MAX_VALUE_BYTES}")
    document = parse_json(raw, where)
    if not isinstance(document, dict) or document.get("vmbspec_failure") != 1:
        raise InputError(f"{where}: not a vmbspec failure (format 1)")
    texts = {}
    for name in ("id", "kind", "message", "target", "profile", "vmbspec", "source"):
        texts[name] = require_str(document.get(name, ""), f"{where}: field {name}", MAX_TEXT)
    requirements = tuple(
        require_str(item, f"{where}: field requirements[{n}]", MAX_TEXT)
        for n, item in enumerate(require_list(document.get("requirements", []),
                                              f"{where}: field requirements", MAX_TEXT))
    )
    steps: list[Step] = check_steps(document.get("steps"), where)
    if failure_id(steps) != texts["id"]:
        raise InputError(f"{where}: field id: {texts['id']!r} is not the digest of its steps")
    return StoredFailure(texts["id"], steps, texts["kind"], requirements, texts["message"],
                         texts["target"], texts["profile"], texts["vmbspec"], texts["source"])


def load_failures(db: ExampleDatabase, name: str) -> tuple[list[StoredFailure], list[str]]:
    """Every readable failure of the store (sorted by id), and a warning for each value
    that was skipped; :class:`DatabaseError` if the store cannot be read at all."""
    failures: dict[str, StoredFailure] = {}
    warnings: list[str] = []
    try:
        for number, raw in enumerate(db.fetch(FAILURES_KEY)):
            if number >= MAX_FAILURES:
                warnings.append(f"{name}: more than {MAX_FAILURES} failures: the rest skipped")
                break
            try:
                stored = parse_value(bytes(raw), f"{name}: stored failure {number + 1}")
            except InputError as error:
                warnings.append(f"skipped: {error}")
                continue
            failures.setdefault(stored.id, stored)
    except _backend_errors() as error:
        raise DatabaseError(f"--db {name}: cannot read the store: {error}") from error
    return [failures[key] for key in sorted(failures)], warnings


def store_failures(
    db: ExampleDatabase, name: str, failures: list[Failure], target: str, profile: str,
    version: str,
) -> list[str]:
    """Store every failure that has steps and is not already in the store (known failures
    came from it); the ids stored."""
    known, _warnings = load_failures(db, name)
    ids = {stored.id for stored in known}
    stored_now = []
    for failure in failures:
        if failure.source.startswith("known:") or not failure.steps:
            continue
        identity = failure_id(failure.steps)
        if identity in ids:
            continue
        document = {
            "vmbspec_failure": 1, "id": identity, "kind": failure.kind,
            "requirements": list(failure.requirements), "message": failure.message,
            "target": target, "profile": profile, "vmbspec": version,
            "source": failure.source, "steps": failure.steps,
        }
        try:
            db.save(FAILURES_KEY, json.dumps(document, sort_keys=True).encode())
        except _backend_errors() as error:
            raise DatabaseError(f"--db {name}: cannot store a failure: {error}") from error
        ids.add(identity)
        stored_now.append(identity)
    return stored_now
