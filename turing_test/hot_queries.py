"""The statements of a reader's every request, built once with bound parameters.

Why (issue 17): building a Core `select(...)` (coercing each column and clause, then deriving the
cache key of the new object) and running it took 0.83-0.95 ms on these 2 CPU cores, against
0.12-0.13 ms for the same statement built once (SQLite, 2000 calls each, measured while other
jobs shared the cores; raw sqlite3 took 0.01 ms), and a GET next +
POST answer cycle built about eight of them. The statements below are built at import and executed
with a dict of values, so SQLAlchemy finds their compiled form in its cache; they are plain Core,
so SQLite and PostgreSQL run the same text.

Each is scoped as the store's callers need: by the asking reader's id wherever a reader's data is read.
"""
from __future__ import annotations

from sqlalchemy import bindparam, distinct, exists, func, insert, select, update

from turing_test.models import Answer, Case, Enrollment, Item, Reader, Session, Study

#: token hash -> the session's expiry and its reader (`token`)
READER_FOR_TOKEN = (select(Session.expires_at, Reader.id, Reader.username, Reader.role, Reader.years_experience,
                           Reader.active)
                    .join(Reader, Reader.id == Session.reader_id)
                    .where(Session.token_hash == bindparam("token")))

#: (id, active, allow_edits) of study `study` if reader `reader` is enrolled in it
ENROLLED_STUDY = (select(Study.id, Study.active, Study.allow_edits)
                  .join(Enrollment, Enrollment.study_id == Study.id)
                  .where(Study.id == bindparam("study"), Enrollment.reader_id == bindparam("reader")))

#: the reader's first unanswered item of the study in their order: (id, shown_at)
FIRST_UNANSWERED = (select(Item.id, Item.shown_at)
                    .where(Item.study_id == bindparam("study"), Item.reader_id == bindparam("reader"),
                           ~exists().where(Answer.item_id == Item.id))
                    .order_by(Item.position).limit(1))

#: (items, answered items) of the reader in the study
COUNTS = (select(func.count(Item.id), func.count(distinct(Answer.item_id)))
          .select_from(Item).outerjoin(Answer, Answer.item_id == Item.id)
          .where(Item.study_id == bindparam("study"), Item.reader_id == bindparam("reader")))

#: what never changes about item `item`, with its case (`store_reading.ItemFacts`)
ITEM_FACTS = (select(Item.id, Item.study_id, Item.reader_id, Item.position, Item.protocol, Item.case_id,
                     Item.options, Case.token, Case.description, Case.features)
              .join(Case, Case.id == Item.case_id).where(Item.id == bindparam("item")))

#: (id, token) of the cases `ids` (an item's options)
CASE_TOKENS = select(Case.id, Case.token).where(Case.id.in_(bindparam("ids", expanding=True)))

#: when item `item` was first shown (None: not yet)
SHOWN_AT = select(Item.shown_at).where(Item.id == bindparam("item"))

#: mark item `item` shown at `now`, only the first time
MARK_SHOWN = (update(Item).where(Item.id == bindparam("item"), Item.shown_at.is_(None))
              .values(shown_at=bindparam("now")))

#: a first answer; executed with the Answer columns as values
INSERT_ANSWER = insert(Answer)
