"""The three protocols as data: one object per protocol in `PROTOCOLS`, each with what a reader is
shown, which cases it asks about, a validator and a scorer of its answers.

Why objects in a registry rather than `if protocol == ...` branches: assignment, reading,
scoring and the summary each needed a branch per protocol in another module, and a fourth
protocol would have had to find them all. As grand-challenge keeps questions and answers, each
kind here owns its validation and its scoring; callers look the protocol up by number.

Payload validation is strict (unknown keys, features or choices are refused with a message)
because a silently accepted malformed answer is a lost answer.
"""
from __future__ import annotations

import math
import random
from typing import Any, Protocol as _Typing, Sequence

from tiger.imagehash import hamming

from turing_test.errors import PayloadError
from turing_test.features import protocol3_groups


class CaseLike(_Typing):
    """What a protocol reads of a case (`turing_test.assignment.CaseInfo` has it)."""

    id: int
    truth: str
    description: str
    features: dict
    phash: int


def shown_features(features: dict) -> list[dict]:
    """Protocol 3 checklist: the case's protocol-3 features in the canonical group order."""
    return [{"group": g, "value": features[g], "label": f"{g}: {features[g]}"}
            for g in protocol3_groups() if g in features]


def _refuse_extra(payload: dict, allowed: set[str]) -> None:
    extra = set(payload) - allowed
    if extra:
        raise PayloadError(f"unexpected field(s) {', '.join(sorted(extra))}; allowed: {', '.join(sorted(allowed))}")


class StudyProtocol:
    """One kind of question. Subclasses set `number` and `name` and override what differs."""

    number: int = 0
    name: str = ""
    #: the design key that names which truths the protocol asks about (None: every case)
    truths_key: str | None = None

    def has_content(self, case: CaseLike) -> bool:
        """Whether the case can be asked about at all (e.g. it has a description)."""
        return True

    def eligible(self, cases: Sequence[CaseLike], design: dict) -> list:
        """The cases this protocol asks about, per the study design: those with content, of the
        truths in design[truths_key] (default synthetic only; all eligible when none has it)."""
        eligible = [c for c in cases if self.has_content(c)]
        if self.truths_key is None:
            return eligible
        truths = design.get(self.truths_key, ["synthetic"])
        return [c for c in eligible if c.truth in truths] or eligible

    def options(self, case: CaseLike, pool: Sequence[CaseLike], rng: random.Random) -> list[int] | None:
        """Case ids shown beside the case (None: the case alone). Raises LookupError when the
        question cannot be asked fairly (the item is then left out)."""
        return None

    def view(self, case: Any, option_tokens: list[str] | None) -> dict:
        """What the reader is shown besides the item's numbers (never the truth)."""
        return {"image": case.token}

    def validate(self, payload: dict, *, option_tokens: list[str] | None, features: dict) -> dict:
        raise NotImplementedError

    def score(self, payload: dict, *, truth: str, target_token: str | None) -> float:
        """1.0 correct, 0.0 wrong (protocol 3: a share)."""
        raise NotImplementedError

    def trials(self, payload: dict, correct: float) -> tuple[float, int]:
        """(successes, trials) of one answer for the accuracy tables: one trial by default."""
        return float(correct), 1


class RealOrSynthetic(StudyProtocol):
    number, name = 1, "Real or synthetic"

    def validate(self, payload: dict, *, option_tokens: list[str] | None, features: dict) -> dict:
        _refuse_extra(payload, {"answer", "confidence"})
        answer = str(payload.get("answer", "")).strip().lower()
        if answer not in ("real", "synthetic"):
            raise PayloadError("protocol 1 needs answer 'real' or 'synthetic'")
        out: dict = {"answer": answer}
        confidence = payload.get("confidence")
        if confidence is not None:
            # NaN, Infinity and 1e400 (parsed as inf) are floats too: refuse them before int() would fail
            if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
                    or not math.isfinite(confidence) or confidence != int(confidence) or not 1 <= int(confidence) <= 5:
                raise PayloadError("confidence must be a whole number from 1 to 5")
            out["confidence"] = int(confidence)
        return out

    def score(self, payload: dict, *, truth: str, target_token: str | None) -> float:
        return float(payload["answer"] == truth)


