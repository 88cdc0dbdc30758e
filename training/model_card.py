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
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

import tiger  # noqa: F401
from tiger import knowledge
from tiger.data import load_metadata, record_chips, split
from tiger.device import pick_device

# Chip changes shown in the per-chip grid and checked by the fidelity test.
CHIP_CHANGES = {
    "echogenicity": ("hyperechoic", "isoechoic", "hypoechoic", "very hypoechoic"),
    "composition": ("cystic", "spongiform", "mixed", "solid"),
    "calcification": ("none", "macrocalcification", "microcalcification"),
    "margin": ("smooth/clear", "ill-defined", "lobulated/irregular"),
}
SUBTYPES = ("benign", "papillary", "follicular", "medullary")


def _grey(path: Path, size: int) -> np.ndarray:
    img = Image.open(path).convert("L")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def _labelled_grid(rows: Sequence[tuple[str, Sequence[Image.Image]]], col_labels: Sequence[str] | None,
                   path: Path, cell: int = 128, captions: Sequence[Sequence[str]] | None = None) -> Path:
    """Rows of images with a label column on the left (and optional column labels on top, and
    an optional caption under each image)."""
    label_w, top = 150, (18 if col_labels else 0)
    cap_h = 14 if captions else 0
    ncol = max(len(imgs) for _, imgs in rows)
    sheet = Image.new("L", (label_w + ncol * cell, top + len(rows) * (cell + cap_h)), 255)
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(col_labels or []):
        draw.text((label_w + j * cell + 4, 3), name[:22], fill=0)
    for i, (name, imgs) in enumerate(rows):
        y = top + i * (cell + cap_h)
        for k, line in enumerate(name.split("\n")):
            draw.text((4, y + cell // 2 - 8 + 12 * k), line[:24], fill=0)
        for j, im in enumerate(imgs):
            sheet.paste(im.convert("L").resize((cell, cell)), (label_w + j * cell, y))
            if captions:
                draw.text((label_w + j * cell + 2, y + cell + 1), captions[i][j][:24], fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


# ---------------------------------------------------------------------------------------------
# generation
def generate_for_records(pipe, records: Sequence[dict], data: Path, encoders: str, steps: int,
                         seed: int, desc: str) -> np.ndarray:
    """One image per test row: its chips and its nodule mask, a TRAINING background of its plane."""
    out = []
    for i, rec in enumerate(tqdm(records, desc=desc)):
        mask = _grey(data / rec["mask"], pipe.image_size)
        if mask.max() == 0 or mask.min() == 255:
            mask = None  # no usable outline: the pipeline places a default mask
        res = pipe(chips=record_chips(rec), mask=mask, encoders=encoders, num_inference_steps=steps,
                   seed=seed + i, num_images=1)
        out.append(np.asarray(res.images[0].convert("L"), dtype=np.uint8))
    return np.stack(out)


def reference_ssim(pipe, records: Sequence[dict], data: Path, steps: int, strength: float, seed: int) -> dict:
    """SSIM of Reference-mode re-syntheses to their sources (same features, own Sobel map)."""
    from tiger.metrics.ssim import ssim_pairs

    src, gen = [], []
    for i, rec in enumerate(tqdm(records, desc="reference mode")):
        mask = _grey(data / rec["mask"], pipe.image_size)
        if mask.max() == 0 or mask.min() == 255:
            continue
        real = _grey(data / rec["file_name"], pipe.image_size)
        res = pipe(chips=record_chips(rec), mask=mask, reference_image=real, strength=strength,
                   num_inference_steps=steps, seed=seed + i)
        src.append(real)
        gen.append(np.asarray(res.images[0].convert("L"), dtype=np.uint8))
    vals = ssim_pairs(np.stack(src), np.stack(gen))
    return {"ssim_mean": float(vals.mean()), "ssim_std": float(vals.std()), "n": len(vals), "strength": strength}


# ---------------------------------------------------------------------------------------------
# real-vs-synthetic judge
class _Judge(torch.nn.Module):
    """A small CNN: enough to spot checkerboards, blur or missing speckle, quick on a CPU."""

    def __init__(self) -> None:
        super().__init__()
        ch = [1, 16, 32, 64, 64]
        layers: list[torch.nn.Module] = []
        for a, b in zip(ch[:-1], ch[1:]):
            layers += [torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.GroupNorm(8 if b >= 16 else 1, b),
                       torch.nn.SiLU(), torch.nn.MaxPool2d(2)]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(ch[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3))).squeeze(1)


def real_vs_synthetic_accuracy(real: np.ndarray, fake: np.ndarray, seed: int = 0, epochs: int = 30,
                               device: str = "cpu") -> dict:
    """Held-out accuracy of a CNN trained to tell real from generated (balanced, 2-fold)."""
    n = min(len(real), len(fake))
    rng = np.random.default_rng(seed)
    r = real[rng.permutation(len(real))[:n]]
    f = fake[rng.permutation(len(fake))[:n]]
    x = torch.from_numpy(np.concatenate([r, f])).float().div(127.5).sub(1).unsqueeze(1)
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    folds = np.array_split(rng.permutation(2 * n), 2)
    correct = total = 0
    for k in range(2):
        test_idx, train_idx = folds[k], folds[1 - k]
        torch.manual_seed(seed + k)
        net = _Judge().to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
        xt, yt = x[train_idx].to(device), y[train_idx].to(device)
        for _ in range(epochs):
            perm = torch.randperm(len(xt), device=device)
            for b in range(0, len(xt), 32):
                idx = perm[b:b + 32]
                xb = xt[idx]
                if torch.rand(()) < 0.5:
                    xb = xb.flip(3)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            pred = (net(x[test_idx].to(device)) > 0).float().cpu()
        correct += int((pred == y[test_idx]).sum())
        total += len(test_idx)
    return {"accuracy": correct / total, "n_per_class": n, "folds": 2, "epochs": epochs}


# ---------------------------------------------------------------------------------------------
# memorisation and chip fidelity
def nearest_neighbour_distance(query: np.ndarray, train: np.ndarray, size: int = 64) -> np.ndarray:
    """Per query image: the smallest RMS pixel distance (0-255 scale) to any training image."""
    def small(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a).float().unsqueeze(1)
        return torch.nn.functional.interpolate(t, size=(size, size), mode="area").flatten(1)

    q, t = small(query), small(train)
    d2 = torch.cdist(q, t).pow(2) / q.shape[1]
    return d2.min(1).values.sqrt().numpy()


def chip_fidelity(pipe, embedder, base: dict, steps: int, seeds: Sequence[int],
                  real_records: Sequence[dict] = (), data: Path | None = None) -> dict:
    """Retrieval accuracy of the prompting chip among its group's values, by the domain CLIP.

    For each group in CHIP_CHANGES and each value, images are generated with `base` chips
    changed in that group only; the image embedding is compared with the full prompts of every
    value of the group, and retrieval is right when the prompting value scores highest.
    """
    out: dict[str, dict] = {}
    for group, values in CHIP_CHANGES.items():
        prompts = []
        chips_list = []
        for v in values:
            chips = dict(base, **{group: v})
            try:
                chips = knowledge.validate_chips(chips)
            except knowledge.ChipError:
                chips = knowledge.validate_chips({k: c for k, c in chips.items() if k not in ("subtype", "malignancy")})
            chips_list.append(chips)
            prompts.append(knowledge.full_prompt(chips))
        text_emb = embedder.texts(prompts)
        hits = total = 0
        for vi, chips in enumerate(chips_list):
            res = pipe(chips=chips, num_inference_steps=steps, seed=list(seeds), num_images=len(seeds))
            px = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in res.images])
            sims = embedder.images(px) @ text_emb.T
            hits += int((sims.argmax(1) == vi).sum())
            total += len(px)
        entry = {"generated_accuracy": hits / total, "chance": 1 / len(values), "n": total}
        # the embedder's own ceiling: the same retrieval on real test images with that chip
        if data is not None:
            rh = rt = 0
            for rec in real_records:
                v = (rec.get("features") or {}).get(group)
                if v not in values:
                    continue
                px = _grey(data / rec["file_name"], pipe.image_size)[None]
                rh += int((embedder.images(px) @ text_emb.T).argmax() == values.index(v))
                rt += 1
            entry.update(real_accuracy=(rh / rt if rt else None), real_n=rt)
        out[group] = entry
    return out


