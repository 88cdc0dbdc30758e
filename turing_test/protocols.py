"""The three protocols: what a reader is shown, what an answer must look like, and scoring.

Payload validation is strict (unknown keys, features or choices are refused with a message)
because a silently accepted malformed answer is a lost answer.
"""
from __future__ import annotations

import math

from turing_test.errors import PayloadError
from turing_test.features import protocol3_groups

PROTOCOL_NAMES = {1: "Real or synthetic", 2: "Description matching", 3: "Feature checklist"}


def shown_features(features: dict) -> list[dict]:
    """Protocol 3 checklist: the case's protocol-3 features in the canonical group order."""
    return [{"group": g, "value": features[g], "label": f"{g}: {features[g]}"}
            for g in protocol3_groups() if g in features]


def _refuse_extra(payload: dict, allowed: set[str]) -> None:
    extra = set(payload) - allowed
    if extra:
        raise PayloadError(f"unexpected field(s) {', '.join(sorted(extra))}; allowed: {', '.join(sorted(allowed))}")


def validate_payload(protocol: int, payload, *, option_tokens: list[str] | None = None,
                     features: dict | None = None) -> dict:
    """The normalised payload, or PayloadError saying what is wrong."""
    if not isinstance(payload, dict):
        raise PayloadError("the answer must be a JSON object")
    if protocol == 1:
        _refuse_extra(payload, {"answer", "confidence"})
        answer = str(payload.get("answer", "")).strip().lower()
        if answer not in ("real", "synthetic"):
            raise PayloadError("protocol 1 needs answer 'real' or 'synthetic'")
        out = {"answer": answer}
        confidence = payload.get("confidence")
        if confidence is not None:
            # NaN, Infinity and 1e400 (parsed as inf) are floats too: refuse them before int() would fail
            if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
                    or not math.isfinite(confidence) or confidence != int(confidence) or not 1 <= int(confidence) <= 5:
                raise PayloadError("confidence must be a whole number from 1 to 5")
            out["confidence"] = int(confidence)
        return out
    if protocol == 2:
        _refuse_extra(payload, {"choice"})
        choice = payload.get("choice")
        if choice not in (option_tokens or []):
            raise PayloadError("protocol 2 needs 'choice': the id of one of the four images shown")
        return {"choice": choice}
    if protocol == 3:
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
    raise PayloadError(f"unknown protocol {protocol}")


def score(protocol: int, payload: dict, *, truth: str, target_token: str | None = None) -> float:
    """1.0 correct, 0.0 wrong; protocol 3: share of listed features marked present (the truth)."""
    if protocol == 1:
        return float(payload["answer"] == truth)
    if protocol == 2:
        return float(payload["choice"] == target_token)
    marks = payload["features"]
    return sum(marks.values()) / len(marks) if marks else 0.0
