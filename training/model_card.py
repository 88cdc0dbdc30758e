"""Model card and evaluation of a trained Tiger model against the test split it never saw.

Re-runnable by anyone with the model folder and the canonical dataset:

    python -m training.model_card --model models/tiger-tiny-ddti --data data/ddti-128

It writes, into the model folder (or --out): `eval.json` (every number), sample grids per
subtype and per chip change, real images beside generated ones, and `README.md`, the card
itself, whose numbers are read from `eval.json` and `training_log/train_info.json` only.

What is measured (issue: train and ship the default model):
- (a) coarse text-only model (UNet alone, encoders="none") and (b) full Tiger model (FG+BG):
  FID and CMMD on domain-CLIP embeddings against the real test images, plus the rest of
  `tiger.metrics.report.evaluate_sets`;
- SSIM of Reference-mode outputs to their source images;
- accuracy of a small real-vs-synthetic CNN judge on held-out images (0.5 = indistinguishable);
- nearest-neighbour distance of generated images to the training set against that of real test
  images (a copy would sit much closer than real held-out images do);
- chip fidelity: the domain CLIP's retrieval accuracy of the prompting chip among the values of
  its group, on generated images (and on real test images, as the embedder's own ceiling).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


import tiger  # noqa: F401
from training.card_eval import evaluate


def _fmt(v: float | None, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}"


def _model_id(model: Path) -> str:
    index = model / "model_index.json"
    return json.loads(index.read_text()).get("tiger", {}).get("model_id", model.name) if index.exists() else model.name


def _precision(stage: dict) -> str:
    """accelerate writes "no" for plain fp32 training."""
    p = stage.get("mixed_precision", "n/a")
    return "fp32" if p == "no" else p


def _continuation_lines(info: dict) -> list[str]:
    """Stages continued from the shipped weights in later sessions (training.continue_model)."""
    conts = info.get("continuations", [])
    if not conts:
        return []
    lines = ["", "Continued later from the shipped fp16 weights (`training.continue_model`; the other "
             "stages kept as they were):", "", "| continuation | stage | steps | training wall-clock (min) | "
             "device | precision | how |", "|---|---|---|---|---|---|---|"]
    for i, c in enumerate(conts, 1):
        for name, st in c.get("stages", {}).items():
            how = ("decoder only (encoder frozen), see the command below" if name == "vae"
                   else f"ControlNets + AFF from {st.get('init') or 'the coarse UNet'}")
            lines.append(f"| {i} | {name} | {st.get('steps', 'n/a')} | {_fmt(st.get('train_seconds', float('nan')) / 60, 1)}"
                         f" | {st.get('device', 'n/a')} | {_precision(st)} | {how} |")
        for cmd in c.get("commands", []):
            lines += ["", "```bash", cmd, "```"]
    return lines


def _realism(model: Path, row: dict) -> list[tuple[str, float | None]]:
    """(judge accuracy, FID, CMMD) of an ablation row's realism JSON; None where not measured."""
    keys = ("judge_accuracy", "fid", "cmmd")
    if not row.get("realism"):
        return [(k, None) for k in keys]
    rep = json.loads((model / "training_log" / row["realism"]).read_text())
    return [(k, rep.get(k)) for k in keys]


