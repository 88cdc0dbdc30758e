"""Control evaluation: does the generated image show what was asked for, measured in pixels?

Why this exists: a control in the UI is only worth something when the image obeys it. Every
measure here is applied the same way to real DDTI images (their own outlines) and to generated
Diversify-mode images (the placed mask), so the two columns are comparable:

- adherence: the shipped nodule segmenter (trained on real training images only) finds the
  nodule; IoU with the placed mask, hit rate (IoU > 0.3), and the share whose segmented centroid
  lies in the requested third of the gland;
- echogenicity and composition: mean grey inside the mask over the mean grey of a ring around it
  (the mask dilated by a 9x9 square, minus the mask); ordered very hypo < hypo < iso < hyper on
  real nodules;
- calcification: bright foci (white top-hat above a fixed level) inside the mask;
- margin: boundary sharpness (mean gradient on the mask's edge over the mean gradient in the
  ring) and irregularity (1 - solidity of the segmented nodule).

    python -m training.eval_control --model models/tiger-tiny-ddti --data data/ddti-128 --split val
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from tiger import conditions, knowledge, measures
from tiger.metrics.segmentation import iou_dice
from tiger.data import load_metadata, read_grey, split

POLES = ("inferior", "middle", "upper pole")
SIZES = ("middle", "large")
#: nodule profiles of the adherence run (alternated over seeds): a PTC-like and a benign-like one
PROFILES = (dict(knowledge.SUBTYPE_PROFILES["papillary"]), {"malignancy": "benign", "subtype": "benign",
            "composition": "solid", "echogenicity": "isoechoic", "margin": "smooth/clear", "shape": "regular"})
HIT_IOU = 0.3
#: chip groups measured by grey ratio / foci / margin, and the values compared
CHIP_VALUES = {
    "echogenicity": ("very hypoechoic", "hypoechoic", "isoechoic", "hyperechoic"),
    "composition": ("cystic", "mixed", "solid"),
    "calcification": ("none", "macrocalcification", "microcalcification"),
    "margin": ("smooth/clear", "ill-defined", "lobulated/irregular"),
}


# pixel measures live in tiger.measures (the Teach tab shows them too)

def _summary(values: Sequence[float | None]) -> dict:
    v = np.array([x for x in values if x is not None], float)
    if not v.size:
        return {"n": 0, "median": None, "q25": None, "q75": None}
    return {"n": int(v.size), "median": round(float(np.median(v)), 4),
            "q25": round(float(np.percentile(v, 25)), 4), "q75": round(float(np.percentile(v, 75)), 4)}


# ---- real images ---------------------------------------------------------------------------------
def real_reference(records: Sequence[dict], data: Path, segmenter, size: int) -> dict:
    """The same measures on real images with their own outlines (rows without a mask skipped)."""
    rows = [r for r in records if r.get("mask")]
    imgs, masks, keep = [], [], []
    for r in rows:
        m = read_grey(data / r["mask"], size) > 127
        if m.any():
            imgs.append(read_grey(data / r["file_name"], size))
            masks.append(m)
            keep.append(r)
    segs = segmenter.predict_masks(imgs) if segmenter is not None else [None] * len(imgs)
    ious, third = [], []
    for r, im, m, s in zip(keep, imgs, masks, segs):
        if s is None:
            continue
        ious.append(iou_dice(s, m)[0])
        gland = conditions.GlandExtent.from_dict(r["gland"]) if r.get("gland") else conditions.estimate_gland_extent(im, m)
        want = conditions.location_of(m, gland)
        third.append(bool((s > 0).any()) and conditions.location_of(s, gland) == want)
    out = {"n": len(keep), "adherence": {"mean_iou": _mean(ious), "hit_rate": _mean([i > HIT_IOU for i in ious]),
                                         "centroid_in_third": _mean(third)}}
    chips = {}
    for group, values in CHIP_VALUES.items():
        chips[group] = {}
        for v in values:
            sel = [(im, m) for r, im, m in zip(keep, imgs, masks) if (r.get("features") or {}).get(group) == v]
            chips[group][v] = _chip_measures(sel)
    out["chips"] = chips
    return out


def _mean(x: Sequence) -> float | None:
    return round(float(np.mean(x)), 4) if len(x) else None


def _chip_measures(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict:
    return {"grey_ratio": _summary([measures.grey_ratio(im, m) for im, m in pairs]),
            "foci": _summary([float(measures.bright_foci(im, m)) for im, m in pairs]),
            "edge_sharpness": _summary([measures.edge_sharpness(im, m) for im, m in pairs]),
            "irregularity": _summary([measures.irregularity(m) for _, m in pairs])}


# ---- generated images ------------------------------------------------------------------------------
def _masks_of(out) -> list[np.ndarray]:
    from tiger.pngmeta import b64png_to_array
    return [b64png_to_array(r["mask"]) > 127 for r in out.records]


def adherence(pipe, segmenter, seeds: Sequence[int], steps: int, encoders: str = "both",
              plane: str = "transverse", **gen_kw) -> dict:
    """Diversify-mode images at each pole and size; segmented nodule against the placed mask."""
    per_pole: dict[str, dict] = {}
    bank = pipe.background_bank
    for pole in tqdm(POLES, desc="adherence", unit="pole"):
        ious, third = [], []
        for size in SIZES:
            for k, s in enumerate(seeds):
                chips = dict(PROFILES[k % len(PROFILES)], location=pole, size=size, plane=plane)
                out = pipe(chips=chips, encoders=encoders, num_inference_steps=steps, seed=int(s), num_images=1, **gen_kw)
                placed = _masks_of(out)[0]
                seg = segmenter.predict_mask(np.asarray(out.images[0])) > 0
                ious.append(iou_dice(seg, placed)[0])
                _, gland = bank.get(out.records[0]["background_id"], size=pipe.image_size)
                third.append(bool(seg.any()) and conditions.location_of(seg, gland) == pole)
        per_pole[pole] = {"n": len(ious), "mean_iou": _mean(ious), "hit_rate": _mean([i > HIT_IOU for i in ious]),
                          "centroid_in_third": _mean(third)}
    allv = {k: _mean([per_pole[p][k] for p in POLES]) for k in ("mean_iou", "hit_rate", "centroid_in_third")}
    return {"per_pole": per_pole, "all": allv, "encoders": encoders, "steps": steps, "seeds": list(map(int, seeds))}


def chip_series(pipe, group: str, seeds: Sequence[int], steps: int, **gen_kw) -> dict:
    """One chip group across its values, the same seeds (so the same background and mask) each
    time, on a solid nodule of fixed size and place with nothing else specified."""
    res = {}
    for v in CHIP_VALUES[group]:
        chips = {"composition": "solid", "location": "middle", "size": "large", "plane": "transverse", group: v}
        try:
            chips = knowledge.validate_chips(chips)
        except knowledge.ChipError:
            chips = knowledge.validate_chips({"location": "middle", "size": "large", "plane": "transverse", group: v})
        out = pipe(chips=chips, encoders="both", num_inference_steps=steps, seed=[int(s) for s in seeds],
                   num_images=len(seeds), **gen_kw)
        pairs = [(np.asarray(im), m) for im, m in zip(out.images, _masks_of(out))]
        res[v] = _chip_measures(pairs)
    return res


def evaluate_control(pipe, segmenter, records: Sequence[dict], data: Path, seeds: Sequence[int],
                     steps: int, chip_seeds: Sequence[int], gen_kw: dict | None = None) -> dict:
    """Adherence and chip fidelity of `pipe`, with the real images of `records` measured alike.
    `gen_kw` (fg_scale, beta, guidance_scale, ...) goes to every pipeline call of the generated side."""
    kw = dict(gen_kw or {})
    t0 = time.time()
    out = {"real": real_reference(records, data, segmenter, pipe.image_size),
           "generated": {"adherence": adherence(pipe, segmenter, seeds, steps, **kw),
                         "adherence_mask_ignored": adherence(pipe, segmenter, seeds[:2], steps, encoders="none", **kw),
                         "chips": {g: chip_series(pipe, g, chip_seeds, steps, **kw) for g in tqdm(CHIP_VALUES, desc="chips")},
                         "pipeline_kwargs": kw}}
    out["targets"] = check_targets(out)
    out["seconds"] = round(time.time() - t0, 1)
    return out


def check_targets(ev: dict) -> dict:
    """The issue's targets, each True/False, from the figures themselves."""
    pp = ev["generated"]["adherence"]["per_pole"]
    echo = {v: ev["generated"]["chips"]["echogenicity"][v]["grey_ratio"]["median"] for v in CHIP_VALUES["echogenicity"]}
    order = [echo[v] for v in CHIP_VALUES["echogenicity"]]
    return {
        "mean_iou>=0.45 at every pole": all((p["mean_iou"] or 0) >= 0.45 for p in pp.values()),
        "hit_rate>=0.70 at every pole": all((p["hit_rate"] or 0) >= 0.70 for p in pp.values()),
        "centroid_in_third>=0.80": (ev["generated"]["adherence"]["all"]["centroid_in_third"] or 0) >= 0.80,
        "echogenicity ordered": None not in order and all(a < b for a, b in zip(order, order[1:])),
        "hypoechoic<=0.90": echo["hypoechoic"] is not None and echo["hypoechoic"] <= 0.90,
        "hyperechoic>=0.97": echo["hyperechoic"] is not None and echo["hyperechoic"] >= 0.97,
    }


