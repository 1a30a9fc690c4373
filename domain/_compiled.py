"""Compiled rules or their Python sources: chosen once, when ``domain`` is first imported.

``infra/native.py`` compiles the modules of this package with mypyc, next to their sources,
and lists the hashes of the sources it compiled in ``_compiled.json``. Python imports an
extension module before a source of the same name, so a build older than its sources would
run rules that are no longer in the code. ``choose`` prevents that: when a source changed
since the build (or ``SPACES_PURE_DOMAIN=1`` asks for it), every module of the package is
imported from its source instead, and a stale build says so in a warning.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parent
MANIFEST = PACKAGE / "_compiled.json"
PURE_VARIABLE = "SPACES_PURE_DOMAIN"


def stale() -> list[str]:
    """The sources that differ from those the build compiled (all of them: no manifest)."""
    try:
        compiled: dict[str, str] = json.loads(MANIFEST.read_text())["sources"]
    except (OSError, ValueError, KeyError):
        return ["domain/_compiled.json"]
    root = PACKAGE.parent
    changed = []
    for path in sorted(p.relative_to(root).as_posix() for p in PACKAGE.rglob("*.py")):
        if path in ("domain/__init__.py", "domain/_compiled.py"):
            continue
        if compiled.get(path) != hashlib.sha256((root / path).read_bytes()).hexdigest():
            changed.append(path)
    changed += [path for path in compiled if not (root / path).exists()]
    return changed


class SourcesOnly(importlib.abc.MetaPathFinder):
    """Imports the modules of ``domain`` from their ``.py`` files, never an extension."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("domain.") or path is None:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            package = Path(entry, leaf, "__init__.py")
            if package.exists():
                return importlib.util.spec_from_file_location(
                    fullname, package, submodule_search_locations=[str(package.parent)]
                )
            module = Path(entry, f"{leaf}.py")
            if module.exists():
                return importlib.util.spec_from_file_location(fullname, module)
        return None


def choose() -> bool:
    """Whether the compiled modules run; if not, import the sources from now on."""
    if not any(PACKAGE.rglob("*.so")):
        return False
    if os.environ.get(PURE_VARIABLE, "") not in ("", "0"):
        reason = None
    else:
        changed = stale()
        if not changed:
            return True
        reason = f"{', '.join(changed[:3])} changed since the build"
    if not any(isinstance(finder, SourcesOnly) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourcesOnly())
    if reason is not None:  # one line on stderr: logging is not set up yet at import
        print(
            f"warning: domain: the compiled rules are stale ({reason}); running the Python "
            "sources (`make native` compiles them again)",
            file=sys.stderr,
        )
    return False
