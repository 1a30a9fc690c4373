"""The compiled modules imported afresh from their Python sources, beside those the tests run.

Where they are compiled (``infra/native.py``, the modules of ``domain/_compiled.py``), a
compiled module calls functions directly, not through its namespace, and its classes take no
new attributes. A test that counts or intercepts calls by replacing a function in a module's
namespace (or a method on an object) takes its module from ``pure``: a second copy of every
compiled module, imported from the ``.py`` files, which look their functions up as Python
does. Without a build, it is a second copy of the same sources.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
from types import ModuleType

from domain._compiled import MODULES, SourcesOnly, compiled


@functools.cache
def _sources() -> dict[str, ModuleType]:
    """Every compiled module, imported from source with ``sys.modules`` set aside."""
    kept = {name: sys.modules.pop(name) for name in list(sys.modules) if compiled(name)}
    parents = {name: sys.modules.get(name.rpartition(".")[0]) for name in kept}
    finder = SourcesOnly()
    sys.meta_path.insert(0, finder)
    try:
        for module in MODULES:
            imported = importlib.import_module(module)
            if hasattr(imported, "__path__"):
                for info in pkgutil.walk_packages(imported.__path__, f"{module}."):
                    importlib.import_module(info.name)
        return {name: sys.modules[name] for name in list(sys.modules) if compiled(name)}
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if compiled(name)]:
            del sys.modules[name]
        sys.modules.update(kept)
        # Importing a submodule set it on its package: give the packages theirs back.
        for name, module in kept.items():
            parent = parents[name]
            if parent is not None and not compiled(parent.__name__):
                setattr(parent, name.rpartition(".")[2], module)


def pure(name: str) -> ModuleType:
    """Module ``name`` (``domain.usage.slots``, ``consumers.statistics``) imported from source."""
    module = _sources()[name]
    assert module.__file__ is not None and module.__file__.endswith(".py"), module.__file__
    return module