def _measured(image: Image.Image, record: dict) -> str:
    """Caption under a chip-grid image: inside/ring grey ratio and bright foci in its placed mask."""
    from tiger import measures
    from tiger.pngmeta import b64png_to_array

    img = np.asarray(image.convert("L"))
    mask = b64png_to_array(record["mask"]) > 127
    r = measures.grey_ratio(img, mask)
    return f"ratio {r:.2f}, foci {measures.bright_foci(img, mask)}" if r is not None else "ratio n/a"


# ---------------------------------------------------------------------------------------------
def sample_grids(pipe, out: Path, steps: int, seed: int, real_records: Sequence[dict], data: Path) -> dict:
    """Per-subtype grid, per-chip-change grids, and real test images beside matched generations."""
    files = {}
    rows = []
    for s in SUBTYPES:
        res = pipe(chips=dict(knowledge.SUBTYPE_PROFILES[s], plane="transverse"), num_inference_steps=steps,
                   seed=seed, num_images=6)
        rows.append((s, res.images))
    files["subtypes"] = _labelled_grid(rows, None, out / "samples_subtypes.png").name
    base = dict(knowledge.SUBTYPE_PROFILES["papillary"], plane="transverse")
    for group, values in CHIP_CHANGES.items():
        crow, caps = [], []
        for k in range(3):  # same seed and background across the row: only the chip changes
            imgs, row_caps = [], []
            for v in values:
                chips = {g: c for g, c in base.items() if g not in ("subtype", "malignancy")}
                chips[group] = v
                res = pipe(chips=chips, num_inference_steps=steps, seed=seed + k)
                imgs.append(res.images[0])
                row_caps.append(_measured(res.images[0], res.records[0]))
            crow.append((f"seed {seed + k}", imgs))
            caps.append(row_caps)
        files[f"chip_{group}"] = _labelled_grid(crow, list(values), out / f"samples_chip_{group}.png",
                                                captions=caps).name
    pairs = []
    for i, rec in enumerate(real_records[:6]):
        real = Image.open(data / rec["file_name"]).convert("L")
        mask = _grey(data / rec["mask"], pipe.image_size)
        gen = pipe(chips=record_chips(rec), mask=mask if 0 < mask.max() and mask.min() < 255 else None,
                   num_inference_steps=steps, seed=seed + i, num_images=3).images
        pairs.append((f"test {rec['id']}"[:24], [real, *gen]))
    files["real_vs_generated"] = _labelled_grid(pairs, ["real (test)", "Tiger", "Tiger", "Tiger"],
                                                out / "samples_real_vs_generated.png").name
    return files


