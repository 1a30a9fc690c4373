"""``fold_changes`` names exactly the months whose figures a decision changed.

The statistics publish only what it names, so a month it leaves out would keep a stale
aggregate, and one it names for nothing would be published again for nothing. The fold
compares a month before and after only where it cannot know the answer beforehand; this
test compares every month of both states, before and after each decision of random logs
(the logs of ``tests/test_usage_equivalence.py``, month closes and reloads included).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import usage
from domain.usage import CenterUsage, RoomUsage
from tests.test_usage_equivalence import (  # the fixture: the reference's open hours
    Step,
    Twins,
    _reference_with_real_open_hours,  # noqa: F401
    steps,
)

_State = RoomUsage | CenterUsage


def _figures(state: _State) -> dict[str, Any]:
    """Every month's figures (as an aggregate reads them) and its revision."""
    return {
        month: (state._values(month), stats.final, stats.revision)
        for month, stats in state.months.items()
    }


def _changed_months(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {
        month
        for month in before.keys() | after.keys()
        if (before.get(month) or (None,))[0] != (after.get(month) or (None,))[0]
    }


class Watched(Twins):
    """Folds as ``Twins`` does, but through ``fold_changes``, checking what it names."""

    def fold(self, decision: Any) -> None:
        """Checks a copy of the states, then folds as ``Twins`` (and its reference) do."""
        room = RoomUsage.from_json(
            self.rooms.get(decision.room_id, RoomUsage(decision.room_id)).to_json()
        )
        center_copy = CenterUsage.from_json(self.center.to_json())
        center = center_copy if decision.center_id is not None else None
        room_before, center_before = _figures(room), _figures(center_copy)
        named = usage.fold_changes(room, center, decision)
        room_after, center_after = _figures(room), _figures(center_copy)

        assert len(named) == len({(id(s), m) for s, m in named}), "a month named twice"
        assert {m for s, m in named if s is room} == _changed_months(room_before, room_after)
        assert {m for s, m in named if s is center_copy} == _changed_months(
            center_before, center_after
        )
        assert all(state is room or state is center_copy for state, _ in named)
        scopes = [state is room for state, _ in named]
        assert scopes == sorted(scopes, reverse=True)
        for before, after, scope in (
            (room_before, room_after, room),
            (center_before, center_after, center_copy),
        ):
            months = [m for s, m in named if s is scope]
            assert months == sorted(months)
            for month in months:  # a final month that changes is a revision
                was = before.get(month)
                if was is not None and was[1]:
                    assert after[month][2] == was[2] + 1
                    assert scope.months[month].revised_after_close
        for month, (_, final, revision) in room_before.items():
            if month not in {m for s, m in named if s is room}:
                assert room_after[month][1:] == (final, revision)
        super().fold(decision)


@settings(max_examples=150, deadline=None)
@given(
    log=st.lists(steps, min_size=20, max_size=80),
    scheduler=st.booleans(),
    unit=st.sampled_from((1, 360)),
)
def test_the_fold_names_exactly_the_months_it_changed(
    log: list[Step], scheduler: bool, unit: int
) -> None:
    watched = Watched(scheduler, unit)
    for step in log:
        watched.step(step)
