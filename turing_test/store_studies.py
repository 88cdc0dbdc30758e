"""Studies: creation from validated cases (with the blinding check), enrollment and the reader's list."""
from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import Row, func, select

from turing_test import hot_queries as Q
from turing_test.assignment import CaseInfo, plan_items
from turing_test.errors import ManifestError, NotFound
from turing_test.images import blinding_report, default_spec, spec_problems
from turing_test.manifest import CaseSpec, validate_cases
from turing_test.models import PROTOCOLS, Answer, Case, Enrollment, Item, Reader, Study
from turing_test.store_base import ReaderInfo, StoreBase, timestamp, signed64, valid_id


class StudiesMixin(StoreBase):
    """Creating studies and enrolling readers."""

    def create_study(self, name: str, specs: list[CaseSpec], protocols=(1, 2, 3), design: dict | None = None,
                     seed: int = 0, allow_edits: bool = False, description: str = "",
                     readers: list[str] = (), progress: bool = False) -> int:
        """Validate every case first (ManifestError lists all problems), then create atomically."""
        problems = []
        name = (name or "").strip()
        if not name:
            problems.append("the study needs a name")
        protocols = list(protocols) if isinstance(protocols, (list, tuple)) else [protocols]
        try:
            seed = int(seed)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf) from a JSON 1e400
            problems.append(f"seed must be a whole number, got {seed!r}")
            seed = 0
        if not protocols or any(p not in PROTOCOLS for p in protocols) or len(set(protocols)) != len(protocols):
            problems.append(f"protocols must be distinct values of {list(PROTOCOLS)}, got {protocols}")
        design = dict(design or {})
        problems += spec_problems(design.get("serve"))
        if design.get("blinding", "warn") not in ("warn", "strict"):
            problems.append(f'design "blinding" must be "warn" or "strict", got {design.get("blinding")!r}')
        block = design.get("block_size")
        if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
            problems.append(f'design "block_size" must be a whole number of questions >= 1, got {block!r}')
        with self.Session() as s:
            if name and s.scalar(select(Study.id).where(Study.name == name)) is not None:
                problems.append(f"a study named {name!r} exists")
        try:
            valid = validate_cases(specs, progress=progress)
        except ManifestError as exc:
            problems += exc.problems
            valid = []
        if problems:
            raise ManifestError(problems)
        design.update(self._blinding(valid, design))
        with self.Session.begin() as s:
            study = Study(name=name, description=description, protocols=protocols, design=design, seed=int(seed),
                          active=True, created_at=timestamp(), allow_edits=bool(allow_edits))
            s.add(study)
            s.flush()
            for c in valid:
                s.add(Case(study_id=study.id, token=secrets.token_urlsafe(16), image_path=str(c.image_path),
                           image_sha256=c.sha256, truth=c.truth, method=c.method, subtype=c.subtype,
                           description=c.description, features=c.features, phash=signed64(c.phash)))
            study_id = study.id
        if readers:
            self.enroll(study_id, list(readers))
        return study_id

    @staticmethod
    def _blinding(valid: list, design: dict) -> dict:
        """The study's ServeSpec and what it cannot hide (`turing_test.images`); design["blinding"]
        = "strict" refuses a study whose served cases would still differ."""
        by_truth: dict[str, list[Path]] = {}
        for c in valid:
            by_truth.setdefault(c.truth, []).append(c.image_path)
        spec = default_spec(by_truth, design.get("serve"))
        warnings = blinding_report(by_truth, spec)
        if warnings and design.get("blinding") == "strict":
            raise ManifestError([f"blinding: {w}" for w in warnings])
        return {"serve": spec.as_design(), "blinding_warnings": warnings}

    def blinding(self, study_id: int) -> dict:
        """How a study serves its images and the warnings found at creation (admin view)."""
        with self.Session() as s:
            study = s.get(Study, study_id) if valid_id(study_id) else None
            if study is None:
                raise NotFound(f"no study with id {study_id}")
            design = study.design or {}
        return {"serve": design.get("serve"), "warnings": list(design.get("blinding_warnings", []))}

    def list_studies(self) -> list[dict]:
        with self.Session() as s:
            return [{"id": st.id, "name": st.name, "protocols": st.protocols, "allow_edits": st.allow_edits,
                     "active": st.active} for st in s.scalars(select(Study).order_by(Study.id))]

    def enroll(self, study_id: int, usernames: list[str]) -> int:
        """Enroll readers and write their question lists; returns the number of items created.
        Enrolling an already enrolled reader changes nothing (their order must never move)."""
        created = 0
        with self.Session.begin() as s:
            study = s.get(Study, study_id) if valid_id(study_id) else None
            if study is None:
                raise NotFound(f"no study with id {study_id}")
            cases = [CaseInfo(c.id, c.truth, c.method, c.description, c.features or {}, c.phash)
                     for c in s.scalars(select(Case).where(Case.study_id == study_id).order_by(Case.id))]
            for username in usernames:
                reader = s.scalar(select(Reader).where(Reader.username == username))
                if reader is None:
                    raise NotFound(f"no reader named {username!r}")
                if s.get(Enrollment, (study_id, reader.id)) is not None:
                    continue
                s.add(Enrollment(study_id=study_id, reader_id=reader.id, created_at=timestamp()))
                for it in plan_items(study.protocols, cases, study.design or {}, study.seed, reader.id):
                    s.add(Item(study_id=study_id, reader_id=reader.id, position=it.position, protocol=it.protocol,
                               case_id=it.case_id, options=it.options))
                    created += 1
        return created

    def _enrolled_study(self, s, reader: ReaderInfo, study_id: int) -> Row:
        """(id, active, allow_edits) of a study the reader is enrolled in, in one query; else NotFound."""
        row = None
        if valid_id(study_id):
            row = s.execute(Q.ENROLLED_STUDY, {"study": study_id, "reader": reader.id}).first()
        if row is None:
            raise NotFound("no such study for this reader")
        return row

    def studies_for(self, reader: ReaderInfo) -> list[dict]:
        """The reader's own studies with their own progress."""
        with self.Session() as s:
            rows = s.execute(select(Study).join(Enrollment, Enrollment.study_id == Study.id)
                             .where(Enrollment.reader_id == reader.id, Study.active.is_(True))
                             .order_by(Study.id)).scalars().all()
            out = []
            for st in rows:
                total = s.scalar(select(func.count()).select_from(Item).where(Item.study_id == st.id,
                                                                              Item.reader_id == reader.id))
                done = s.scalar(select(func.count()).select_from(Answer).where(Answer.study_id == st.id,
                                                                               Answer.reader_id == reader.id))
                out.append({"id": st.id, "name": st.name, "description": st.description, "total": total,
                            "answered": done, "protocols": st.protocols, "allow_edits": st.allow_edits})
            return out
