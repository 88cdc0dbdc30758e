"""The feature vocabulary, taken from tiger.knowledge (the single source of truth).

Imported lazily so that the storage layer works even while the knowledge base is being edited;
every caller goes through these two functions.
"""
from __future__ import annotations


def groups() -> dict[str, tuple[str, ...]]:
    """All feature groups and their canonical values."""
    from tiger.knowledge import GROUPS

    return dict(GROUPS)


def protocol3_groups() -> tuple[str, ...]:
    """The ten feature groups a reader checks in protocol 3."""
    from tiger.knowledge import PROTOCOL3_GROUPS

    return tuple(PROTOCOL3_GROUPS)


def check_features(features: dict) -> list[str]:
    """Problems with a {group: value} dict (unknown group or value); empty when valid."""
    if not isinstance(features, dict):
        return [f"features must be an object {{group: value}}, got {type(features).__name__}"]
    known = groups()
    problems = []
    for group, value in features.items():
        if group not in known:
            problems.append(f"unknown feature group {group!r}")
        elif value not in known[group]:
            problems.append(f"unknown value {value!r} for feature {group!r} (allowed: {', '.join(known[group])})")
    return problems
