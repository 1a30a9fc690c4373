"""Processed inputs keep a digest of their content: an ``event_id`` reused is caught.

A kiosk's retry re-sends the same input (same id, same content): skipped, as before. The
same id with other content is a producer's mistake, and without the content the consumer
could not tell the two apart, so it skipped the new input silently (issue 7). Rows
written before this revision have no digest and are treated as exact re-sends.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_inputs") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_inputs") as batch:
        batch.drop_column("digest")
