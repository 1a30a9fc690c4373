"""The clock secret and the tick signature (issue 7: only the service moves a clock)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from infra import tick_signature
from infra.settings import Settings


def _secret_in(home: str) -> bytes:
    tick_signature._cache.clear()
    return tick_signature.secret_of(Settings(home=Path(home)))


def test_processes_starting_together_share_one_secret_file(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(6) as pool:
        secrets = pool.map(_secret_in, [str(tmp_path)] * 12)
    assert len(set(secrets)) == 1 and len(secrets[0]) == 64
    stored = tmp_path / "clock.secret"
    assert stored.read_text().encode() == secrets[0]
    assert stored.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["clock.secret"]


def test_a_signature_holds_only_for_the_same_secret_key_and_value(tmp_path: Path) -> None:
    service = Settings(home=tmp_path)
    other = Settings(home=tmp_path, clock_secret="someone-else")
    key, value = b"r1", b'{"type": "clock.tick"}'
    headers = tick_signature.headers_for(service, key, value)
    assert tick_signature.verified(service, key, value, headers)
    assert not tick_signature.verified(other, key, value, headers)
    assert not tick_signature.verified(service, b"r2", value, headers)
    assert not tick_signature.verified(service, key, value + b" ", headers)
    assert not tick_signature.verified(service, key, value, [])
    forged = tick_signature.headers_for(other, key, value)
    assert not tick_signature.verified(service, key, value, forged)
