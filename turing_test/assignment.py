"""Per-reader question lists: which cases each protocol asks, in a seeded, balanced order.

Why balanced and not a plain shuffle: a plain shuffle can put ten synthetic images in a row for
one reader, which readers notice and exploit. The balanced order interleaves the strata
(truth x method) so that every prefix of the list keeps the study's proportions, while the
order inside each stratum and the tie-breaks stay random. The seed is (study seed, reader id),
so a reader's order is reproducible and different from every other reader's.
"""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass

from tiger.imagehash import hamming

from turing_test.features import protocol3_groups


@dataclass(frozen=True)
class CaseInfo:
    """What assignment needs to know about a case."""

    id: int
    truth: str
    method: str
    description: str
    features: dict
    phash: int


@dataclass(frozen=True)
class PlannedItem:
    position: int
    protocol: int
    case_id: int
    options: list[int] | None = None


def reader_rng(study_seed: int, reader_id: int, salt: str = "") -> random.Random:
    digest = hashlib.sha256(f"{study_seed}:{reader_id}:{salt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def balanced_order(cases: list[CaseInfo], rng: random.Random, key=lambda c: (c.truth, c.method)) -> list[CaseInfo]:
    """Shuffle inside each stratum, then always draw from the stratum furthest behind its share."""
    strata: dict = defaultdict(list)
    for case in cases:
        strata[key(case)].append(case)
    for members in strata.values():
        rng.shuffle(members)
    total = len(cases)
    taken = {k: 0 for k in strata}
    out: list[CaseInfo] = []
    for step in range(1, total + 1):
        def deficit(k):
            return len(strata[k]) / total * step - taken[k]
        open_keys = [k for k in strata if taken[k] < len(strata[k])]
        best = max(deficit(k) for k in open_keys)
        choices = [k for k in open_keys if abs(deficit(k) - best) < 1e-9]
        k = rng.choice(sorted(choices))
        out.append(strata[k][taken[k]])
        taken[k] += 1
    return out


def subsample(cases: list[CaseInfo], n: int | None, rng: random.Random) -> list[CaseInfo]:
    """Keep n cases, proportionally per stratum (the balanced order's prefix does exactly that)."""
    if not n or n >= len(cases):
        return cases
    return balanced_order(cases, rng)[:n]


def protocol_cases(protocol: int, cases: list[CaseInfo], design: dict) -> list[CaseInfo]:
    """The cases a protocol asks about, per the study design.

    design keys: "cases_per_reader" (per protocol, stratified subsample), "order" ("balanced"
    default, or "random"), "protocol2_truths" / "protocol3_truths" (see below).
    Protocol 1: every case. Protocol 2: cases with a description (of the truths in
    design["protocol2_truths"], default synthetic only). Protocol 3: cases with at least one of
    the ten protocol-3 features (design["protocol3_truths"], default synthetic only). If no
    case has the default truth, all eligible cases are used.
    """
    if protocol == 1:
        return list(cases)
    if protocol == 2:
        eligible = [c for c in cases if c.description]
        truths = design.get("protocol2_truths", ["synthetic"])
    else:
        p3 = set(protocol3_groups())
        eligible = [c for c in cases if p3 & set(c.features)]
        truths = design.get("protocol3_truths", ["synthetic"])
    chosen = [c for c in eligible if c.truth in truths]
    return chosen or eligible


def distractors(target: CaseInfo, pool: list[CaseInfo], n: int = 3) -> list[CaseInfo]:
    """The n images most similar to the target by pHash whose description differs from its own."""
    candidates = [c for c in pool if c.id != target.id and c.description.strip().lower() != target.description.strip().lower()]
    candidates.sort(key=lambda c: (hamming(target.phash & (2**64 - 1), c.phash & (2**64 - 1)), c.id))
    return candidates[:n]


def plan_items(protocols: list[int], cases: list[CaseInfo], design: dict, study_seed: int,
               reader_id: int) -> list[PlannedItem]:
    """The reader's whole list: protocol blocks in study order, each block balanced and shuffled."""
    items: list[PlannedItem] = []
    for protocol in protocols:
        rng = reader_rng(study_seed, reader_id, f"p{protocol}")
        chosen = protocol_cases(protocol, cases, design)
        chosen = subsample(chosen, design.get("cases_per_reader"), rng)
        ordered = chosen[:] if design.get("order") == "random" else balanced_order(chosen, rng)
        if design.get("order") == "random":  # the design may ask for a plain shuffle instead
            rng.shuffle(ordered)
        for case in ordered:
            options = None
            if protocol == 2:
                others = distractors(case, cases)
                if len(others) < 3:
                    continue  # not enough distinct descriptions: the question cannot be fair
                options = [case.id] + [o.id for o in others]
                rng.shuffle(options)
            items.append(PlannedItem(len(items), protocol, case.id, options))
    return items