def markdown(ev_by_split: dict) -> str:
    """Tables for the model card: adherence per pole and chip ratios, generated beside real."""
    lines = ["| split | pole | generated IoU | hit rate | centroid in third | real IoU / hit / third |",
             "|---|---|---|---|---|---|"]
    f = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    for name, ev in ev_by_split.items():
        ra = ev["real"]["adherence"]
        for pole, p in ev["generated"]["adherence"]["per_pole"].items():
            lines.append(f"| {name} | {pole} | {f(p['mean_iou'])} | {f(p['hit_rate'])} | {f(p['centroid_in_third'])} | "
                         f"{f(ra['mean_iou'])} / {f(ra['hit_rate'])} / {f(ra['centroid_in_third'])} |")
        ign = ev["generated"]["adherence_mask_ignored"]["all"]
        lines.append(f"| {name} | all, encoders none (mask ignored) | {f(ign['mean_iou'])} | {f(ign['hit_rate'])} | "
                     f"{f(ign['centroid_in_third'])} | |")
    lines += ["", "Inside/ring grey ratio (median, n), foci inside the mask, edge sharpness: generated (same seeds "
              "and backgrounds, one chip changed) vs real nodules of the split.", "",
              "| split | group | value | generated ratio | real ratio | generated foci | real foci | generated sharpness | real sharpness |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, ev in ev_by_split.items():
        for group, vals in ev["generated"]["chips"].items():
            for v, g in vals.items():
                r = ev["real"]["chips"][group][v]
                lines.append(f"| {name} | {group} | {v} | {f(g['grey_ratio']['median'])} (n={g['grey_ratio']['n']}) | "
                             f"{f(r['grey_ratio']['median'])} (n={r['grey_ratio']['n']}) | {f(g['foci']['median'])} | "
                             f"{f(r['foci']['median'])} | {f(g['edge_sharpness']['median'])} | {f(r['edge_sharpness']['median'])} |")
    for name, ev in ev_by_split.items():
        lines += ["", f"Targets ({name}): " + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in ev["targets"].items())]
    return "\n".join(lines)


