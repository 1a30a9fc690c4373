"""The scheduler's signature on ``clock.tick``: only the service can move a room's clock.

A tick releases no-shows and checks everyone out, so a tick from anyone (a kiosk, a
script, a second scheduler of another deployment) would move a room's time. Each tick
carries an HMAC-SHA256 of its key and value in the ``spaces-clock-signature`` header,
keyed with a secret the service keeps; the room authority refuses a tick without a
valid one. The secret is ``SPACES_CLOCK_SECRET`` or, unset, generated once into
``<home>/clock.secret``: every process of one installation reads the same file, and a
deployment on several machines sets the variable (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from infra.settings import Settings

log = logging.getLogger(__name__)
HEADER = "spaces-clock-signature"
_cache: dict[Path, bytes] = {}


def secret_of(settings: Settings) -> bytes:
    if settings.clock_secret:
        return settings.clock_secret.encode()
    cached = _cache.get(settings.home)  # before resolving: this runs for every tick
    if cached is not None:
        return cached
    path = (settings.home / "clock.secret").resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Written whole, then linked into place: processes starting together agree on
            # the first one's secret, and none reads a half-written file.
            draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        value = path.read_text().strip().encode()
    except OSError as error:
        # A read-only home must not stop the room authority: the scheduler runs in the same
        # process (``spaces run``), so a secret of this process still signs and verifies.
        log.warning(
            "clock secret not stored (%s): ticks are signed for this process only; "
            "set SPACES_CLOCK_SECRET",
            error,
        )
        value = b""
    if not value:
        value = secrets.token_hex(32).encode()
    _cache[settings.home] = value
    return value


def signature(settings: Settings, key: bytes | None, value: bytes) -> bytes:
    digest = hmac.new(secret_of(settings), (key or b"") + b"\0" + value, hashlib.sha256)
    return digest.hexdigest().encode()


def headers_for(settings: Settings, key: bytes, value: bytes) -> list[tuple[str, bytes]]:
    return [(HEADER, signature(settings, key, value))]


def verified(
    settings: Settings, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
) -> bool:
    given = next((v for k, v in headers if k == HEADER), None)
    return given is not None and hmac.compare_digest(given, signature(settings, key, value))
