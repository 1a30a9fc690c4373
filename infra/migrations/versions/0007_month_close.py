"""How far each usage scope's months are closed, and where the statistics are in the log.

``usage_month_close``: the month close survives restarts.

The close was an in-memory cron job; a restart at the wrong minute skipped a month.
Now the last closed month of every room and center is stored, and the service closes
whatever has ended since (several months, if it was down that long). Scopes already
in the database get no row: the first close after this revision finds them and closes
their open months that have ended.

``consumer_positions``: the next offset per partition a consumer group committed with its
database transaction, so the statistics resume there when Kafka has forgotten the group's
offsets (``decisions`` is kept forever; the id memory is 30 days).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_month_close",
        sa.Column("scope_id", sa.String(80), nullable=False),
        sa.Column("closed_through", sa.String(7), nullable=False),
        sa.Column("next_close_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope_id", name="pk_usage_month_close"),
    )
    op.create_index("ix_usage_month_close_next_close_at", "usage_month_close", ["next_close_at"])

    op.create_table(
        "consumer_positions",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", name="pk_consumer_positions"),
    )


def downgrade() -> None:
    op.drop_table("consumer_positions")
    op.drop_index("ix_usage_month_close_next_close_at", table_name="usage_month_close")
    op.drop_table("usage_month_close")
