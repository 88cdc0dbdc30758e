"""The thyroid ultrasound knowledge base: feature groups, synonyms, prompts, TI-RADS.

Why one module: the same vocabulary is used by the importers (DDTI free text -> chips), the
model (chips -> FG/BG texts, term classes for the FG attention weight omega), the UI (chips)
and the Turing test (protocol 3 boxes). Keeping it in one place means a word added here is
understood everywhere, and the prompt grammar can be inverted exactly (`parse_prompt`).

Prompt grammar (fixed so that `parse_prompt(build_prompts(c))` gives `c` back):
- every chip becomes one *phrase* (see `PHRASES`), e.g. ("halo", "none") -> "no halo";
- FG text = the nodule phrases in `GROUPS` order joined by ", " (malignancy, subtype, nodule
  features, location); "thyroid nodule" when no nodule chip is set;
- BG text = `BG_PREFIX` + (", <plane> plane" when a plane is set);
- full prompt = FG + ". " + BG.

Term classes (for omega in the FG cross-attention, paper eq. 9): the paper's Supplementary
Table 1 is not available here, so the classes are *derived from the subtype profiles*: a term
is **particular** when it is typical of a rare subtype (follicular, medullary, anaplastic) and
not of the common ones (benign, papillary), **joint** when typical of both, **common**
otherwise. The rare subtype names themselves are particular. `term_class_of` exposes the table.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

Chips = dict[str, str]


class ChipError(ValueError):
    """A chip set that cannot be used: unknown group/value or a contradiction."""


GROUPS: dict[str, tuple[str, ...]] = {
    "malignancy": ("benign", "malignant"),
    "subtype": ("benign", "papillary", "follicular", "medullary", "anaplastic"),
    "composition": ("cystic", "spongiform", "mixed", "solid"),
    "echogenicity": ("anechoic", "hyperechoic", "isoechoic", "hypoechoic", "very hypoechoic"),
    "echotexture": ("homogeneous", "heterogeneous"),
    "calcification": ("none", "macrocalcification", "rim", "microcalcification"),
    "aspect": ("wider-than-tall", "taller-than-wide", "round/oval"),
    "shape": ("regular", "irregular"),
    "margin": ("smooth/clear", "ill-defined", "lobulated/irregular", "extrathyroidal extension"),
    "halo": ("none", "thin regular", "thick/irregular"),
    "size": ("small", "middle", "large"),
    "location": ("inferior", "middle", "upper pole"),
    "plane": ("transverse", "longitudinal"),
}

#: The ten features a reader marks in Turing-test protocol 3.
PROTOCOL3_GROUPS: tuple[str, ...] = (
    "composition", "echogenicity", "echotexture", "calcification", "aspect",
    "shape", "margin", "halo", "size", "location",
)

#: Groups whose phrases go into the BG text; all others describe the nodule (FG).
BG_GROUPS: tuple[str, ...] = ("plane",)
BG_PREFIX = "thyroid ultrasound image"
EMPTY_FG = "thyroid nodule"

_LABELS = {
    "malignancy": "benign/malignant", "subtype": "subtype", "composition": "composition",
    "echogenicity": "echogenicity", "echotexture": "echotexture", "calcification": "calcification",
    "aspect": "aspect", "shape": "shape", "margin": "margin", "halo": "halo", "size": "size",
    "location": "location", "plane": "plane",
}


def _phrase(group: str, value: str) -> str:
    """The words one chip contributes to a prompt (unique across all chips)."""
    special = {
        ("subtype", "benign"): "benign nodule",
        ("subtype", "papillary"): "papillary carcinoma",
        ("subtype", "follicular"): "follicular carcinoma",
        ("subtype", "medullary"): "medullary carcinoma",
        ("subtype", "anaplastic"): "anaplastic carcinoma",
        ("calcification", "none"): "no calcification",
        ("calcification", "rim"): "rim calcification",
        ("halo", "none"): "no halo",
        ("margin", "extrathyroidal extension"): "extrathyroidal extension",
        ("location", "inferior"): "at the inferior pole",
        ("location", "middle"): "in the middle part",
        ("location", "upper pole"): "at the upper pole",
    }
    if (group, value) in special:
        return special[(group, value)]
    if group in ("malignancy", "echogenicity", "aspect") or group == "calcification":
        return value
    suffix = {"composition": "composition", "echotexture": "echotexture", "shape": "shape",
              "margin": "margin", "halo": "halo", "size": "size", "plane": "plane"}[group]
    return f"{value} {suffix}"


PHRASES: dict[tuple[str, str], str] = {(g, v): _phrase(g, v) for g, vals in GROUPS.items() for v in vals}
_PHRASE_TO_CHIP: dict[str, tuple[str, str]] = {p: gv for gv, p in PHRASES.items()}
assert len(_PHRASE_TO_CHIP) == len(PHRASES), "prompt phrases must be unique"

# Free-text synonyms -> canonical value, per group. Keys are normalised by `_norm`.
_SYNONYMS: dict[str, dict[str, str]] = {
    "malignancy": {"low risk": "benign", "high risk": "malignant", "malignancy": "malignant",
                   "cancer": "malignant", "carcinoma": "malignant"},
    "subtype": {"ptc": "papillary", "ftc": "follicular", "mtc": "medullary", "atc": "anaplastic",
                "papillary thyroid carcinoma": "papillary", "follicular thyroid carcinoma": "follicular",
                "medullary thyroid carcinoma": "medullary", "anaplastic thyroid carcinoma": "anaplastic",
                "benign nodule": "benign"},
    "composition": {"dense": "solid", "predominantly solid": "mixed", "predominantly cystic": "mixed",
                    "mixed cystic and solid": "mixed", "cyst": "cystic", "almost completely cystic": "cystic",
                    "almost completely solid": "solid", "completely solid": "solid"},
    "echogenicity": {"anechogenicity": "anechoic", "hyperechogenicity": "hyperechoic",
                     "isoechogenicity": "isoechoic", "hypoechogenicity": "hypoechoic",
                     "marked hypoechogenicity": "very hypoechoic", "markedly hypoechoic": "very hypoechoic",
                     "marked hypoechoic": "very hypoechoic", "hyperechogenic": "hyperechoic",
                     "isoechogenic": "isoechoic", "hypoechogenic": "hypoechoic"},
    "echotexture": {"homogeneous echotexture": "homogeneous", "heterogeneous echotexture": "heterogeneous",
                    "homogenous": "homogeneous", "heterogenous": "heterogeneous"},
    "calcification": {"non": "none", "no": "none", "no calcification": "none", "no calcifications": "none",
                      "absent": "none", "macrocalcifications": "macrocalcification",
                      "microcalcifications": "microcalcification", "punctate foci": "microcalcification",
                      "punctate echogenic foci": "microcalcification",
                      "microcalcification/punctate foci": "microcalcification",
                      "rim calcification": "rim", "peripheral calcification": "rim",
                      "eggshell calcification": "rim", "coarse calcification": "macrocalcification"},
    "aspect": {"taller than wide": "taller-than-wide", "wider than tall": "wider-than-tall",
               "round": "round/oval", "oval": "round/oval", "round or oval": "round/oval"},
    "shape": {"regular shape": "regular", "irregular shape": "irregular"},
    "margin": {"well defined": "smooth/clear", "well-defined": "smooth/clear",
               "well defined smooth": "smooth/clear", "smooth": "smooth/clear", "clear": "smooth/clear",
               "circumscribed": "smooth/clear", "ill defined": "ill-defined", "ill- defined": "ill-defined",
               "illdefined": "ill-defined", "microlobulated": "lobulated/irregular",
               "macrolobulated": "lobulated/irregular", "spiculated": "lobulated/irregular",
               "lobulated": "lobulated/irregular", "irregular": "lobulated/irregular",
               "extension": "extrathyroidal extension", "ete": "extrathyroidal extension",
               "extra-thyroidal extension": "extrathyroidal extension"},
    "halo": {"no halo": "none", "absent": "none", "thin": "thin regular", "thin halo": "thin regular",
             "thick": "thick/irregular", "thick halo": "thick/irregular", "irregular halo": "thick/irregular"},
    "size": {"medium": "middle", "moderate": "middle"},
    "location": {"lower pole": "inferior", "inferior pole": "inferior", "lower": "inferior",
                 "middle pole": "middle", "mid": "middle", "middle third": "middle",
                 "upper": "upper pole", "superior pole": "upper pole", "superior": "upper pole",
                 "upper 1/3": "upper pole", "upper third": "upper pole", "lower 1/3": "inferior",
                 "lower third": "inferior", "middle 1/3": "middle"},
    "plane": {"transversal": "transverse", "axial": "transverse", "sagittal": "longitudinal",
              "long axis": "longitudinal"},
}


def _norm(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation: 'Ill-  Defined.' -> 'ill- defined'."""
    return re.sub(r"\s+", " ", str(text).strip().lower()).strip(" .;:")