def _ablation_lines(model: Path) -> list[str]:
    """The ablation table: `training_log/ablations.json` lists what was tried, each with the
    `training.eval_control` JSON it produced (copied into training_log/ablations/) and, where it
    was measured, the `training.eval_realism` JSON (key "realism") of the same setting."""
    from training import eval_control

    index = model / "training_log" / "ablations.json"
    if not index.exists():
        return []
    rows = json.loads(index.read_text())
    echo = eval_control.CHIP_VALUES["echogenicity"]
    lines = ["", "### Ablations (validation split, `training.eval_control`)", "",
             "What was tried to make the nodule appear where it is placed, each measured by the same script "
             "(Diversify mode, 3 poles x 2 sizes x 3 seeds, 20 steps; echogenicity ratios over 4 seeds). "
             "Judge, FID and CMMD, where measured, are `training.eval_realism` on 64 validation images of the same "
             "setting (judge: held-out accuracy of a real-vs-synthetic CNN, 0.5 = indistinguishable):", "",
             "| variant | what changed | mean IoU | hit rate | centroid in third | worst pole IoU | IoU, mask ignored | "
             + " | ".join(f"ratio {v}" for v in echo) + " | judge | FID | CMMD | kept |",
             "|---|---|---|---|---|---|---|" + "---|" * len(echo) + "---|---|---|---|"]
    for r in rows:
        rep = json.loads((model / "training_log" / r["eval"]).read_text())
        sm = eval_control.summary(rep["splits"]["val"])
        lines.append(f"| {r['label']} | {r['tried']} | {_fmt(sm['mean_iou'], 2)} | {_fmt(sm['hit_rate'], 2)} | "
                     f"{_fmt(sm['centroid_in_third'], 2)} | {_fmt(sm['worst_pole_iou'], 2)} | "
                     f"{_fmt(sm['mask_ignored_iou'], 2)} | "
                     + " | ".join(_fmt(sm["echogenicity_ratio"][v], 2) for v in echo)
                     + " | " + " | ".join(_fmt(x, 2 if k == "judge_accuracy" else 3) for k, x in _realism(model, r))
                     + f" | {'yes' if r.get('kept') else 'no'} |")
    lines += ["", "Commands of the rows:", ""]
    for r in rows:
        rep = json.loads((model / "training_log" / r["eval"]).read_text())
        lines.append(f"- {r['label']}: `{rep.get('command', 'n/a')}`" + (f"; trained with `{r['train']}`" if r.get("train") else ""))
    return lines


def _control_lines(model: Path, ev: dict) -> list[str]:
    """Does the image show what was asked? (training.eval_control on this model, val and test)."""
    from training import eval_control

    if not ev.get("control"):
        why = ("eval.json predates the control evaluation: rerun `training.model_card` without --card-only"
               if (model / "segmenter").exists() else "the model folder has no segmenter/")
        return ["", f"No control evaluation ({why})."]
    lines = ["", "## Control: does the image show what was asked?", "",
             "Measured in pixels by `training.eval_control` (see its docstring): the shipped nodule segmenter on "
             "Diversify-mode images placed at each pole and size, against the same segmenter on real images of the "
             "split with their own outlines; grey ratio inside the mask over a ring around it, bright foci and edge "
             "sharpness per chip value, generated with the same seeds and backgrounds (one chip changed) beside real "
             "nodules with that value.", "", eval_control.markdown(ev["control"])]
    return lines + _ablation_lines(model)


