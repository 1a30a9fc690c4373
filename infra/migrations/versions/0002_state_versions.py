"""A version number on every stored state: writes from a consumer that lost its partition fail.

Consumers keep the states of the partitions they own in memory and write back only
what a batch changed; the version makes that write conditional, so a zombie (a member
the group already replaced) can never overwrite what the new owner decided.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("rooms", "usage_state"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("version", sa.BigInteger(), nullable=False, server_default="0")
            )


def downgrade() -> None:
    for table in ("rooms", "usage_state"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")
