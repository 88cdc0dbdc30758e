"""Admin data: raw answers joined with truth, answer histories and counts."""
from __future__ import annotations

from sqlalchemy import func, select

from turing_test.errors import NotFound
from turing_test.models import Answer, AnswerRevision, Case, Reader, Study
from turing_test.protocols import score
from turing_test.store_base import ReaderInfo, StoreBase, valid_id


class ResultsMixin(StoreBase):
    """Answers for the admin (truth included)."""

    def answer_rows(self, admin: ReaderInfo, study_id: int) -> list[dict]:
        """Raw answers joined with truth, method, subtype and reader group (admin only)."""
        self.require_admin(admin)
        with self.Session() as s:
            if not valid_id(study_id) or s.get(Study, study_id) is None:
                raise NotFound(f"no study with id {study_id}")
            tokens = dict(s.execute(select(Case.token, Case.id).where(Case.study_id == study_id)).all())
            rows = s.execute(select(Answer, Case, Reader).join(Case, Case.id == Answer.case_id)
                             .join(Reader, Reader.id == Answer.reader_id)
                             .where(Answer.study_id == study_id).order_by(Answer.id)).all()
            out = []
            for a, c, r in rows:
                out.append({
                    "answer_id": a.id, "study_id": study_id, "reader": r.username, "reader_id": r.id,
                    "reader_group": r.role, "years_experience": r.years_experience, "case_id": c.id,
                    "protocol": a.protocol, "question": a.question, "truth": c.truth, "method": c.method,
                    "subtype": c.subtype, "payload": a.payload, "chosen_case_id": tokens.get(a.payload.get("choice")),
                    "correct": score(a.protocol, a.payload, truth=c.truth, target_token=c.token),
                    "shown_at": a.shown_at, "answered_at": a.answered_at, "duration_s": a.duration_s,
                    "revision": a.revision,
                })
            return out

    def answer_history(self, admin: ReaderInfo, answer_id: int) -> list[dict]:
        self.require_admin(admin)
        with self.Session() as s:
            return [{"revision": r.revision, "payload": r.payload, "answered_at": r.answered_at,
                     "replaced_at": r.replaced_at}
                    for r in s.scalars(select(AnswerRevision).where(AnswerRevision.answer_id == answer_id)
                                       .order_by(AnswerRevision.revision))]

    def count_answers(self, study_id: int | None = None) -> int:
        with self.Session() as s:
            q = select(func.count()).select_from(Answer)
            if study_id is not None:
                q = q.where(Answer.study_id == study_id)
            return s.scalar(q)
