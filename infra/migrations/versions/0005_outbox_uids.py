"""Outbox rows get an id unique forever; the outbox gets its Kafka ``transactional.id``.

Integer ids come back after a prune (SQLite reused the highest rowid), a reset or a
restore from backup, and the relay's recovery matched them against old records in the
topics' tails: it marked rows never sent as published (issue 7). ``uid`` is a random
128-bit id set at insert and carried in the ``spaces-outbox-uid`` header; recovery
matches only it. Existing rows get one here. On SQLite the table also becomes
``AUTOINCREMENT``, so ids no longer go back after a prune (ordering stays by ``id``).

``outbox_identity`` holds one row, created once: the outbox's ``transactional.id``.
It is stable across restarts, so a relay taking over fences the one before it.

Revision ID: 0005
Revises: 0004
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        with op.batch_alter_table(
            "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.add_column(sa.Column("uid", sa.String(32), nullable=True))
        op.execute("UPDATE outbox SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL")
        with op.batch_alter_table(
            "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.alter_column("uid", existing_type=sa.String(32), nullable=False)
    else:
        op.add_column("outbox", sa.Column("uid", sa.String(32), nullable=True))
        op.execute(
            "UPDATE outbox SET uid = replace(gen_random_uuid()::text, '-', '') WHERE uid IS NULL"
        )
        op.alter_column("outbox", "uid", existing_type=sa.String(32), nullable=False)
    op.create_index("ix_outbox_uid", "outbox", ["uid"], unique=True)
    identity = op.create_table(
        "outbox_identity",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("transactional_id", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    assert identity is not None
    op.bulk_insert(
        identity,
        [
            {
                "id": 1,
                "transactional_id": f"spaces-outbox-{uuid.uuid4().hex}",
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("outbox_identity")
    op.drop_index("ix_outbox_uid", table_name="outbox")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ) as batch:
            batch.drop_column("uid")
    else:
        op.drop_column("outbox", "uid")