class DescriptionMatching(StudyProtocol):
    number, name = 2, "Description matching"
    truths_key = "protocol2_truths"
    n_distractors = 3

    def has_content(self, case: CaseLike) -> bool:
        return bool(case.description)

    def distractors(self, target: CaseLike, pool: Sequence[CaseLike]) -> list:
        """The images most similar to the target by pHash whose description differs from its own."""
        own = target.description.strip().lower()
        candidates = [c for c in pool if c.id != target.id and c.description.strip().lower() != own]
        candidates.sort(key=lambda c: (hamming(target.phash & (2**64 - 1), c.phash & (2**64 - 1)), c.id))
        return candidates[:self.n_distractors]

    def options(self, case: CaseLike, pool: Sequence[CaseLike], rng: random.Random) -> list[int] | None:
        others = self.distractors(case, pool)
        if len(others) < self.n_distractors:
            raise LookupError("not enough distinct descriptions: the question cannot be fair")
        ids = [case.id] + [o.id for o in others]
        rng.shuffle(ids)
        return ids

    def view(self, case: Any, option_tokens: list[str] | None) -> dict:
        return {"description": case.description, "options": list(option_tokens or [])}

    def validate(self, payload: dict, *, option_tokens: list[str] | None, features: dict) -> dict:
        _refuse_extra(payload, {"choice"})
        choice = payload.get("choice")
        if choice not in (option_tokens or []):
            raise PayloadError("protocol 2 needs 'choice': the id of one of the four images shown")
        return {"choice": choice}

    def score(self, payload: dict, *, truth: str, target_token: str | None) -> float:
        return float(payload["choice"] == target_token)


class FeatureChecklist(StudyProtocol):
    number, name = 3, "Feature checklist"
    truths_key = "protocol3_truths"

    def has_content(self, case: CaseLike) -> bool:
        return bool(set(protocol3_groups()) & set(case.features))

    def view(self, case: Any, option_tokens: list[str] | None) -> dict:
        return {"image": case.token, "features": shown_features(case.features or {})}

    def validate(self, payload: dict, *, option_tokens: list[str] | None, features: dict) -> dict:
        _refuse_extra(payload, {"features"})
        marks = payload.get("features")
        if not isinstance(marks, dict):
            raise PayloadError("protocol 3 needs 'features': {group: true/false} for each listed feature")
        expected = [f["group"] for f in shown_features(features or {})]
        unknown = sorted(set(marks) - set(expected))
        if unknown:
            raise PayloadError(f"unknown feature(s) {', '.join(map(repr, unknown))}; this image lists: {', '.join(expected)}")
        missing = [g for g in expected if g not in marks]
        if missing:
            raise PayloadError(f"mark every listed feature present or absent; missing: {', '.join(missing)}")
        bad = [g for g, v in marks.items() if not isinstance(v, bool)]
        if bad:
            raise PayloadError(f"feature marks must be true (present) or false (absent): {', '.join(bad)}")
        return {"features": {g: marks[g] for g in expected}}

    def score(self, payload: dict, *, truth: str, target_token: str | None) -> float:
        """The share of listed features marked present (the truth: the case was made with them)."""
        marks = payload["features"]
        return sum(marks.values()) / len(marks) if marks else 0.0

    def trials(self, payload: dict, correct: float) -> tuple[float, int]:
        """One trial per listed feature (the paper's feature-level agreement)."""
        marks = payload["features"]
        return float(sum(marks.values())), len(marks)


PROTOCOLS: dict[int, StudyProtocol] = {p.number: p for p in (RealOrSynthetic(), DescriptionMatching(), FeatureChecklist())}
PROTOCOL_NAMES = {n: p.name for n, p in PROTOCOLS.items()}


def protocol(number: int) -> StudyProtocol:
    """The protocol object; PayloadError for a number that names none."""
    try:
        return PROTOCOLS[int(number)]
    except (KeyError, TypeError, ValueError):
        raise PayloadError(f"unknown protocol {number!r}") from None


def validate_payload(number: int, payload, *, option_tokens: list[str] | None = None,
                     features: dict | None = None) -> dict:
    """The normalised payload, or PayloadError saying what is wrong."""
    if not isinstance(payload, dict):
        raise PayloadError("the answer must be a JSON object")
    return protocol(number).validate(payload, option_tokens=option_tokens, features=features or {})


def score(number: int, payload: dict, *, truth: str, target_token: str | None = None) -> float:
    return protocol(number).score(payload, truth=truth, target_token=target_token)