def evaluate_splits(pipe, segmenter, data: Path, splits: Sequence[str], split_seed: int = 0, seeds: int = 3,
                    chip_seeds: int = 4, steps: int = 20, gen_kw: dict | None = None) -> dict:
    """`evaluate_control` per split. The generated side depends on seeds only; each split gets its
    own seed range (1000, 2000, ...) so the reports are independent draws, and its real images."""
    parts = split(load_metadata(data), seed=split_seed)
    result = {}
    for k, name in enumerate(splits):
        base = 1000 * (k + 1)
        result[name] = evaluate_control(pipe, segmenter, parts[name], data, list(range(base, base + seeds)),
                                        steps, list(range(base, base + chip_seeds)), gen_kw)
    return result


def summary(ev: dict) -> dict:
    """The few figures an ablation row shows, from one split's `evaluate_control` result."""
    g = ev["generated"]
    echo = g["chips"]["echogenicity"]
    return {"mean_iou": g["adherence"]["all"]["mean_iou"], "hit_rate": g["adherence"]["all"]["hit_rate"],
            "centroid_in_third": g["adherence"]["all"]["centroid_in_third"],
            "worst_pole_iou": min((p["mean_iou"] or 0.0) for p in g["adherence"]["per_pole"].values()),
            "mask_ignored_iou": g["adherence_mask_ignored"]["all"]["mean_iou"],
            "echogenicity_ratio": {v: echo[v]["grey_ratio"]["median"] for v in CHIP_VALUES["echogenicity"]},
            "targets_met": sum(bool(v) for v in ev["targets"].values()), "targets": len(ev["targets"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (with segmenter/ and background_bank/)")
    ap.add_argument("--data", required=True, help="canonical dataset folder (the real images)")
    ap.add_argument("--split", default=["val"], choices=("train", "val", "test"), nargs="+")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=3, help="images per pole and size")
    ap.add_argument("--chip-seeds", type=int, default=4, help="images per chip value")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--fg-scale", type=float, default=None, help="pipeline fg_scale (default: the pipeline's)")
    ap.add_argument("--beta", type=float, default=None, help="pipeline control guidance beta")
    ap.add_argument("--beta-until", type=float, default=None,
                    help="share of the steps (from the first) that take beta; later steps use beta 1")
    ap.add_argument("--guidance", type=float, default=None, help="pipeline guidance_scale")
    ap.add_argument("--out", default=None, help="write the JSON here (default: print)")
    args = ap.parse_args(argv)
    gen_kw = {k: v for k, v in (("fg_scale", args.fg_scale), ("beta", args.beta), ("beta_until", args.beta_until),
                                ("guidance_scale", args.guidance))
              if v is not None}

    from tiger.pipeline import TigerPipeline
    from tiger.segment import default_segmenter
    model, data = Path(args.model), Path(args.data)
    pipe = TigerPipeline.from_pretrained(model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    seg = default_segmenter(model)
    if seg is None:
        ap.error(f"{model} has no segmenter/ (train it with training.train_segmenter)")
    result = evaluate_splits(pipe, seg, data, args.split, args.split_seed, args.seeds, args.chip_seeds, args.steps,
                             gen_kw)
    command = ("python -m training.eval_control " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    text = json.dumps({"command": command, "splits": result}, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(markdown(result))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
