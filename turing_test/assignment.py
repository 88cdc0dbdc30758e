"""Per-reader question lists: which cases each protocol asks, in a seeded, per-reader shuffle.

Why permuted blocks and not the old interleaving: drawing always from the stratum furthest
behind its share made the truth sequence almost alternating (`rsrsrsrrsrsrsr`) and the same
for every reader, so a reader who noticed the rhythm could answer without looking. Now the
list is cut into blocks of about `block_size` questions (default 20), each holding its share
of every stratum (truth x method) and shuffled inside: runs of one class then occur about as
often as in a plain shuffle (tests/test_security.py measures it), while no long stretch drifts
far from the study's proportions. `design["order"] = "random"` asks for a plain shuffle.
The seed is (study seed, reader id), so a reader's order is reproducible and different from
every other reader's.
"""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass

from turing_test.protocols import PROTOCOLS


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


DEFAULT_BLOCK_SIZE = 20


def _strata(cases: list[CaseInfo], rng: random.Random, key) -> list[list[CaseInfo]]:
    """The cases grouped by key, each group shuffled, groups in a stable (sorted) order."""
    strata: dict = defaultdict(list)
    for case in cases:
        strata[key(case)].append(case)
    groups = [strata[k] for k in sorted(strata)]
    for members in groups:
        rng.shuffle(members)
    return groups


def _spread(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` near-equal counts; which parts get the remainder is random."""
    base, extra = divmod(total, parts)
    counts = [base] * parts
    for i in rng.sample(range(parts), extra):
        counts[i] += 1
    return counts


def balanced_order(cases: list[CaseInfo], rng: random.Random, key=lambda c: (c.truth, c.method),
                   block_size: int = DEFAULT_BLOCK_SIZE) -> list[CaseInfo]:
    """Permuted blocks: every block holds its share of each stratum and is shuffled inside."""
    if not cases:
        return []
    n_blocks = max(1, round(len(cases) / max(1, int(block_size))))
    blocks: list[list[CaseInfo]] = [[] for _ in range(n_blocks)]
    for members in _strata(cases, rng, key):
        start = 0
        for block, count in zip(blocks, _spread(len(members), n_blocks, rng)):
            block += members[start:start + count]
            start += count
    out: list[CaseInfo] = []
    for block in blocks:
        rng.shuffle(block)
        out += block
    return out


def subsample(cases: list[CaseInfo], n: int | None, rng: random.Random,
              key=lambda c: (c.truth, c.method)) -> list[CaseInfo]:
    """Keep n cases, proportionally per stratum (largest remainders, ties broken at random)."""
    if not n or n >= len(cases):
        return cases
    groups = _strata(cases, rng, key)
    exact = [len(g) * n / len(cases) for g in groups]
    quota = [int(q) for q in exact]
    order = sorted(range(len(groups)), key=lambda i: (exact[i] - quota[i], rng.random()), reverse=True)
    for i in order[:n - sum(quota)]:
        quota[i] += 1
    return [c for g, q in zip(groups, quota) for c in g[:q]]


def protocol_cases(protocol: int, cases: list[CaseInfo], design: dict) -> list[CaseInfo]:
    """The cases a protocol asks about, per the study design (`StudyProtocol.eligible`).

    design keys: "cases_per_reader" (per protocol, stratified subsample), "order" ("blocks"
    default, or "random"), "protocol2_truths" / "protocol3_truths" (default synthetic only).
    """
    return PROTOCOLS[protocol].eligible(cases, design)


def plan_items(protocols: list[int], cases: list[CaseInfo], design: dict, study_seed: int,
               reader_id: int) -> list[PlannedItem]:
    """The reader's whole list: protocol blocks in study order, each in permuted blocks of its own."""
    items: list[PlannedItem] = []
    for protocol in protocols:
        rng = reader_rng(study_seed, reader_id, f"p{protocol}")
        chosen = protocol_cases(protocol, cases, design)
        chosen = subsample(chosen, design.get("cases_per_reader"), rng)
        if design.get("order") == "random":  # the design may ask for a plain shuffle instead
            ordered = chosen[:]
            rng.shuffle(ordered)
        else:
            ordered = balanced_order(chosen, rng, block_size=design.get("block_size", DEFAULT_BLOCK_SIZE))
        for case in ordered:
            try:
                options = PROTOCOLS[protocol].options(case, cases, rng)
            except LookupError:
                continue  # e.g. too few distinct descriptions: the question cannot be fair
            items.append(PlannedItem(len(items), protocol, case.id, options))
    return items
