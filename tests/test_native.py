"""The compiled rules (``infra/native.py``): they run only when built from the sources as
they are, and the sources run otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import domain
import domain.usage.folding
from domain import _compiled
from infra import native

ROOT = Path(__file__).resolve().parents[1]


def test_the_rules_run_compiled_exactly_when_a_build_matches_the_sources() -> None:
    built = bool(native.built()) and not _compiled.stale()
    pure = os.environ.get(_compiled.PURE_VARIABLE, "") not in ("", "0")
    assert domain.COMPILED is (built and not pure)
    loaded = domain.usage.folding.__file__ or ""
    assert loaded.endswith(".so" if domain.COMPILED else ".py"), loaded


def copy_of_the_sources(tmp_path: Path) -> Path:
    """The package's sources alone (no build) under ``tmp_path``."""
    shutil.copytree(ROOT / "domain", tmp_path / "domain", ignore=shutil.ignore_patterns("*.so"))
    (tmp_path / "domain" / "_compiled.json").unlink(missing_ok=True)
    for path in _compiled.sources(ROOT):  # the compiled modules outside ``domain``
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path / "domain"


def test_a_source_changed_since_the_build_makes_it_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = copy_of_the_sources(tmp_path)
    monkeypatch.setattr(_compiled, "PACKAGE", package)
    monkeypatch.setattr(_compiled, "MANIFEST", package / "_compiled.json")
    monkeypatch.setattr(_compiled, "MODULES", ("domain", "service_layer.processing"))
    assert _compiled.stale() == ["domain/_compiled.json"]  # never built

    monkeypatch.setattr(native, "ROOT", tmp_path)
    hashes = {path: _compiled.digest(tmp_path / path) for path in native.sources()}
    assert "domain/usage/folding.py" in hashes and "service_layer/processing.py" in hashes
    assert "domain/__init__.py" not in hashes and "infra/db/unit_of_work.py" not in hashes
    (package / "_compiled.json").write_text(json.dumps({"sources": hashes}))
    assert _compiled.stale() == []

    folding = package / "usage" / "folding.py"
    folding.write_text(folding.read_text() + "\n# edited\n")
    assert _compiled.stale() == ["domain/usage/folding.py"]
    (package / "months.py").unlink()
    assert _compiled.stale() == ["domain/usage/folding.py", "domain/months.py"]


def test_an_extension_the_build_did_not_make_makes_it_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module dropped from the list keeps the extension an older build left: it would
    shadow its source unchecked."""
    package = copy_of_the_sources(tmp_path)
    monkeypatch.setattr(_compiled, "PACKAGE", package)
    monkeypatch.setattr(_compiled, "MANIFEST", package / "_compiled.json")
    monkeypatch.setattr(native, "ROOT", tmp_path)
    hashes = {path: _compiled.digest(tmp_path / path) for path in native.sources()}
    (package / "_compiled.json").write_text(json.dumps({"sources": hashes}))
    suffix = ".cpython-311-x86_64-linux-gnu.so"
    (package / f"native__mypyc{suffix}").write_bytes(b"the build's library")
    (package / "usage" / f"folding{suffix}").write_bytes(b"built")
    assert _compiled.stale() == []
    (tmp_path / "consumers" / f"relay{suffix}").write_bytes(b"left by an older build")
    assert _compiled.stale() == [f"consumers/relay{suffix}"]
    native.clean()
    assert native.built() == [] and not (package / "_compiled.json").exists()


def test_the_listed_modules_are_the_ones_compiled() -> None:
    listed = native.sources()
    assert "consumers/statistics.py" in listed and "domain/capacity/room.py" in listed
    assert not any(path.startswith("consumers/batch") for path in listed)
    if domain.COMPILED:
        import consumers.statistics
        import service_layer.processing

        for module in (consumers.statistics, service_layer.processing):
            assert (module.__file__ or "").endswith(".so"), module.__file__


def imported(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter importing ``domain`` from ``tmp_path``: what ran, and stderr."""
    code = "import domain, domain.usage.folding as f; print(domain.COMPILED, f.__file__)"
    inherited = {k: v for k, v in os.environ.items() if k != _compiled.PURE_VARIABLE}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**inherited, "PYTHONPATH": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_stale_build_runs_the_sources_and_says_so(tmp_path: Path) -> None:
    package = copy_of_the_sources(tmp_path)
    (package / "usage" / "folding.cpython-311-x86_64-linux-gnu.so").write_bytes(b"stale")
    ran = imported(tmp_path)
    assert ran.stdout.split() == ["False", str(package / "usage" / "folding.py")]
    assert "compiled rules are stale" in ran.stderr and len(ran.stderr.splitlines()) == 1


def test_the_sources_run_when_asked_even_with_a_good_build(tmp_path: Path) -> None:
    package = copy_of_the_sources(tmp_path)
    (package / "usage" / "folding.cpython-311-x86_64-linux-gnu.so").write_bytes(b"unused")
    ran = imported(tmp_path, **{_compiled.PURE_VARIABLE: "1"})
    assert ran.stdout.split() == ["False", str(package / "usage" / "folding.py")]
    assert ran.stderr == ""
