"""Compiled modules or their Python sources: chosen once, when ``domain`` is first imported.

``infra/native.py`` compiles with mypyc the modules named in ``MODULES``, next to their
sources, and lists the hashes of the sources it compiled in ``_compiled.json``. Python
imports an extension module before a source of the same name, so a build older than its
sources would run code that is no longer in the checkout. ``choose`` prevents that: when a
source changed since the build (or ``SPACES_PURE_DOMAIN=1`` asks for it), every one of these
modules is imported from its source instead, and a stale build says so in a warning.

The list lives here, in the one module that runs before any of them is imported: the
packages holding the others (``service_layer``, ``consumers``, ``infra.db``) import
``domain`` first thing, so the choice is made before their modules are looked up.
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
MODULES = (
    "domain",
    "service_layer.processing",
    "consumers.authority",
    "consumers.statistics",
    "infra.db.unit_of_work",
)
"""What ``infra/native.py`` compiles: the rules (every module of ``domain`` but this one and
the package's ``__init__``) and the per-record path around them, where a profile of the
service found Python's own overhead (the batch skeleton, both consumers' handlers, the
unit of work's row building). The rest of the service waits on the broker and the database,
or spends its time in aiokafka, SQLAlchemy and pydantic-core."""
INTERPRETED = ("domain/__init__.py", "domain/_compiled.py")


def compiled(name: str) -> bool:
    """Whether module ``name`` is one of ``MODULES`` (or in a package of them)."""
    return any(name == module or name.startswith(f"{module}.") for module in MODULES)


def sources(root: Path | None = None) -> list[str]:
    """The sources of ``MODULES``, relative to the checkout (``root``)."""
    root = root or PACKAGE.parent
    found: list[str] = []
    for module in MODULES:
        path = root.joinpath(*module.split("."))
        if path.is_dir():
            found += sorted(p.relative_to(root).as_posix() for p in path.rglob("*.py"))
        else:
            found.append(path.with_suffix(".py").relative_to(root).as_posix())
    return [path for path in found if path not in INTERPRETED]


def digest(path: Path) -> str:
    """What the manifest keeps of a source compiled."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


PACKAGES = ("schemas", "domain", "service_layer", "producers", "consumers", "infra", "entrypoints")
"""The project's packages: an extension module anywhere in them is the build's."""
SHARED_LIBRARY = "domain/native__mypyc"
"""mypyc's library of the whole build (``infra/native.py``'s group), without its suffix."""


def extensions(root: Path | None = None) -> list[Path]:
    """The extension modules in the project's packages: the build's, mypyc's shared library
    included, and any left by a build of a module no longer listed."""
    root = root or PACKAGE.parent
    return sorted(path for package in PACKAGES for path in (root / package).rglob("*.so"))


def stale() -> list[str]:
    """The sources that differ from those the build compiled (all of them: no manifest), and
    the extension modules there that the build did not make (of a module no longer listed)."""
    try:
        built: dict[str, str] = json.loads(MANIFEST.read_text())["sources"]
    except (OSError, ValueError, KeyError):
        return ["domain/_compiled.json"]
    root = PACKAGE.parent
    changed = [path for path in sources(root) if built.get(path) != digest(root / path)]
    changed += [path for path in built if not (root / path).exists()]
    for extension in extensions(root):
        module = extension.relative_to(root).as_posix().split(".", 1)[0]
        if module != SHARED_LIBRARY and f"{module}.py" not in built:
            changed.append(extension.relative_to(root).as_posix())
    return changed


class SourcesOnly(importlib.abc.MetaPathFinder):
    """Imports the project's modules from their ``.py`` files, never an extension."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None or fullname.partition(".")[0] not in PACKAGES:
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
    if not extensions():
        return False
    if os.environ.get(PURE_VARIABLE, "") not in ("", "0"):
        reason = None
    else:
        changed = stale()
        if not changed:
            return True
        reason = f"not as built: {', '.join(changed[:3])}"
    if not any(isinstance(finder, SourcesOnly) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourcesOnly())
    if reason is not None:  # one line on stderr: logging is not set up yet at import
        print(
            f"warning: domain: the compiled rules are stale ({reason}); running the Python "
            "sources (`make native` compiles them again)",
            file=sys.stderr,
        )
    return False


if __name__ == "__main__":  # the Makefile's list of what the build depends on
    print(*sources(), Path(__file__).relative_to(PACKAGE.parent).as_posix())