def evaluate(model: Path, data: Path, out: Path, n: int, steps: int, seed: int, split_seed: int,
             device: str | None, control_seeds: int = 3, control_chip_seeds: int = 4) -> dict:
    from tiger.metrics.embeddings import load_embedder
    from tiger.metrics.report import evaluate_sets
    from tiger.pipeline import TigerPipeline
    from tiger.segment import default_segmenter
    from training import eval_control

    t0 = time.time()
    dev = pick_device(device)
    pipe = TigerPipeline.from_pretrained(model, device=dev)
    pipe.set_progress_bar_config(disable=True)
    embedder = load_embedder(model, device=str(dev))
    records = load_metadata(data)
    parts = split(records, seed=split_seed)
    rng = np.random.default_rng(seed)
    test = [parts["test"][i] for i in rng.permutation(len(parts["test"]))[:n]]
    size = pipe.image_size
    real_test = np.stack([_grey(data / r["file_name"], size) for r in test])
    train_px = np.stack([_grey(data / r["file_name"], size) for r in parts["train"]])

    gen_coarse = generate_for_records(pipe, test, data, "none", steps, seed, "(a) coarse text-only")
    gen_tiger = generate_for_records(pipe, test, data, "both", steps, seed, "(b) Tiger FG+BG")
    texts = [knowledge.full_prompt(record_chips(r)) for r in test]
    m_coarse = evaluate_sets(real_test, gen_coarse, embedder=embedder, reference=train_px, texts=texts, size=None)
    m_tiger = evaluate_sets(real_test, gen_tiger, embedder=embedder, reference=train_px, texts=texts, size=None)
    ref = reference_ssim(pipe, test[: min(len(test), 32)], data, steps, strength=0.6, seed=seed)
    judge = real_vs_synthetic_accuracy(real_test, gen_tiger, seed=seed, device=str(dev))
    nn_gen = nearest_neighbour_distance(gen_tiger, train_px)
    nn_real = nearest_neighbour_distance(real_test, train_px)
    fidelity = chip_fidelity(pipe, embedder, dict(knowledge.SUBTYPE_PROFILES["papillary"], plane="transverse"),
                             steps, seeds=list(range(seed, seed + 8)), real_records=parts["test"], data=data)
    grids = sample_grids(pipe, out, steps, seed, test, data)
    seg = default_segmenter(model)
    control = (eval_control.evaluate_splits(pipe, seg, data, ("val", "test"), split_seed, control_seeds,
                                            control_chip_seeds) if seg is not None and control_seeds > 0 else None)
    result = {
        "model": str(model), "data": str(data), "split_seed": split_seed, "seed": seed,
        "n_test_images": len(test), "n_train_images": len(train_px), "steps": steps,
        "embedder": embedder.source, "device": str(dev),
        "coarse_text_only": m_coarse["metrics"], "tiger_fg_bg": m_tiger["metrics"],
        "reference_mode": ref, "real_vs_synthetic_judge": judge,
        "nearest_neighbour_rms": {"generated_mean": float(nn_gen.mean()), "real_test_mean": float(nn_real.mean()),
                                  "generated_min": float(nn_gen.min()), "real_test_min": float(nn_real.min())},
        "chip_fidelity": fidelity, "control": control, "grids": grids, "seconds": round(time.time() - t0, 1),
    }
    return result


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