def normalize_value(group: str, free_text: str | None) -> str | None:
    """Map free text (e.g. DDTI's 'hypoechogenicity') onto the canonical value of `group`.

    Returns None for blank text; raises ChipError for an unknown group or unmappable text, so
    that a typo never silently becomes "unspecified".
    """
    if group not in GROUPS:
        raise ChipError(f"Unknown feature group {group!r}; known groups: {', '.join(GROUPS)}.")
    if free_text is None:
        return None
    text = _norm(free_text)
    if not text:
        return None
    if text in GROUPS[group]:
        return text
    if text in _SYNONYMS.get(group, {}):
        return _SYNONYMS[group][text]
    phrase = _PHRASE_TO_CHIP.get(text)
    if phrase and phrase[0] == group:
        return phrase[1]
    raise ChipError(f"Unknown {_LABELS[group]} value {free_text!r}; expected one of: {', '.join(GROUPS[group])}.")


def validate_chips(chips: Mapping[str, object] | None) -> Chips:
    """Normalise a chip set and reject contradictions with a message naming them.

    A value may also be a list (a multi-select in the UI): more than one distinct value in
    one group ("two compositions") is a contradiction. Empty values mean "unspecified".
    """
    out: Chips = {}
    for group, raw in (chips or {}).items():
        if group not in GROUPS:
            raise ChipError(f"Unknown feature group {group!r}; known groups: {', '.join(GROUPS)}.")
        values = list(raw) if isinstance(raw, (list, tuple, set, frozenset)) else [raw]
        normed = []
        for v in values:
            n = normalize_value(group, None if v is None else str(v))
            if n is not None and n not in normed:
                normed.append(n)
        if len(normed) > 1:
            raise ChipError(f"Contradictory {_LABELS[group]}: {' and '.join(normed)} (choose one).")
        if normed:
            out[group] = normed[0]
    mal, sub = out.get("malignancy"), out.get("subtype")
    if mal == "benign" and sub not in (None, "benign"):
        raise ChipError(f"Contradictory chips: benign and {sub} (a {sub} carcinoma is malignant).")
    if mal == "malignant" and sub == "benign":
        raise ChipError("Contradictory chips: malignant and subtype benign.")
    return {g: out[g] for g in GROUPS if g in out}


