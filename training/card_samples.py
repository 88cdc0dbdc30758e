"""What the model card generates and shows: images for test records, Reference-mode SSIM, chip
fidelity by the domain CLIP, and the sample grids (per subtype, per chip change with the measured
ratio under each image, per pole with the placed and the segmented outline, real beside generated)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from tiger import knowledge
from tiger.data import read_grey, record_chips


# Chip changes shown in the per-chip grid and checked by the fidelity test.
CHIP_CHANGES = {
    "echogenicity": ("hyperechoic", "isoechoic", "hypoechoic", "very hypoechoic"),
    "composition": ("cystic", "spongiform", "mixed", "solid"),
    "calcification": ("none", "macrocalcification", "microcalcification"),
    "margin": ("smooth/clear", "ill-defined", "lobulated/irregular"),
}
SUBTYPES = ("benign", "papillary", "follicular", "medullary")


def _labelled_grid(rows: Sequence[tuple[str, Sequence[Image.Image]]], col_labels: Sequence[str] | None,
                   path: Path, cell: int = 128, captions: Sequence[Sequence[str]] | None = None,
                   mode: str = "L") -> Path:
    """Rows of images with a label column on the left (and optional column labels on top, and
    an optional caption under each image); `mode` "RGB" keeps coloured outlines."""
    label_w, top = 150, (18 if col_labels else 0)
    cap_h = 14 if captions else 0
    ncol = max(len(imgs) for _, imgs in rows)
    white = 255 if mode == "L" else (255, 255, 255)
    black = 0 if mode == "L" else (0, 0, 0)
    sheet = Image.new(mode, (label_w + ncol * cell, top + len(rows) * (cell + cap_h)), white)
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(col_labels or []):
        draw.text((label_w + j * cell + 4, 3), name[:22], fill=black)
    for i, (name, imgs) in enumerate(rows):
        y = top + i * (cell + cap_h)
        for k, line in enumerate(name.split("\n")):
            draw.text((4, y + cell // 2 - 8 + 12 * k), line[:24], fill=black)
        for j, im in enumerate(imgs):
            sheet.paste(im.convert(mode).resize((cell, cell)), (label_w + j * cell, y))
            if captions:
                draw.text((label_w + j * cell + 2, y + cell + 1), captions[i][j][:24], fill=black)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


# ---------------------------------------------------------------------------------------------
# generation
def generate_for_records(pipe, records: Sequence[dict], data: Path, encoders: str, steps: int,
                         seed: int, desc: str, gen_kw: dict | None = None) -> np.ndarray:
    """One image per test row: its chips and its nodule mask, a TRAINING background of its plane
    (`gen_kw`: further pipeline arguments, e.g. beta, for a sampling ablation)."""
    out = []
    for i, rec in enumerate(tqdm(records, desc=desc)):
        mask = read_grey(data / rec["mask"], pipe.image_size)
        if mask.max() == 0 or mask.min() == 255:
            mask = None  # no usable outline: the pipeline places a default mask
        res = pipe(chips=record_chips(rec), mask=mask, encoders=encoders, num_inference_steps=steps,
                   seed=seed + i, num_images=1, **(gen_kw or {}))
        out.append(np.asarray(res.images[0].convert("L"), dtype=np.uint8))
    return np.stack(out)


def reference_ssim(pipe, records: Sequence[dict], data: Path, steps: int, strength: float, seed: int) -> dict:
    """SSIM of Reference-mode re-syntheses to their sources (same features, own Sobel map)."""
    from tiger.metrics.ssim import ssim_pairs

    src, gen = [], []
    for i, rec in enumerate(tqdm(records, desc="reference mode")):
        mask = read_grey(data / rec["mask"], pipe.image_size)
        if mask.max() == 0 or mask.min() == 255:
            continue
        real = read_grey(data / rec["file_name"], pipe.image_size)
        res = pipe(chips=record_chips(rec), mask=mask, reference_image=real, strength=strength,
                   num_inference_steps=steps, seed=seed + i)
        src.append(real)
        gen.append(np.asarray(res.images[0].convert("L"), dtype=np.uint8))
    vals = ssim_pairs(np.stack(src), np.stack(gen))
    return {"ssim_mean": float(vals.mean()), "ssim_std": float(vals.std()), "n": len(vals), "strength": strength}


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
                px = read_grey(data / rec["file_name"], pipe.image_size)[None]
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


def outlined(image: Image.Image, placed: np.ndarray, found: np.ndarray | None) -> Image.Image:
    """The image in colour with the placed mask's outline in red and the segmented nodule's in green."""
    from scipy import ndimage

    rgb = np.stack([np.asarray(image.convert("L"))] * 3, axis=-1).copy()
    for m, colour in ((placed, (255, 40, 40)), (found, (40, 255, 80))):
        if m is not None and m.any():
            rgb[m & ~ndimage.binary_erosion(m)] = colour
    return Image.fromarray(rgb)


def placement_grid(pipe, segmenter, out: Path, steps: int, seed: int, n: int = 4) -> str:
    """Rows = poles, columns = seeds (the same seed, so the same background, down a column): a
    large PTC-like nodule placed in each third, its outline in red, the segmenter's in green and
    their IoU under each image, so a reader of the card sees adherence instead of a number."""
    from tiger.metrics.segmentation import iou_dice
    from tiger.pngmeta import b64png_to_array
    from training.eval_control import POLES

    rows, caps = [], []
    for pole in POLES:
        chips = dict(knowledge.SUBTYPE_PROFILES["papillary"], location=pole, size="large", plane="transverse")
        res = pipe(chips=chips, num_inference_steps=steps, seed=list(range(seed, seed + n)), num_images=n)
        imgs, row_caps = [], []
        for im, rec in zip(res.images, res.records):
            placed = b64png_to_array(rec["mask"]) > 127
            found = segmenter.predict_mask(np.asarray(im)) > 0
            imgs.append(outlined(im, placed, found))
            row_caps.append(f"IoU {iou_dice(found, placed)[0]:.2f}")
        rows.append((pole, imgs))
        caps.append(row_caps)
    return _labelled_grid(rows, [f"seed {seed + k}" for k in range(n)], out / "samples_placement.png",
                          captions=caps, mode="RGB").name


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
        mask = read_grey(data / rec["mask"], pipe.image_size)
        gen = pipe(chips=record_chips(rec), mask=mask if 0 < mask.max() and mask.min() < 255 else None,
                   num_inference_steps=steps, seed=seed + i, num_images=3).images
        pairs.append((f"test {rec['id']}"[:24], [real, *gen]))
    files["real_vs_generated"] = _labelled_grid(pairs, ["real (test)", "Tiger", "Tiger", "Tiger"],
                                                out / "samples_real_vs_generated.png").name
    return files
