"""How the child processes of a native target start: ``python -c CODE ROOT ARGS...``.

CODE puts ROOT (the directory that holds the top-level package) first on ``sys.path`` and
imports a module of this very package, so the child runs the same copy as the parent whether
vmbspec is installed from a wheel (``site-packages/vmbspec/adapters/native``) or run from the
repository (``vmbspec/adapters`` is a symbolic link to the top-level ``adapters/`` there).
"""

from __future__ import annotations

import os

#: This package's import name: ``vmbspec.adapters.native``.
PACKAGE = __name__.rpartition(".")[0]
#: The directory that holds the top-level package, one level up per dot in this module's name.
#: Not resolved: resolving would follow the repository's symbolic link out of ``vmbspec/``.
ROOT = os.path.abspath(__file__)
for _ in range(__name__.count(".") + 1):
    ROOT = os.path.dirname(ROOT)


def boot_code(module: str, function: str, arguments: str) -> str:
    """The ``-c`` code that imports ``function`` from ``PACKAGE.module`` and exits with what
    ``function(arguments)`` returns; ``arguments`` is Python source over ``sys.argv``."""
    return (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        f"from {PACKAGE}.{module} import {function}; raise SystemExit({function}({arguments}))"
    )
