"""Local months (``YYYY-MM``): parsing, arithmetic, and where an instant falls.

Shared by the usage fold, the month close and the read models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Seoul"
MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def require_aware(ts: datetime, what: str) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {ts!r}")


@lru_cache(maxsize=4096)
def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of ``YYYY-MM``. Called for every decision (pruning, splits), and
    pure: cached (an error is not)."""
    match = MONTH_PATTERN.match(month)
    if match is None:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    return int(match.group(1)), int(match.group(2))


@lru_cache(maxsize=4096)
def add_months(month: str, n: int) -> str:
    year, mon = parse_month(month)
    index = year * 12 + (mon - 1) + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_start(month: str, tz: str) -> datetime:
    """First instant of ``month`` in ``tz`` (local midnight of the 1st), in UTC."""
    year, mon = parse_month(month)
    return datetime(year, mon, 1, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local_month(ts: datetime, tz: str = DEFAULT_TIMEZONE) -> str:
    """The local month (``YYYY-MM``) of the instant ``ts`` in time zone ``tz``.

    ``local_month(2026-11-30T23:30Z, "Asia/Seoul") == "2026-12"``.

    The fold asks this several times per decision, nearly always about the month it asked
    last: the answer is kept per zone with the UTC instants between which it certainly
    holds (a day inside each end, so no offset or DST change can move the month there).
    """
    span = _MONTH_SPANS.get(tz)
    if span is not None:
        try:
            if span[0] <= ts < span[1]:
                return span[2]
        except TypeError:  # naive: said below
            pass
    require_aware(ts, "ts")
    local = ts.astimezone(ZoneInfo(tz))
    month = f"{local.year:04d}-{local.month:02d}"
    _MONTH_SPANS[tz] = (
        month_start(month, tz) + _SAFE_MARGIN,
        month_start(add_months(month, 1), tz) - _SAFE_MARGIN,
        month,
    )
    return month


_MONTH_SPANS: dict[str, tuple[datetime, datetime, str]] = {}
"""Per zone: (from, until, month), UTC instants in ``[from, until)`` are in that month."""
_SAFE_MARGIN = timedelta(days=1)


def previous_month(now: datetime, tz: str = DEFAULT_TIMEZONE) -> str:
    """The local month before the one ``now`` falls in: the month to close."""
    return add_months(local_month(now, tz), -1)
