"""Initial schema: rooms, processed inputs, outbox, usage state and monthly usage.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("center_id", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("occupancy", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_rooms_center_id", "rooms", ["center_id"])
    op.create_table(
        "processed_inputs",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", _TS, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("key", sa.String(300), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("published_at", _TS, nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["published", "id"])
    op.create_table(
        "usage_state",
        sa.Column("scope_id", sa.String(80), primary_key=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "usage_monthly",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("ident", sa.String(64), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_usage_monthly_ident", "usage_monthly", ["ident"])
    op.create_index("ix_usage_monthly_month", "usage_monthly", ["month"])


def downgrade() -> None:
    for table in ("usage_monthly", "usage_state", "outbox", "processed_inputs", "rooms"):
        op.drop_table(table)
