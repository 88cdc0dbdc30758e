"""Knowledge base: DDTI vocabulary coverage, prompt round trip, conflicts, TI-RADS, term classes."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiger import knowledge as kb
from tiger.paths import SHARED_DATA

DDTI_XML = SHARED_DATA / "ddti" / "xml"


def _ddti_values():
    if not DDTI_XML.is_dir():
        pytest.skip("DDTI data absent")
    out = {}
    for p in sorted(DDTI_XML.glob("*.xml")):
        root = ET.parse(p).getroot()
        for tag in ("composition", "echogenicity", "margins", "calcifications", "reporteco", "tirads"):
            out.setdefault(tag, set()).add((root.findtext(tag) or "").strip())
    return out


def test_every_ddti_feature_string_maps():
    values = _ddti_values()
    fields = {"composition": "composition", "echogenicity": "echogenicity",
              "margins": "margin", "calcifications": "calcification"}
    seen = 0
    for tag, group in fields.items():
        for v in values[tag]:
            mapped = kb.normalize_value(group, v)
            assert (mapped is None) == (v == ""), (tag, v)
            if mapped:
                assert mapped in kb.GROUPS[group]
                seen += 1
    assert seen >= 20  # the real vocabulary, not an empty walk
    assert "taller than wide" in values["reporteco"]
    assert kb.features_from_report("taller than wide") == {"aspect": "taller-than-wide"}
    assert kb.features_from_report("LSD upper 1/3") == {"location": "upper pole"}
    for report in values["reporteco"]:  # non-feature history text must not crash or invent chips
        kb.validate_chips(kb.features_from_report(report))


@pytest.mark.parametrize("group,text,expected", [
    ("echogenicity", "hypoechogenicity", "hypoechoic"), ("margin", "ill- defined", "ill-defined"),
    ("margin", "ill defined", "ill-defined"), ("calcification", "microcalcifications", "microcalcification"),
    ("calcification", "non", "none"), ("composition", "dense", "solid"),
    ("aspect", "taller than wide", "taller-than-wide"), ("echogenicity", "marked hypoechogenicity", "very hypoechoic"),
])
def test_synonyms(group, text, expected):
    assert kb.normalize_value(group, text) == expected


chip_sets = st.fixed_dictionaries({}, optional={g: st.sampled_from(v) for g, v in kb.GROUPS.items()}).filter(
    lambda c: not (c.get("malignancy") == "benign" and c.get("subtype") not in (None, "benign"))
    and not (c.get("malignancy") == "malignant" and c.get("subtype") == "benign"))


@settings(max_examples=300, deadline=None)
@given(chip_sets)
def test_prompt_round_trip(chips):
    fg, bg = kb.build_prompts(chips)
    assert kb.parse_prompt(kb.full_prompt(chips)) == kb.validate_chips(chips)
    assert kb.parse_prompt(fg) == {g: v for g, v in kb.validate_chips(chips).items() if g != "plane"}
    assert kb.full_prompt(chips) == f"{fg}. {bg}"
    pieces = kb.term_classes(kb.full_prompt(chips))
    assert "".join(p for p, _ in pieces) == kb.full_prompt(chips)
    assert all(c in ("particular", "joint", "common") for _, c in pieces)


@pytest.mark.parametrize("chips,words", [
    ({"malignancy": "benign", "subtype": "papillary"}, ["benign", "papillary"]),
    ({"composition": ["solid", "cystic"]}, ["solid", "cystic"]),
    ({"composition": "gooey"}, ["gooey"]),
    ({"colour": "red"}, ["colour"]),
    ({"malignancy": "malignant", "subtype": "benign"}, ["malignant", "benign"]),
])
def test_conflicts_are_named(chips, words):
    with pytest.raises(kb.ChipError) as err:
        kb.validate_chips(chips)
    assert all(w in str(err.value) for w in words)


def test_parse_prompt_rejects_two_values_and_unknown_words():
    with pytest.raises(kb.ChipError, match="solid and cystic"):
        kb.parse_prompt("solid composition, cystic composition")
    with pytest.raises(kb.ChipError, match="purple"):
        kb.parse_prompt("solid composition, purple spots")
    assert kb.parse_prompt("Hypoechogenicity, ill defined") == {"echogenicity": "hypoechoic", "margin": "ill-defined"}


def test_tirads_from_chips():
    assert kb.tirads_points(kb.SUBTYPE_PROFILES["papillary"]) == 2 + 2 + 3 + 2 + 3
    assert kb.tirads_level(kb.SUBTYPE_PROFILES["papillary"]) == "TR5"
    assert kb.tirads_level(kb.SUBTYPE_PROFILES["benign"]) == "TR1"  # spongiform, isoechoic: 1 point
    assert kb.tirads_level({"composition": "solid"}) == "TR2"
    assert kb.tirads_level({"composition": "solid", "echogenicity": "hyperechoic"}) == "TR3"
    assert kb.tirads_level({"composition": "solid", "echogenicity": "hypoechoic"}) == "TR4"


def test_term_classes_and_profiles():
    assert set(kb.SUBTYPE_PROFILES) >= {"benign", "papillary", "follicular", "medullary"}
    for chips in kb.SUBTYPE_PROFILES.values():
        kb.validate_chips(chips)
    classes = dict(kb.term_classes(kb.build_prompts(kb.SUBTYPE_PROFILES["follicular"])[0]))
    assert classes["follicular carcinoma"] == "particular"
    assert classes["thick/irregular halo"] == "particular"
    assert classes["round/oval"] == "particular"
    assert classes["solid composition"] == "joint"
    assert kb.term_class_of("calcification", "microcalcifications") == "joint"
    assert kb.term_class_of("aspect", "taller than wide") == "common"
    assert kb.PROTOCOL3_GROUPS == ("composition", "echogenicity", "echotexture", "calcification", "aspect",
                                   "shape", "margin", "halo", "size", "location")
