"""The domain imported afresh from its Python sources, beside the modules the tests run.

Where the rules are compiled (``infra/native.py``), a compiled module calls its functions
directly, not through its namespace, so a test that counts calls by wrapping a function in
a module's namespace would count nothing. Such tests take their modules from ``pure``: a
second copy of the whole package, imported from the ``.py`` files, whose modules call each
other through their namespaces as Python does. Without a build, it is a second copy of the
same sources.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
from types import ModuleType

from domain._compiled import SourcesOnly


@functools.cache
def _sources() -> dict[str, ModuleType]:
    """Every module of ``domain``, imported from source with ``sys.modules`` set aside."""
    kept = {name: sys.modules.pop(name) for name in list(sys.modules) if _ours(name)}
    finder = SourcesOnly()
    sys.meta_path.insert(0, finder)
    try:
        package = importlib.import_module("domain")
        for info in pkgutil.walk_packages(package.__path__, "domain."):
            importlib.import_module(info.name)
        return {name: sys.modules[name] for name in list(sys.modules) if _ours(name)}
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(kept)


def _ours(name: str) -> bool:
    return name == "domain" or name.startswith("domain.")


def pure(name: str) -> ModuleType:
    """Module ``name`` (``domain.usage.slots``, say) of the copy imported from source."""
    module = _sources()[name]
    assert module.__file__ is not None and module.__file__.endswith(".py"), module.__file__
    return module