def _ablation_lines(model: Path) -> list[str]:
    """The ablation table: `training_log/ablations.json` lists what was tried, each with the
    `training.eval_control` JSON it produced (copied into training_log/ablations/)."""
    from training import eval_control

    index = model / "training_log" / "ablations.json"
    if not index.exists():
        return []
    rows = json.loads(index.read_text())
    echo = eval_control.CHIP_VALUES["echogenicity"]
    lines = ["", "### Ablations (validation split, `training.eval_control`)", "",
             "What was tried to make the nodule appear where it is placed, each measured by the same script "
             "(Diversify mode, 3 poles x 2 sizes x 3 seeds, 20 steps; echogenicity ratios over 4 seeds):", "",
             "| variant | what changed | mean IoU | hit rate | centroid in third | worst pole IoU | IoU, mask ignored | "
             + " | ".join(f"ratio {v}" for v in echo) + " | kept |",
             "|---|---|---|---|---|---|---|" + "---|" * len(echo) + "---|"]
    for r in rows:
        rep = json.loads((model / "training_log" / r["eval"]).read_text())
        sm = eval_control.summary(rep["splits"]["val"])
        lines.append(f"| {r['label']} | {r['tried']} | {_fmt(sm['mean_iou'], 2)} | {_fmt(sm['hit_rate'], 2)} | "
                     f"{_fmt(sm['centroid_in_third'], 2)} | {_fmt(sm['worst_pole_iou'], 2)} | "
                     f"{_fmt(sm['mask_ignored_iou'], 2)} | "
                     + " | ".join(_fmt(sm["echogenicity_ratio"][v], 2) for v in echo)
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
        return ["", "No control evaluation (the model folder has no segmenter/)."]
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
    path.write_text("\n".join(lines))
    return path


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