def build_prompts(chips: Mapping[str, object] | None, *, organ: str = "thyroid") -> tuple[str, str]:
    """(text_fg, text_bg) for a chip set; see the module docstring for the grammar.

    `organ` only changes the filler words ("breast ultrasound image" for BUSI).
    """
    c = validate_chips(chips)
    if not re.fullmatch(r"[a-z]+", organ):
        raise ChipError(f"Organ must be one lower-case word, got {organ!r}.")
    fg = [PHRASES[(g, v)] for g, v in c.items() if g not in BG_GROUPS]
    bg = [BG_PREFIX.replace("thyroid", organ)] + [PHRASES[(g, v)] for g, v in c.items() if g in BG_GROUPS]
    return (", ".join(fg) if fg else EMPTY_FG.replace("thyroid", organ)), ", ".join(bg)


def full_prompt(chips: Mapping[str, object] | None, *, organ: str = "thyroid") -> str:
    """The coarse stage's single text: FG + '. ' + BG."""
    fg, bg = build_prompts(chips, organ=organ)
    return f"{fg}. {bg}"


def _chip_of_piece(piece: str) -> tuple[str, str] | None:
    """One prompt piece -> (group, value); None for the fixed filler phrases."""
    p = _norm(piece)
    if p in _PHRASE_TO_CHIP:
        return _PHRASE_TO_CHIP[p]
    if not p or re.fullmatch(r"[a-z]+ (?:nodule|ultrasound image)", p):
        return None  # filler: "thyroid nodule", "breast ultrasound image"
    hits = set()
    for g in GROUPS:
        try:
            v = normalize_value(g, p)
        except ChipError:
            continue
        if v is not None:
            hits.add((g, v))
    if len(hits) == 1:
        return hits.pop()
    if hits:
        raise ChipError(f"Ambiguous prompt words {piece!r}: could be " +
                        ", ".join(f"{g} {v}" for g, v in sorted(hits)) + ".")
    raise ChipError(f"Unknown prompt words {piece!r}: not a feature of the knowledge base.")


