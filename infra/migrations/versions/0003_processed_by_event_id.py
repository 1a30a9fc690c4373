"""The processed-inputs key leads with ``event_id``: a batch's look-up stays O(batch).

With ``(consumer, event_id)`` PostgreSQL, on statistics not yet refreshed, read every
id of the consumer and filtered them: a cost that grew with history.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_inputs", recreate="always") as batch:
        batch.drop_constraint("pk_processed_inputs", type_="primary")
        batch.create_primary_key("pk_processed_inputs", ["event_id", "consumer"])


def downgrade() -> None:
    with op.batch_alter_table("processed_inputs", recreate="always") as batch:
        batch.drop_constraint("pk_processed_inputs", type_="primary")
        batch.create_primary_key("pk_processed_inputs", ["consumer", "event_id"])
