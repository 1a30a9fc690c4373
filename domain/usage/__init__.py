"""Monthly usage statistics folded from the ``decisions`` log.

Pure Python: no Kafka, no SQL, no I/O. An adapter loads a :class:`RoomUsage` (one per room)
and a :class:`CenterUsage` (one per center) from JSON documents, calls :func:`fold` for each
decision of a batch (never twice for the same ``event_id``), publishes the
:class:`~schemas.outputs.UsageMonthly` values of the months that changed on ``usage-monthly``
(``aggregate_document``: the value as a dict, serialized without a model) and saves the states.
At the start of a month it calls :func:`close_month` with :func:`previous_month`.

Months are the room's *local* months (the ``timezone`` of its ``room.configured`` decision,
``Asia/Seoul`` until one is seen). The definitions of every figure are in
``docs/usage-statistics.md``.

Cost: folding one decision does not depend on the number of rooms of the center nor on the
room's history (amortised: what pruning drops, an earlier decision added). A room caches its
open minutes per month; a center keeps, per kind of opening hours (time zone, opens, closes),
how many of its rooms have them and their summed capacity as changes by local date (a room
whose rules change adjusts them by its own difference), the sum of their occupancies, and
caches its months' open minutes until a rule changes; bookings are forgotten by the UTC day
their interval ends; member sets and opening periods are pruned from sorted indexes, so a
decision that drops nothing looks at nothing. Open minutes are real elapsed minutes
(``domain.opening_hours``): a day's wall-clock minutes plus a DST correction that is cached
per kind of hours and month and is not zero on a handful of days a year. The heatmap
(``occupancy_by_weekday_hour``) splits each stay by local weekday-hour: the partial first and
last days and DST days hour by hour, the whole days between in bulk per month, so its work is
bounded whatever the stay's length; its cells are kept up to date per slot touched.

One module per concept, each importing only the ones above it:

- ``periods``: opening hours and capacity by local date (``OpeningPeriod``,
  ``CapacityPeriod``), a room's open minutes of a month and their DST corrections, a room's
  rules as changes of a center's sums;
- ``slots``: an interval split by local month, and by weekday-hour slot for the heatmap;
- ``month``: one month's figures (``MonthUsage``, ``COUNTERS``), its aggregate, the months'
  JSON and document versions, the sorted month lists and the pruning they drive;
- ``room``: a room's state (``RoomUsage``, ``ActiveBooking``), its bookings' expiry;
- ``center``: a center's state (``CenterUsage``, ``CenterRoom``), its sums over the rooms;
- ``folding``: ``fold``, ``fold_changes`` and ``close_month``.

Names with a leading underscore are private to this package (the modules share them).
"""

from domain.months import DEFAULT_TIMEZONE, local_month, previous_month
from domain.usage.center import CenterRoom, CenterUsage
from domain.usage.folding import close_month, fold, fold_changes
from domain.usage.month import (
    COUNTERS,
    MEMBER_SET_RETENTION_MONTHS,
    STATE_VERSION,
    AggregateDocument,
    MonthUsage,
)
from domain.usage.periods import CapacityPeriod, OpeningPeriod
from domain.usage.room import ACTIVE_BOOKING_RETENTION, ActiveBooking, RoomUsage

__all__ = [
    "ACTIVE_BOOKING_RETENTION",
    "COUNTERS",
    "DEFAULT_TIMEZONE",
    "MEMBER_SET_RETENTION_MONTHS",
    "STATE_VERSION",
    "ActiveBooking",
    "AggregateDocument",
    "CapacityPeriod",
    "CenterRoom",
    "CenterUsage",
    "MonthUsage",
    "OpeningPeriod",
    "RoomUsage",
    "close_month",
    "fold",
    "fold_changes",
    "local_month",
    "previous_month",
]
