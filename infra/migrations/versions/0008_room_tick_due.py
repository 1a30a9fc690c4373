"""When each room is next due a clock tick: the clock ticks only the rooms due.

``rooms.tick_due_at``: written by the room authority with the room's state
(``domain.capacity.clock.next_tick_due``). The clock ticked every room every
``clock_interval_s`` (30 s): at GongyuNuri's 28,000 resources that was 930 inputs a
second, decided and logged, with nothing to decide in nearly all of them. Rooms already
in the database have no due time: the clock ticks them as due, and the tick's write gives
them one.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("tick_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_rooms_tick_due_at", "rooms", ["tick_due_at"])


def downgrade() -> None:
    op.drop_index("ix_rooms_tick_due_at", table_name="rooms")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("tick_due_at")