def write_card(model: Path, out: Path, ev: dict, command: str) -> Path:
    """README.md of the model folder, from eval.json and train_info.json only."""
    info_path = model / "training_log" / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    a, b = ev["coarse_text_only"], ev["tiger_fg_bg"]
    lines = [
        "# tiger-tiny-ddti", "",
        "The default model of Tiger Studio: the `tiny` preset of the Tiger Model (latent diffusion "
        "with a nodule encoder (mask + nodule text) and a background encoder (Sobel map + "
        "background text) fused by attentional feature fusion), trained from scratch on the DDTI "
        "thyroid ultrasound images. For teaching and method development; not for diagnosis.", "",
        f"Model id (written into every generated PNG's parameter record): `{_model_id(model)}`.", "",
        "## Data and split", "",
        f"- DDTI as distributed (`../shared/data/ddti`), imported by `training.prepare` at 128 px "
        "greyscale, scanner side panels and burned-in text cropped away, dual views split.",
        f"- Labels from TI-RADS (2-3 benign, 4a-5 malignant); splits by near-duplicate group, "
        f"stratified by label, split seed {ev['split_seed']}. The background bank holds Sobel maps "
        "of training images only.", "",
        "## Training", "",
    ]
    stages = info.get("stages", {})
    if stages:
        lines += ["| stage | steps | training wall-clock (min) | device | precision |", "|---|---|---|---|---|"]
        for name, st in stages.items():
            lines.append(f"| {name} | {st.get('steps', 'n/a')} | {_fmt(st.get('train_seconds', float('nan')) / 60, 1)} | "
                         f"{st.get('device', 'n/a')} | {_precision(st)} |")
        lines.append("")
    for extra in ("preset", "train_images", "python", "torch"):
        if extra in info:
            lines.append(f"- {extra}: {info[extra]}")
    if "command" in info:
        lines += ["", "Trained with (two runs of the same command on a borrowed GPU; the second resumed "
                  "coarse from its checkpoint and skipped the finished stages):", "", "```bash",
                  info["command"], "```"]
    lines += _continuation_lines(info)
    vae_runs = [("first chain", (stages.get("vae") or {}).get("val") or {})]
    vae_runs += [("decoder continuation", c["stages"]["vae"].get("val") or {})
                 for c in info.get("continuations", []) if "vae" in c.get("stages", {})]
    for label, vae in vae_runs:
        if vae:
            lines += ["", f"Autoencoder ({label}) on {vae.get('images')} held-out validation images: PSNR "
                      f"{_fmt(vae.get('psnr_db'), 2)} dB (target 28), variance-of-Laplacian ratio "
                      f"(reconstruction / input) {_fmt(vae.get('laplacian_var_ratio'), 3)} (target >= 0.7)."]
    curves = sorted(p.name for p in (model / "training_log").glob("*.png")) if (model / "training_log").exists() else []
    for c in curves:
        lines.append(f"\n![{c}](training_log/{c})")
    lines += [
        "", "## Evaluation against the DDTI test split (never trained on)", "",
        f"{ev['n_test_images']} test images, {ev['steps']} DDIM steps, seed {ev['seed']}; embeddings: "
        f"{ev['embedder']}. Lower is better for FID, CMMD, KID.", "",
        "| metric | (a) coarse, text only | (b) Tiger FG+BG |", "|---|---|---|",
    ]
    for key in ("fid", "cmmd", "kid", "density", "coverage", "ssim", "gs", "clip_score", "phash_mean", "near_copy_share"):
        if key in a or key in b:
            lines.append(f"| {key} | {_fmt(a.get(key))} | {_fmt(b.get(key))} |")
    ref, judge, nn = ev["reference_mode"], ev["real_vs_synthetic_judge"], ev["nearest_neighbour_rms"]
    lines += [
        "",
        f"- Reference mode (strength {ref['strength']}): SSIM to the source {_fmt(ref['ssim_mean'])} "
        f"(sd {_fmt(ref['ssim_std'])}, n={ref['n']}).",
        f"- Real-vs-synthetic CNN judge, 2-fold held-out accuracy: {_fmt(judge['accuracy'])} "
        f"({judge['n_per_class']} per class; 0.5 = indistinguishable).",
        f"- Nearest-neighbour RMS distance to the training set (0-255 scale, 64 px): generated "
        f"{_fmt(nn['generated_mean'], 1)} (min {_fmt(nn['generated_min'], 1)}) vs real test "
        f"{_fmt(nn['real_test_mean'], 1)} (min {_fmt(nn['real_test_min'], 1)}).",
    ]
    if nn["generated_min"] < nn["real_test_min"]:
        lines.append(
            "  Some generated images sit nearer a training image than any real test image does. (b) takes "
            "its background Sobel map from the bank of training images, so its layout follows one training "
            "image by design; look at the closest pairs before using such images as new cases.")
    lines += [
        "", "Chip fidelity (domain-CLIP retrieval of the prompting chip among its group's values):", "",
        "| group | generated | real test images | chance |", "|---|---|---|---|",
    ]
    for g, e in ev["chip_fidelity"].items():
        lines.append(f"| {g} | {_fmt(e['generated_accuracy'], 2)} (n={e['n']}) | "
                     f"{_fmt(e.get('real_accuracy'), 2)} (n={e.get('real_n', 0)}) | {_fmt(e['chance'], 2)} |")
    seg_report = model / "segmenter" / "report.json"
    if seg_report.exists():
        seg = json.loads(seg_report.read_text())
        t = seg.get("test", {})
        lines += ["", f"Nodule segmenter (`segmenter/`, {seg.get('architecture', 'YOLOv8n-seg')}, "
                  f"{seg.get('epochs')} epochs at {seg.get('imgsz')} px, `training/train_segmenter.py`): "
                  f"test-split IoU {_fmt(t.get('iou'))}, Dice {_fmt(t.get('dice'))} (n={t.get('n')}, "
                  f"missed {t.get('missed')})."]
    lines += _control_lines(model, ev)
    verdict = ("beats" if b.get("fid", 1e9) < a.get("fid", -1) and b.get("cmmd", 1e9) < a.get("cmmd", -1)
               else "does not beat")
    lines += ["", f"At this training length the full model {verdict} the coarse text-only model on both FID "
              "and CMMD; the fine stage (ControlNets + AFF) is the shortest-trained part of the chain.",
              "", "## Samples", ""]
    for name, f in ev["grids"].items():
        lines.append(f"![{name}]({f})\n")
    lines += ["## Reproduce", "", "```bash", command, "```", "",
              f"This evaluation took {ev['seconds']:.0f} s on {ev['device']}.", ""]
    path = out / "README.md"
    card_from_text(_card_data(model, ev), "\n".join(lines)).save(path)
    return path


