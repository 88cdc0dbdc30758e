"""Editable answers with history: studies.allow_edits, answers.revision, answer_revisions.

Added while studies were already running, so existing answers must survive: the new columns
get server defaults (no edits allowed, revision 0) and no existing row is touched.

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
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("allow_edits", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("revision", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "answer_revisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("answer_id", sa.Integer, sa.ForeignKey("answers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("answered_at", sa.Float, nullable=False),
        sa.Column("replaced_at", sa.Float, nullable=False),
        sa.UniqueConstraint("answer_id", "revision", name="uq_answer_revision"),
    )


def downgrade() -> None:
    op.drop_table("answer_revisions")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("revision")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("allow_edits")