def parse_prompt(text: str) -> Chips:
    """Inverse of `build_prompts`/`full_prompt`: FG, BG or full text -> chips.

    Accepts the exact phrases of the grammar and, piece by piece, any unambiguous synonym.
    Raises ChipError for unknown words or two values of one group.
    """
    found: dict[str, list[str]] = {}
    for sentence in re.split(r"\.\s+|\.$", str(text)):
        for piece in sentence.split(","):
            gv = _chip_of_piece(piece)
            if gv is not None:
                found.setdefault(gv[0], []).append(gv[1])
    return validate_chips(found)


def features_from_report(text: str | None) -> Chips:
    """Features mentioned in a free-text report (DDTI's `reporteco`), e.g. 'taller than wide'.

    Only phrases that clearly name a feature are taken; the rest of a report (history,
    Bethesda results, arrows) is not a nodule feature and is ignored on purpose.
    """
    t = _norm(text or "")
    out: Chips = {}
    patterns = [
        ("aspect", r"taller[ -]than[ -]wide", "taller-than-wide"),
        ("aspect", r"wider[ -]than[ -]tall", "wider-than-tall"),
        ("location", r"upper (?:1/3|third|pole)", "upper pole"),
        ("location", r"(?:lower|inferior) (?:1/3|third|pole)", "inferior"),
        ("location", r"middle (?:1/3|third)", "middle"),
        ("composition", r"cystic component", "mixed"),
        ("margin", r"extrathyroidal extension", "extrathyroidal extension"),
    ]
    for group, pat, value in patterns:
        if group not in out and re.search(pat, t):
            out[group] = value
    return out


# --- TI-RADS ------------------------------------------------------------------------------
_POINTS = {
    "composition": {"cystic": 0, "spongiform": 0, "mixed": 1, "solid": 2},
    "echogenicity": {"anechoic": 0, "hyperechoic": 1, "isoechoic": 1, "hypoechoic": 2, "very hypoechoic": 3},
    "aspect": {"wider-than-tall": 0, "round/oval": 0, "taller-than-wide": 3},
    "margin": {"smooth/clear": 0, "ill-defined": 0, "lobulated/irregular": 2, "extrathyroidal extension": 3},
    "calcification": {"none": 0, "macrocalcification": 1, "rim": 2, "microcalcification": 3},
}


def tirads_points(chips: Mapping[str, object] | None) -> int:
    """ACR TI-RADS points (2017): composition + echogenicity + shape + margin + echogenic foci.

    Unspecified groups count 0 points (the ACR default for "cannot be determined").
    """
    c = validate_chips(chips)
    return sum(_POINTS[g].get(c.get(g, ""), 0) for g in _POINTS)


def tirads_level(chips: Mapping[str, object] | None) -> str:
    """TR level from points: 0-1 TR1, 2 TR2, 3 TR3, 4-6 TR4, >=7 TR5 (1 point -> TR1, as ACR's
    chart lists no 1-point level and only spongiform/cystic nodules score that low)."""
    p = tirads_points(chips)
    if p <= 1:
        return "TR1"
    if p == 2:
        return "TR2"
    if p == 3:
        return "TR3"
    return "TR4" if p <= 6 else "TR5"