def _card_data(model: Path, ev: dict) -> dict:
    """The YAML front matter of the card (Hugging Face model-card metadata)."""
    metrics = []
    for label, key in (("coarse text-only", "coarse_text_only"), ("Tiger FG+BG", "tiger_fg_bg")):
        for name in ("fid", "cmmd"):
            value = (ev.get(key) or {}).get(name)
            if value is not None:
                metrics.append({"type": name, "name": f"{name.upper()} ({label}, domain-CLIP embeddings)",
                                "value": round(float(value), 4)})
    judge = (ev.get("real_vs_synthetic_judge") or {}).get("accuracy")
    if judge is not None:
        metrics.append({"type": "accuracy", "name": "real-vs-synthetic CNN judge", "value": round(float(judge), 4)})
    return {"library_name": "diffusers", "pipeline_tag": "text-to-image", "license": "other",
            "datasets": ["DDTI (Digital Database Thyroid Image)"], "tags": ["medical-imaging", "ultrasound", "thyroid",
                                                                      "controlnet", "tiger-studio"],
            "model_name": _model_id(model),
            "model-index": [{"name": _model_id(model), "results": [
                {"task": {"type": "text-to-image"}, "dataset": {"name": "DDTI test split", "type": "ddti"},
                 "metrics": metrics}]}] if metrics else None}


def card_from_text(data: dict, text: str):
    """A `huggingface_hub.ModelCard` of the markdown `text` with `data` as its YAML front matter
    (parsed back by ModelCard, so a malformed field fails here, not on the Hub)."""
    import yaml
    from huggingface_hub import ModelCard

    front = yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False, allow_unicode=True)
    card = ModelCard(f"---\n{front}---\n\n{text}")
    card.content = f"---\n{front}---\n\n{text}"  # keep our front matter verbatim (ModelCard re-renders it otherwise)
    return card


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/tiger-tiny-ddti"))
    p.add_argument("--data", type=Path, default=Path("data/ddti-128"))
    p.add_argument("--out", type=Path, default=None, help="default: the model folder")
    p.add_argument("--n", type=int, default=64, help="test images to evaluate (at most the test split)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=None, help="default: the one in train_info.json, else 0")
    p.add_argument("--device", default=None)
    p.add_argument("--card-only", action="store_true", help="rewrite README.md from an existing eval.json")
    p.add_argument("--control-seeds", type=int, default=3, help="control evaluation: images per pole and size (0: skip)")
    p.add_argument("--control-chip-seeds", type=int, default=4, help="control evaluation: images per chip value")
    args = p.parse_args(argv)
    out = args.out or args.model
    out.mkdir(parents=True, exist_ok=True)
    split_seed = args.split_seed
    if split_seed is None:
        info = args.model / "training_log" / "train_info.json"
        split_seed = json.loads(info.read_text()).get("split_seed", 0) if info.exists() else 0
    if args.card_only:
        ev = json.loads((out / "eval.json").read_text())
    else:
        ev = evaluate(args.model, args.data, out, args.n, args.steps, args.seed, split_seed, args.device,
                      args.control_seeds, args.control_chip_seeds)
        (out / "eval.json").write_text(json.dumps(ev, indent=1, default=float))
    command = (f"python -m training.model_card --model {args.model} --data {args.data} --n {args.n} "
               f"--steps {args.steps} --seed {args.seed} --split-seed {split_seed} --control-seeds {args.control_seeds} "
               f"--control-chip-seeds {args.control_chip_seeds}")
    card = write_card(args.model, out, ev, command)
    print(json.dumps({k: ev[k] for k in ("n_test_images", "embedder", "seconds")}, indent=1))
    print(f"model card: {card}")


if __name__ == "__main__":
    main()
