"""Reading: the next question, one item, the reader's answered items, submitting and editing an
answer, and the served case image, each scoped to the asking reader in the query.

Why the hot path looks the way it does (issue 17): a class of readers answering at once is bound
by the CPU the server spends per answer, not by locks. What an item asks never changes once the
reader is enrolled (its case, protocol, position and option cases; only `shown_at` is written
later, and nothing deletes items or cases), so those facts are read once per item id and kept in
`ItemFacts`; each request still checks the reader's enrollment, the study's state, the answered
items and the answer's uniqueness in the database, so permissions and exactly-once do not depend
on the cache. The hot requests (next item, submit) run on a plain Connection with Core
statements built once (`turing_test.hot_queries`): building a statement cost several times
executing it, and a Session loads every result through the ORM even when only columns are
selected. `next_item` asks the database for
the first unanswered item and the two counts instead of fetching the reader's whole list.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from turing_test import hot_queries as Q
from turing_test.errors import DuplicateAnswer, NotFound, PermissionDenied
from turing_test.images import ServeSpec, served_png
from turing_test.models import Answer, AnswerRevision, Case, Enrollment, Item, Study
from turing_test.protocols import PROTOCOL_NAMES, PROTOCOLS, validate_payload
from turing_test.store_base import ReaderInfo, StoreBase, timestamp, valid_id

#: items whose facts one process keeps (a few hundred bytes each; 100 readers x 300 items fit many times)
ITEM_FACTS_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class ItemFacts:
    """What never changes about one enrolled item: whose it is, what it asks and what it shows."""

    id: int
    study_id: int
    reader_id: int
    position: int
    protocol: int
    case_id: int
    features: dict
    option_tokens: list[str] | None
    shown: dict  # the protocol's view (image token, description, options, features); never the truth

    def view(self, total: int, answered: int) -> dict:
        """The reader's view of the item with their current counts (a fresh top-level dict)."""
        out = {"study_id": self.study_id, "item_id": self.id, "position": self.position, "total": total,
               "answered": answered, "protocol": self.protocol, "protocol_name": PROTOCOL_NAMES[self.protocol]}
        out.update(self.shown)
        return out


