"""Python compiled to C with mypyc: the rules and the per-record path, from the same sources.

    python -m infra.native build    # what `make install` does (about a minute)
    python -m infra.native clean    # back to the Python sources alone
    python -m infra.native status

The modules listed in ``domain/_compiled.py`` (``MODULES``: the rules, the batch skeleton,
both consumers' handlers, the unit of work) are plain, fully typed Python (``mypy
--strict``), so mypyc compiles them as they are, into extension modules next to their
sources; Python imports an extension module before a source of the same name. A profile of
the service put the rules at two fifths of the statistics' CPU and a fifth of the room
authority's, spent in Python's own overhead (attribute lookups, calls, boxing), which is
what compiling removes. The rest stays interpreted: it waits on the broker and the
database, or spends its time in aiokafka, SQLAlchemy, pydantic-core and SQLite.

Nothing depends on the build. Without a C compiler it fails, cleans up, and the service
runs the Python sources. ``domain/_compiled.py`` checks at import that the compiled modules
were built from the sources as they are now (the hashes in ``domain/_compiled.json``), and
runs the sources otherwise, with a warning: an edit is never shadowed by a stale build.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

from domain import _compiled

ROOT = Path(__file__).resolve().parents[1]
GROUP = "domain.native"
"""mypyc's shared library of the group, ``domain/native__mypyc*.so``: inside a package, so
it is found wherever the package is (a top-level library is found only from the checkout)."""


def sources() -> list[str]:
    """The modules to compile (``domain/_compiled.py``'s ``MODULES``), relative to ``ROOT``."""
    return _compiled.sources(ROOT)


def built() -> list[Path]:
    """The extension modules of a build that are there."""
    return _compiled.extensions(ROOT)


def clean() -> None:
    for path in built():
        path.unlink()
    _compiled.MANIFEST.unlink(missing_ok=True)


def build() -> int:
    """Compile the domain in place; 0 when built, else 1 with nothing left behind."""
    clean()
    files = sources()
    hashes = {path: _compiled.digest(ROOT / path) for path in files}
    with tempfile.TemporaryDirectory(prefix="spaces-mypyc-") as temp:
        try:
            _compile(files, Path(temp))
        except (Exception, SystemExit) as error:  # setuptools exits on a compiler error
            clean()
            print(f"infra.native: not compiled ({error}); the Python sources run", file=sys.stderr)
            return 1
    if [_compiled.digest(ROOT / path) for path in files] != list(hashes.values()):
        clean()  # a source changed while it compiled: the build may not match it
        print("infra.native: a source changed during the build; run it again", file=sys.stderr)
        return 1
    _compiled.MANIFEST.write_text(json.dumps({"sources": hashes}, indent=1, sort_keys=True) + "\n")
    print(f"infra.native: compiled {len(files)} modules ({len(built())} extensions)")
    return 0


def _compile(files: list[str], temp: Path) -> None:
    from mypyc.build import mypycify
    from setuptools import Distribution

    with contextlib.chdir(ROOT):
        extensions = mypycify(
            files, opt_level="3", group_name=GROUP, target_dir=str(temp / "c"), verbose=False
        )
        distribution = Distribution({"name": "spaces-domain", "ext_modules": extensions})
        command = distribution.get_command_obj("build_ext")
        command.inplace = True
        command.build_temp = str(temp / "build")
        command.build_lib = str(temp / "lib")
        command.parallel = os.cpu_count() or 1
        distribution.run_command("build_ext")


def status() -> str:
    extensions = built()
    if not extensions:
        return "interpreted: no compiled modules (python -m infra.native build)"
    changed = _compiled.stale()
    if changed:
        return f"interpreted: the build is stale (not as built: {', '.join(changed[:5])})"
    return f"compiled: {len(extensions)} extension modules match their sources"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.native", description=__doc__)
    parser.add_argument("action", choices=("build", "clean", "status"))
    action = parser.parse_args().action
    if action == "build":
        return build()
    if action == "clean":
        clean()
        return 0
    print(status())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
