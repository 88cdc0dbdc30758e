"""An index on answers.item_id: "which of my items are answered" is asked on every request.

The next question is the reader's first item with no answer (NOT EXISTS on answers.item_id),
and the counts join answers on item_id; without this index each of those looked through every
answer of every reader, so a reader's request grew slower with the whole class's progress
(issue 17: in `benchmarks/bench_turing_load.py --readers 50 --answers 12 --repeats 5` the server's
CPU per answer was 27 ms without this index and 6.6 ms with it).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_answers_item_id", "answers", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_answers_item_id", table_name="answers")
