"""Reading: the next question, one item, the reader's answered items, submitting and editing an
answer, and the served case image, each scoped to the asking reader in the query."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from turing_test.errors import DuplicateAnswer, NotFound, PermissionDenied
from turing_test.images import ServeSpec, served_png
from turing_test.models import Answer, AnswerRevision, Case, Enrollment, Item, Study
from turing_test.protocols import PROTOCOL_NAMES, PROTOCOLS, validate_payload
from turing_test.store_base import ReaderInfo, StoreBase, timestamp, valid_id


class ReadingMixin(StoreBase):
    """What a reader sees and answers."""

    def _item_view(self, s, study: Study, item: Item, total: int, answered: int) -> dict:
        case = s.get(Case, item.case_id)
        view = {"study_id": study.id, "item_id": item.id, "position": item.position, "total": total,
                "answered": answered, "protocol": item.protocol, "protocol_name": PROTOCOL_NAMES[item.protocol]}
        view.update(PROTOCOLS[item.protocol].view(case, self._option_tokens(s, item)))
        return view

    @staticmethod
    def _option_tokens(s, item: Item) -> list[str] | None:
        """The served ids of the item's option cases, in the item's order (None without options)."""
        if not item.options:
            return None
        tokens = {c.id: c.token for c in s.scalars(select(Case).where(Case.id.in_(item.options)))}
        return [tokens[i] for i in item.options]

    def next_item(self, reader: ReaderInfo, study_id: int) -> dict | None:
        """The first unanswered item in the reader's order (None when finished); marks it shown."""
        with self._write_lock, self.Session.begin() as s:
            study = self._enrolled_study(s, reader, study_id)
            answered_items = select(Answer.item_id).where(Answer.reader_id == reader.id, Answer.study_id == study_id)
            item = s.scalar(select(Item).where(Item.study_id == study_id, Item.reader_id == reader.id,
                                               Item.id.not_in(answered_items)).order_by(Item.position).limit(1))
            total = s.scalar(select(func.count()).select_from(Item).where(Item.study_id == study_id,
                                                                          Item.reader_id == reader.id))
            answered = s.scalar(select(func.count()).select_from(Answer).where(Answer.study_id == study_id,
                                                                               Answer.reader_id == reader.id))
            if item is None:
                return None
            if item.shown_at is None:
                item.shown_at = timestamp()
            return self._item_view(s, study, item, total, answered)

    def item_for(self, reader: ReaderInfo, study_id: int, item_id: int) -> dict:
        """One of the reader's own items with their own answer (for review/edit in studies that allow it)."""
        with self.Session() as s:
            study = self._enrolled_study(s, reader, study_id)
            item = s.get(Item, item_id) if valid_id(item_id) else None
            if item is None or item.reader_id != reader.id or item.study_id != study_id:
                raise NotFound("no such question for this reader")
            total = s.scalar(select(func.count()).select_from(Item).where(Item.study_id == study_id,
                                                                          Item.reader_id == reader.id))
            answered = s.scalar(select(func.count()).select_from(Answer).where(Answer.study_id == study_id,
                                                                               Answer.reader_id == reader.id))
            view = self._item_view(s, study, item, total, answered)
            ans = s.scalar(select(Answer).where(Answer.item_id == item.id))
            view["my_answer"] = ans.payload if ans else None
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
        second answers (unless the study allows edits: then the old version goes to history)."""
        now = timestamp()
        with self.Session() as s:
            study = self._enrolled_study(s, reader, study_id)
            if not study.active:
                raise PermissionDenied("this study is closed")
            item = s.get(Item, item_id) if valid_id(item_id) else None
            if item is None or item.reader_id != reader.id or item.study_id != study_id:
                raise NotFound("this question is not assigned to you")
            case = s.get(Case, item.case_id)
            clean = validate_payload(item.protocol, payload, option_tokens=self._option_tokens(s, item),
                                     features=case.features or {})
            shown_at = item.shown_at or now
            allow_edits, case_id, protocol, iid = study.allow_edits, case.id, item.protocol, item.id
            answer = Answer(item_id=iid, study_id=study_id, reader_id=reader.id, case_id=case_id,
                            protocol=protocol, question=question, payload=clean, shown_at=shown_at,
                            answered_at=now, duration_s=max(0.0, now - shown_at), revision=0)
            s.add(answer)
            try:
                with self._write_lock:
                    s.commit()
                return {"answer_id": answer.id, "item_id": iid, "revision": 0, "stored": True}
            except IntegrityError:
                s.rollback()
        if not allow_edits:
            raise DuplicateAnswer("you already answered this question; answers cannot be changed in this study")
        return self._edit(reader, iid, case_id, protocol, question, clean, now)

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