class ReadingMixin(StoreBase):
    """What a reader sees and answers."""

    _facts_cache: dict[int, ItemFacts]  # made by Store.__init__; dict get/set are atomic, so no lock

    def _item_facts(self, s, item_id: int) -> ItemFacts | None:
        """The item's immutable facts, from the per-process cache or two queries (None: no such item)."""
        cache = self._facts_cache
        facts = cache.get(item_id)
        if facts is not None:
            return facts
        row = s.execute(Q.ITEM_FACTS, {"item": item_id}).first()
        if row is None:
            return None
        tokens = None
        if row.options:
            by_id = dict(s.execute(Q.CASE_TOKENS, {"ids": list(row.options)}).all())
            tokens = [by_id[i] for i in row.options]
        facts = ItemFacts(row.id, row.study_id, row.reader_id, row.position, row.protocol, row.case_id,
                          row.features or {}, tokens, PROTOCOLS[row.protocol].view(row, tokens))
        if len(cache) >= ITEM_FACTS_CACHE_SIZE:
            cache.clear()
        cache[item_id] = facts
        return facts

    def _own_item(self, s, reader: ReaderInfo, study_id: int, item_id: int, message: str) -> ItemFacts:
        """The reader's own item of this study, else NotFound(message) (ids of others name nothing)."""
        facts = self._item_facts(s, item_id) if valid_id(item_id) else None
        if facts is None or facts.reader_id != reader.id or facts.study_id != study_id:
            raise NotFound(message)
        return facts

    @staticmethod
    def _counts(c, reader: ReaderInfo, study_id: int) -> tuple[int, int]:
        """(items, answered items) of the reader in the study, in one query."""
        row = c.execute(Q.COUNTS, {"study": study_id, "reader": reader.id}).one()
        return int(row[0]), int(row[1])

    def next_item(self, reader: ReaderInfo, study_id: int) -> dict | None:
        """The first unanswered item in the reader's order (None when finished); marks it shown."""
        with self.engine.connect() as c:
            self._enrolled_study(c, reader, study_id)
            todo = c.execute(Q.FIRST_UNANSWERED, {"study": study_id, "reader": reader.id}).first()
            if todo is None:
                return None
            total, answered = self._counts(c, reader, study_id)
            facts = self._item_facts(c, todo.id)
            c.rollback()  # end the read before taking the write lock
            if todo.shown_at is None:
                with self._write_lock, self._mark_durability(c):
                    c.execute(Q.MARK_SHOWN, {"item": todo.id, "now": timestamp()})
                    c.commit()
            return facts.view(total, answered)

    def item_for(self, reader: ReaderInfo, study_id: int, item_id: int) -> dict:
        """One of the reader's own items with their own answer (for review/edit in studies that allow it)."""
        with self.Session() as s:
            self._enrolled_study(s, reader, study_id)
            facts = self._own_item(s, reader, study_id, item_id, "no such question for this reader")
            view = facts.view(*self._counts(s, reader, study_id))
            view["my_answer"] = s.scalar(select(Answer.payload).where(Answer.item_id == facts.id))
            return view

    def answered_items(self, reader: ReaderInfo, study_id: int) -> list[dict]:
        """The reader's own answered questions of a study in their order, for the review screen.

        Only what the reader already saw and said: item id, position (0-based, as in item views)
        and number (1-based, as the page counts), protocol, when it was last answered and how often
        it was changed (revision). No truth and no payload: opening one goes through `item_for`.
        """
        with self.Session() as s:
            self._enrolled_study(s, reader, study_id)
            rows = s.execute(select(Item.id, Item.position, Item.protocol, Answer.answered_at, Answer.revision)
                             .join(Answer, Answer.item_id == Item.id)
                             .where(Item.study_id == study_id, Item.reader_id == reader.id,
                                    Answer.reader_id == reader.id)
                             .order_by(Item.position)).all()
        return [{"item_id": iid, "position": pos, "number": pos + 1, "protocol": proto,
                 "protocol_name": PROTOCOL_NAMES[proto], "answered_at": at, "revision": rev}
                for iid, pos, proto, at, rev in rows]

    def submit(self, reader: ReaderInfo, study_id: int, item_id: int, payload, question: str = "main") -> dict:
        """Store one answer. Refuses items not assigned to this reader, malformed payloads and
        second answers (unless the study allows edits: then the old version goes to history).

        Exactly once is the database's: the unique (reader, case, protocol, question) constraint
        refuses a second insert, whatever the threads or servers; the answer is acknowledged only
        after its commit (SQLite: WAL with synchronous=FULL, so it survives a killed server).
        """
        now = timestamp()
        with self.engine.connect() as c:
            study = self._enrolled_study(c, reader, study_id)
            if not study.active:
                raise PermissionDenied("this study is closed")
            facts = self._own_item(c, reader, study_id, item_id, "this question is not assigned to you")
            clean = validate_payload(facts.protocol, payload, option_tokens=facts.option_tokens,
                                     features=facts.features)
            shown_at = c.scalar(Q.SHOWN_AT, {"item": facts.id}) or now
            c.rollback()  # end the read before taking the write lock
            try:
                with self._write_lock:
                    answer_id = c.execute(Q.INSERT_ANSWER, dict(
                        item_id=facts.id, study_id=study_id, reader_id=reader.id, case_id=facts.case_id,
                        protocol=facts.protocol, question=question, payload=clean, shown_at=shown_at,
                        answered_at=now, duration_s=max(0.0, now - shown_at), revision=0)).inserted_primary_key[0]
                    c.commit()
                return {"answer_id": answer_id, "item_id": facts.id, "revision": 0, "stored": True}
            except IntegrityError:
                c.rollback()
        if not study.allow_edits:
            raise DuplicateAnswer("you already answered this question; answers cannot be changed in this study")
        return self._edit(reader, facts.id, facts.case_id, facts.protocol, question, clean, now)

    def _edit(self, reader: ReaderInfo, item_id: int, case_id: int, protocol: int, question: str,
              clean: dict, now: float) -> dict:
        """Replace an answer, keeping the previous version in answer_revisions."""
        with self._write_lock, self.Session.begin() as s:
            old = s.scalar(select(Answer).where(Answer.reader_id == reader.id, Answer.case_id == case_id,
                                                Answer.protocol == protocol, Answer.question == question)
                           .with_for_update())
            s.add(AnswerRevision(answer_id=old.id, revision=old.revision, payload=old.payload,
                                 answered_at=old.answered_at, replaced_at=now))
            old.payload, old.answered_at, old.revision = clean, now, old.revision + 1
            old.duration_s = max(0.0, now - old.shown_at)
            return {"answer_id": old.id, "item_id": item_id, "revision": old.revision, "stored": True}

    def image_png(self, reader: ReaderInfo, token: str) -> bytes:
        """The case image as the study serves it (`turing_test.images`: one size, mode and encoding
        for every case, no metadata), only if the case is in one of this reader's items."""
        if not isinstance(token, str) or not token or len(token) > 64 or not all(c.isalnum() or c in "-_" for c in token):
            raise NotFound("no such image")
        with self.Session() as s:
            case = s.scalar(select(Case).where(Case.token == token))
            if case is None:
                raise NotFound("no such image")
            spec = ServeSpec.from_design((s.get(Study, case.study_id).design or {}).get("serve"))
            if not reader.is_admin:
                if s.get(Enrollment, (case.study_id, reader.id)) is None:
                    raise NotFound("no such image")
                items = s.execute(select(Item.case_id, Item.options).where(Item.reader_id == reader.id,
                                                                           Item.study_id == case.study_id)).all()
                if not any(cid == case.id or case.id in (opts or []) for cid, opts in items):
                    raise NotFound("no such image")
            path = case.image_path
        try:
            return served_png(path, spec)
        except OSError:
            raise NotFound("the image file of this case is missing; tell the study admin") from None
