"""Every booking id a room answered, kept apart from the room's state: ids are never reused.

The room's state forgets a booking two days after it ends, and then accepted its id again
(issue 9). The ids still in the rooms' states are copied in, so a database upgraded with
history keeps refusing them; ids forgotten before this revision cannot be recovered here
(``spaces replay`` rebuilds them from the decisions log).

Revision ID: 0004
Revises: 0003
"""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "booking_ids",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("booking_id", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    assert table is not None
    rooms = sa.table("rooms", sa.column("room_id", sa.String()), sa.column("state", sa.JSON()))
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for room_id, state in op.get_bind().execute(sa.select(rooms.c.room_id, rooms.c.state)):
        for booking in state.get("bookings", []):
            rows.append({"room_id": room_id, "booking_id": booking["booking_id"], "seen_at": now})
        if len(rows) >= 1000:
            op.bulk_insert(table, rows)
            rows = []
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table("booking_ids")