# --- subtype profiles and term classes ------------------------------------------------------
SUBTYPE_PROFILES: dict[str, Chips] = {
    "benign": {"malignancy": "benign", "subtype": "benign", "composition": "spongiform",
               "echogenicity": "isoechoic", "echotexture": "homogeneous", "calcification": "none",
               "aspect": "wider-than-tall", "shape": "regular", "margin": "smooth/clear", "halo": "thin regular"},
    "papillary": {"malignancy": "malignant", "subtype": "papillary", "composition": "solid",
                  "echogenicity": "hypoechoic", "echotexture": "heterogeneous", "calcification": "microcalcification",
                  "aspect": "taller-than-wide", "shape": "irregular", "margin": "lobulated/irregular", "halo": "none"},
    "follicular": {"malignancy": "malignant", "subtype": "follicular", "composition": "solid",
                   "echogenicity": "isoechoic", "echotexture": "homogeneous", "calcification": "none",
                   "aspect": "round/oval", "shape": "regular", "margin": "smooth/clear", "halo": "thick/irregular",
                   "size": "large"},
    "medullary": {"malignancy": "malignant", "subtype": "medullary", "composition": "solid",
                  "echogenicity": "hypoechoic", "echotexture": "heterogeneous", "calcification": "macrocalcification",
                  "aspect": "round/oval", "shape": "regular", "margin": "smooth/clear", "halo": "none"},
    "anaplastic": {"malignancy": "malignant", "subtype": "anaplastic", "composition": "solid",
                   "echogenicity": "very hypoechoic", "echotexture": "heterogeneous",
                   "shape": "irregular", "margin": "extrathyroidal extension", "halo": "none", "size": "large"},
}
RARE_SUBTYPES = ("follicular", "medullary", "anaplastic")
# Alternatives the profiles cannot hold (one value per group) but DESIGN names:
# FTC iso- *or* hypoechoic, MTC macro- *or* microcalcifications.
_RARE_ALTERNATIVES = {("echogenicity", "hypoechoic"), ("calcification", "microcalcification")}


def _term_class_table() -> dict[tuple[str, str], str]:
    rare = {(g, v) for s in RARE_SUBTYPES for g, v in SUBTYPE_PROFILES[s].items()} | _RARE_ALTERNATIVES
    common = {(g, v) for s, p in SUBTYPE_PROFILES.items() if s not in RARE_SUBTYPES for g, v in p.items()}
    table = {}
    for gv in PHRASES:
        if gv[0] == "subtype":
            table[gv] = "particular" if gv[1] in RARE_SUBTYPES else "common"
        elif gv in rare and gv in common:
            table[gv] = "joint"
        elif gv in rare:
            table[gv] = "particular"
        else:
            table[gv] = "common"
    return table


TERM_CLASSES: dict[tuple[str, str], str] = _term_class_table()


def term_class_of(group: str, value: str) -> str:
    """'particular' | 'joint' | 'common' for one chip."""
    v = normalize_value(group, value)
    return TERM_CLASSES.get((group, v or ""), "common")


_CLASSED = sorted(((PHRASES[gv], c) for gv, c in TERM_CLASSES.items() if c != "common"),
                  key=lambda pc: -len(pc[0]))
_TERM_RE = re.compile("|".join(rf"(?<![\w/-]){re.escape(p)}(?![\w/-])" for p, _ in _CLASSED), re.IGNORECASE)
_CLASS_OF_PHRASE = {p: c for p, c in _CLASSED}


def term_classes(text: str) -> list[tuple[str, str]]:
    """Cut `text` into consecutive pieces classed 'particular' | 'joint' | 'common'.

    Joined, the pieces give `text` back exactly, so a tokenizer's offsets can be mapped onto
    classes. Particular/joint pieces are the chip phrases of those classes (longest match).
    """
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _TERM_RE.finditer(text):
        if m.start() > pos:
            pieces.append((text[pos:m.start()], "common"))
        pieces.append((m.group(0), _CLASS_OF_PHRASE[m.group(0).lower()]))
        pos = m.end()
    if pos < len(text):
        pieces.append((text[pos:], "common"))
    return pieces


def iter_values(groups: Iterable[str] | None = None) -> Iterable[tuple[str, str]]:
    """All (group, value) pairs, in GROUPS order (for UIs and tests)."""
    for g in groups or GROUPS:
        for v in GROUPS[g]:
            yield g, v
