"""The feature-chip form: which groups get a chip row, and the live texts/TI-RADS preview.

Kept apart from the page so the same form serves Synthesize, Reference and Teach, and so the
preview logic (a plain function) is testable without a browser. All vocabulary comes from
tiger.knowledge; this module only decides presentation: malignancy is derived from the
subtype (so "benign + papillary" cannot be chosen at all), and any remaining conflict is
explained with the knowledge base's own ChipError message instead of being silently fixed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tiger import knowledge as kb

#: One chip row per group, in the order the product lists them (location is set on the canvas).
FORM_GROUPS: tuple[str, ...] = ("subtype", "composition", "echogenicity", "echotexture", "calcification",
                                "aspect", "shape", "margin", "halo", "size", "plane")
UNSET = "unspecified"
#: Preset buttons (label -> SUBTYPE_PROFILES key).
PRESETS: dict[str, str] = {"Typical benign": "benign", "Typical PTC": "papillary",
                           "Typical FTC": "follicular", "Typical MTC": "medullary"}


def choices(group: str) -> list[str]:
    """Radio choices for a group: 'unspecified' first, then the canonical values."""
    return [UNSET, *kb.GROUPS[group]]


def chips_from_form(values: Sequence[Any], groups: Sequence[str] = FORM_GROUPS,
                    location: str | None = None) -> dict[str, str]:
    """Form values (one per group, 'unspecified'/None = not set) -> a chip dict.

    Malignancy follows the subtype: a benign subtype is benign, any carcinoma is malignant.
    """
    chips: dict[str, str] = {}
    for group, value in zip(groups, values):
        if value and value != UNSET:
            chips[group] = str(value)
    if location and location != UNSET:
        chips["location"] = location
    sub = chips.get("subtype")
    if sub:
        chips["malignancy"] = "benign" if sub == "benign" else "malignant"
    return chips


def form_from_chips(chips: Mapping[str, str], groups: Sequence[str] = FORM_GROUPS) -> list[str]:
    """Chip dict -> form values (inverse of chips_from_form for the listed groups)."""
    return [chips.get(g, UNSET) or UNSET for g in groups]


def preset_chips(name: str) -> dict[str, str]:
    """A typical profile (DESIGN.md) by preset label or subtype key; raises ChipError if unknown."""
    key = PRESETS.get(name, name)
    if key not in kb.SUBTYPE_PROFILES:
        raise kb.ChipError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    return dict(kb.SUBTYPE_PROFILES[key])


def preview(chips: Mapping[str, str]) -> dict[str, Any]:
    """Live preview for a chip set: texts, TI-RADS points/level, and a problem message.

    Never raises for bad chips: the page must keep working while the user fixes them, so a
    ChipError becomes `ok=False` with the message and empty texts.
    """
    try:
        clean = kb.validate_chips(chips)
        fg, bg = kb.build_prompts(clean)
        points, level = kb.tirads_points(clean), kb.tirads_level(clean)
    except kb.ChipError as exc:
        return {"ok": False, "chips": dict(chips), "text_fg": "", "text_bg": "", "points": None,
                "level": "", "message": str(exc)}
    return {"ok": True, "chips": clean, "text_fg": fg, "text_bg": bg, "points": points,
            "level": level, "message": ""}


def tirads_markdown(pv: Mapping[str, Any]) -> str:
    """One line for the page: 'ACR TI-RADS: 9 points -> TR5' or the conflict, in words."""
    if not pv["ok"]:
        return f"**Cannot combine these chips:** {pv['message']}"
    return f"**ACR TI-RADS:** {pv['points']} points &rarr; **{pv['level']}**"


def typical_features_markdown(subtype: str) -> str:
    """The typical features of a subtype as a short list (Teach page captions)."""
    profile = preset_chips(subtype)
    rows = [f"- {g}: {v}" for g, v in profile.items() if g not in ("malignancy", "subtype")]
    return f"**{subtype}** ({kb.tirads_level(profile)})\n" + "\n".join(rows)
