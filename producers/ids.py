"""Event ids for new inputs: UUID version 7 (RFC 9562), which grows with time.

The contract accepts any UUID as an input's ``event_id`` and recommends version 7
(``docs/contract.md``). Why: the room authority remembers every id it decided, for 30 days,
in a B-tree (``processed_inputs``, keyed by ``event_id``). Random ids (version 4) land on
random pages of it, so a batch of 1,000 inputs rewrites about as many index pages (each
a 4 KiB page in SQLite's WAL); ids that grow with time land together at its end. In
``tools/consumer_bench.py 1000 60000`` the authority wrote 2,740 bytes per input with these
ids against 5,093 with random ones, and used 6-13 % less CPU (``docs/benchmarks.md``).

A version 7 id is 48 bits of Unix time in milliseconds, the version, 74 random bits and
the variant: ids made in the same millisecond are in no particular order among
themselves, which costs nothing (they land on the same page).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

_RANDOM_BITS = 74
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_LOW_62 = (1 << 62) - 1
_MAX_MS = (1 << 48) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def new_event_id(at: datetime | None = None, random_bits: int | None = None) -> UUID:
    """A new ``event_id``: version 7, carrying ``at`` (default: now) to the millisecond.

    ``random_bits``: the random part (its low 74 bits), for generators that must give the
    same ids for the same seed (``producers.traffic``); otherwise the operating system's.
    """
    # Exact milliseconds; a naive ``at`` is refused (TypeError: no instant without an offset).
    ms = time.time_ns() // 1_000_000 if at is None else (at - _EPOCH) // _MILLISECOND
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"{at!r} is outside the times a version 7 UUID can carry")
    bits = secrets.randbits(_RANDOM_BITS) if random_bits is None else random_bits
    bits &= (1 << _RANDOM_BITS) - 1
    rand_a, rand_b = bits >> 62, bits & _LOW_62
    return UUID(int=(ms << 80) | _VERSION_7 | (rand_a << 64) | _VARIANT_RFC | rand_b)
