"""The model card's front matter is Hugging Face model-card metadata that huggingface_hub reads back."""
from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard

from training.model_card import _card_data, card_from_text


def test_front_matter_round_trips_through_huggingface_hub(tmp_path: Path):
    ev = {"coarse_text_only": {"fid": 0.2, "cmmd": 0.19}, "tiger_fg_bg": {"fid": 0.25, "cmmd": 0.58},
          "real_vs_synthetic_judge": {"accuracy": 0.71}}
    model = tmp_path / "tiger-tiny-test"
    model.mkdir()
    path = tmp_path / "README.md"
    card_from_text(_card_data(model, ev), "# tiger-tiny-test\n\nBody text.").save(path)
    card = ModelCard.load(path)
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == "text-to-image"
    assert {(r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("fid", 0.2), ("cmmd", 0.19), ("fid", 0.25), ("cmmd", 0.58), ("accuracy", 0.71)}
    assert card.text.strip().startswith("# tiger-tiny-test") and "Body text." in card.text
