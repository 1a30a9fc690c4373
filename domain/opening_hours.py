"""Opening hours: the one place that turns a room's ``opens``/``closes`` into real instants.

Pure Python. Hours are minutes since local midnight (``schemas.common.parse_hhmm``: ``24:00``
is 1440). An *opening* starts on a local day at ``opens`` and ends at ``closes`` the same day,
or, when ``closes <= opens``, at ``closes`` the next day (18:00-02:00 is open until 02:00; the
whole day is ``00:00-24:00``). Every opening belongs to the local day it starts on.

DST: local wall-clock times become instants through the zone, so an opening lasts the real
time that elapses (New York, spring-forward day: 09:00-17:00 is 8 h, 00:00-24:00 is 23 h).
A local time that does not exist (skipped by a spring-forward) or exists twice (repeated by a
fall-back) is read with ``fold=0`` (PEP 495): the offset in force *before* the transition.
02:30 on New York's spring-forward day is 02:30 EST, i.e. 03:30 EDT; 01:30 on its fall-back
day is the first 01:30 (EDT).

Instants are returned in UTC on purpose: Python compares and subtracts two datetimes that
share a ``tzinfo`` by their wall clock, ignoring DST; UTC datetimes cannot be misused so.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "MINUTES_PER_DAY",
    "ends_next_day",
    "is_open",
    "latest_closing",
    "open_minutes",
    "opening_at",
    "opening_window",
]

MINUTES_PER_DAY = 1440


def _check(opens: int, closes: int) -> None:
    for name, minutes in (("opens", opens), ("closes", closes)):
        if not 0 <= minutes <= MINUTES_PER_DAY:
            raise ValueError(f"{name} must be 0..1440 minutes since local midnight, got {minutes}")


def ends_next_day(opens: int, closes: int) -> bool:
    """An opening with ``closes <= opens`` runs past midnight into the next local day."""
    _check(opens, closes)
    return closes <= opens


def _instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """Local wall-clock ``minutes`` after the midnight starting ``day``, as a UTC instant.

    ``minutes`` may reach past the day (1440 is the next midnight); gaps and repeats: fold=0.
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def opening_window(day: date, opens: int, closes: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The opening that starts on local ``day``: ``[start, end)`` as aware UTC datetimes.

    ``opens``/``closes`` are minutes since local midnight; ``closes <= opens`` means it ends
    on the next day; 0-1440 is the whole day. DST-correct (see the module docstring).
    """
    end_minutes = closes + MINUTES_PER_DAY if ends_next_day(opens, closes) else closes
    return _instant(day, opens, tz), _instant(day, end_minutes, tz)


def open_minutes(day: date, opens: int, closes: int, tz: ZoneInfo) -> int:
    """Real minutes elapsed during the opening that starts on local ``day`` (never negative).

    An opening inside a skipped hour (02:00-03:00 on a spring-forward day) lasts 0 minutes.
    """
    start, end = opening_window(day, opens, closes, tz)
    return max(0, round((end - start).total_seconds() / 60))


def opening_at(
    instant: datetime, opens: int, closes: int, tz: ZoneInfo
) -> tuple[datetime, datetime] | None:
    """The opening ``[start, end)`` that contains ``instant``, or ``None`` when closed.

    Only the opening of the instant's local day and of the day before (an overnight one)
    can contain it: an opening ends at the latest at ``closes`` of the next day.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, got {instant!r}")
    day = instant.astimezone(tz).date()
    for start_day in (day, day - timedelta(days=1)):
        start, end = opening_window(start_day, opens, closes, tz)
        if start <= instant < end:
            return start, end
    return None


def is_open(instant: datetime, opens: int, closes: int, tz: ZoneInfo) -> bool:
    """Whether ``instant`` falls inside an opening (overnight ones included)."""
    return opening_at(instant, opens, closes, tz) is not None


def latest_closing(instant: datetime, opens: int, closes: int, tz: ZoneInfo) -> datetime:
    """The most recent closing at or before ``instant`` (UTC).

    The openings of the instant's local day, the day before and the one before that are the
    only candidates: an overnight opening of the day before may not have closed yet.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, got {instant!r}")
    day = instant.astimezone(tz).date()
    for back in range(3):
        _, end = opening_window(day - timedelta(days=back), opens, closes, tz)
        if end <= instant:
            return end
    # unreachable for 0 <= opens, closes <= 1440; kept total for safety
    return opening_window(day - timedelta(days=3), opens, closes, tz)[1]
