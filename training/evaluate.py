"""The downstream evaluation: does synthetic augmentation help the classifier, and are the
synthetic images realistic and diverse?  One command writes a report folder:

  report.json / report.md   per-arm AUROC (bootstrap 95% CI), sensitivity, specificity, Brier;
                            paired comparison of arm d (Tiger) against a, b, c; the split seed,
                            group counts, the embedder and the exact command
  roc.png                   ROC curves of the four arms (seed-averaged probabilities)
  image_metrics.{json,md}   SSIM, CMMD, GS, density/coverage, FID/KID, IS, pHash, CLIP score of
                            each synthetic set against the real test images
  synthetic/{tiger,coarse}/ the generated images + manifest (when generated here)

Arms (see train_classifier.py): a real, b real + classic augmentation, c real + coarse
text-only synthetic, d real + Tiger synthetic. Synthetic sets come from folders written by
training/augment.py, or are generated here from `--model` (the rare class by default).

Sample run with the shipped model (part 5 of the evaluation issue; about 30-50 min on 2 CPU cores):
  .venv/bin/python training/evaluate.py --data data/ddti --model models/tiger-tiny-ddti \
      --out reports/ddti-eval --n-synthetic 150 --seeds 0 1 2 --epochs 12
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tiger  # noqa: F401,E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tiger.metrics.classification import binary_report, paired_auroc_difference, plot_roc  # noqa: E402
from training.train_classifier import (ARMS, ClassifierConfig, ClassifierInputError, load_real_splits,  # noqa: E402
                                       load_synthetic, train_one)

# How arm c differs from arm d when generating here: the coarse stage alone (UNet + full text,
# no FG/BG ControlNets) versus the full Tiger fine stage with mask and background.
GENERATION = {"coarse": {"encoders": "none"}, "tiger": {"encoders": "both"}}


def ensure_synthetic(kind: str, given: str | None, model: str | None, data: str, out: Path, n: int,
                     label: str, steps: int, seed: int) -> Path | None:
    """The synthetic folder of one arm: the given one, or generated now with augment.py's library."""
    if given:
        return Path(given)
    if not model:
        return None
    from training.augment import AugmentConfig, run_augment

    folder = out / "synthetic" / kind
    cfg = AugmentConfig(model=model, data=data, out=str(folder), n=n, label=label, steps=steps,
                        seed=seed + (0 if kind == "tiger" else 10_000_000), **GENERATION[kind])
    run_augment(cfg)
    return folder


def summarise(runs: list[dict], y: np.ndarray, n_boot: int) -> dict:
    """Per-seed metrics, their mean and sd, and the metrics of the seed-averaged probabilities."""
    per_seed = [binary_report(y, r["test_prob"], r["threshold"], n_boot=n_boot, seed=r["seed"]) for r in runs]
    mean_prob = np.mean([r["test_prob"] for r in runs], axis=0)
    thr = float(np.mean([r["threshold"] for r in runs]))
    keys = ("auroc", "sensitivity", "specificity", "brier", "accuracy")
    return {"per_seed": per_seed,
            "mean": {k: float(np.mean([m[k] for m in per_seed])) for k in keys},
            "sd": {k: float(np.std([m[k] for m in per_seed])) for k in keys},
            "ensemble": binary_report(y, mean_prob, thr, n_boot=n_boot), "mean_prob": mean_prob}


def image_metrics(real_test, synth_folder: Path, embedder, reference, size: int) -> dict:
    """All set metrics of one synthetic folder against the real test images."""
    from tiger.metrics.images import load_image_set
    from tiger.metrics.report import evaluate_sets

    rows = [json.loads(x) for x in (synth_folder / "manifest.jsonl").read_text().splitlines() if x.strip()]
    gen = load_image_set([synth_folder / r["file"] for r in rows], size=size, name=f"synthetic {synth_folder.name}")
    texts = [r.get("text") or "" for r in rows]
    return evaluate_sets(real_test, gen, embedder=embedder, reference=reference,
                         texts=texts if all(texts) else None, size=size)


def to_markdown(rep: dict) -> str:
    lines = [f"# Downstream evaluation: {rep['data']}", "",
             f"Command: `{rep['command']}`", "",
             f"- split seed {rep['split_seed']} (tiger.data.split by leakage group; no group shared between "
             f"train and test: checked), train/val/test = {rep['n']['train']}/{rep['n']['val']}/{rep['n']['test']} "
             f"real images, test malignant share {rep['n']['test_positive']}/{rep['n']['test']}",
             f"- classifier: {rep['config']['arch']} from scratch, {rep['config']['epochs']} epochs, "
             f"{rep['config']['image_size']} px, seeds {rep['seeds']}; checkpoint and threshold chosen on validation",
             f"- AUROC CIs: stratified bootstrap ({rep['n_boot']} resamples) of the test cases", "",
             "| arm | training set | AUROC mean ± sd (seeds) | AUROC ensemble [95% CI] | sensitivity | specificity | Brier |",
             "|---|---|---|---|---|---|---|"]
    for arm, s in rep["arms"].items():
        e = s["ensemble"]
        lines.append(f"| {arm} | {ARMS[arm]} (+{s['n_synthetic']} synthetic) | {s['mean']['auroc']:.3f} ± {s['sd']['auroc']:.3f} | "
                     f"{e['auroc']:.3f} [{e['auroc_ci95'][0]:.3f}, {e['auroc_ci95'][1]:.3f}] | "
                     f"{s['mean']['sensitivity']:.2f} | {s['mean']['specificity']:.2f} | {s['mean']['brier']:.3f} |")
    if rep["paired"]:
        lines += ["", "Paired comparison (same test cases, seed-averaged probabilities, paired bootstrap):", "",
                  "| comparison | AUROC difference | 95% CI | p |", "|---|---|---|---|"]
        for name, c in rep["paired"].items():
            lines.append(f"| {name} | {c['auroc_difference']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] | {c['p_value']:.3f} |")
    for kind, m in rep.get("image_metrics", {}).items():
        lines += ["", f"Image metrics, {kind} synthetic vs real test images (embeddings: {m['embedder']}; "
                  f"IS classifier: {m['inception_score_classifier']}):", "",
                  " | ".join(f"{k} {v:.4g}" for k, v in m["metrics"].items())]
    lines += ["", "![ROC](roc.png)", ""]
    return "\n".join(lines)


def run_evaluation(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ClassifierConfig(arch=args.arch, image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size,
                           lr=args.lr, split_seed=args.split_seed, device=args.device)
    splits = load_real_splits(args.data, cfg.image_size, cfg.split_seed)
    y = splits["test"].labels.numpy().astype(int)
    if len(np.unique(y)) < 2:
        raise ClassifierInputError(f"the test split (seed {args.split_seed}) holds one class only: AUROC is undefined; "
                                   "choose another --split-seed")
    synth_dirs = {"c": ensure_synthetic("coarse", args.coarse_synthetic, args.model, args.data, out, args.n_synthetic,
                                        args.rare_class, args.steps, args.gen_seed),
                  "d": ensure_synthetic("tiger", args.tiger_synthetic, args.model, args.data, out, args.n_synthetic,
                                        args.rare_class, args.steps, args.gen_seed)}
    arms = [a for a in args.arms if a in "ab" or synth_dirs[a] is not None]
    skipped = sorted(set(args.arms) - set(arms))
    t0 = time.time()
    results: dict[str, dict] = {}
    for arm in tqdm(arms, desc="arms"):
        synth = load_synthetic(synth_dirs[arm], cfg.image_size) if arm in "cd" else None
        runs = []
        for seed in args.seeds:
            r = train_one(splits, arm, seed, cfg, synth)
            r.pop("state")
            runs.append(r)
        s = summarise(runs, y, args.n_boot)
        s["n_synthetic"] = 0 if synth is None else len(synth)
        s["history"] = [r["history"] for r in runs]
        results[arm] = s
    paired = {}
    if "d" in results:
        for other in [a for a in "abc" if a in results]:
            paired[f"d vs {other}"] = paired_auroc_difference(y, results["d"]["mean_prob"], results[other]["mean_prob"],
                                                              n_boot=args.n_boot)
    plot_roc({f"{a}: {ARMS[a]}": (y, s["mean_prob"]) for a, s in results.items()}, out / "roc.png",
             title=f"ROC on the test split ({Path(args.data).name})")
    rep = {"data": str(args.data), "command": args.command, "split_seed": args.split_seed, "seeds": args.seeds,
           "config": vars(cfg), "n_boot": args.n_boot, "skipped_arms": skipped,
           "n": {"train": len(splits["train"]), "val": len(splits["val"]), "test": len(splits["test"]),
                 "test_positive": int(y.sum())},
           "test_ids": splits["test"].ids, "train_minutes": (time.time() - t0) / 60,
           "arms": {a: {k: v for k, v in s.items() if k != "mean_prob"} | {"test_prob_mean": s["mean_prob"].tolist()}
                    for a, s in results.items()},
           "paired": paired, "synthetic_folders": {k: str(v) for k, v in synth_dirs.items() if v}}
    if not args.no_image_metrics and any(synth_dirs.values()):
        from tiger.metrics.embeddings import load_embedder

        emb = load_embedder(args.model if args.model else None, pretrained=args.embedder_file,
                            allow_random=args.allow_random_embedder)
        real_test = ((splits["test"].images[:, 0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        train_px = ((splits["train"].images[:, 0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        rep["image_metrics"] = {}
        for arm, kind in (("d", "tiger"), ("c", "coarse")):
            if synth_dirs[arm]:
                rep["image_metrics"][kind] = image_metrics(real_test, synth_dirs[arm], emb, train_px, cfg.image_size)
        (out / "image_metrics.json").write_text(json.dumps(rep["image_metrics"], indent=2))
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    (out / "report.md").write_text(to_markdown(rep))
    return rep


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Downstream evaluation: arms a-d, AUROC CIs, paired comparison, image metrics")
    ap.add_argument("--data", required=True, help="canonical dataset folder (DDTI or BUSI)")
    ap.add_argument("--out", required=True, help="report folder, e.g. reports/ddti-eval")
    ap.add_argument("--model", default=None, help="Tiger model folder: generates the arm c/d sets and gives the embedder")
    ap.add_argument("--tiger-synthetic", default=None, help="existing augment.py folder for arm d")
    ap.add_argument("--coarse-synthetic", default=None, help="existing augment.py folder for arm c")
    ap.add_argument("--rare-class", default="benign", help="class (or subtype) to synthesise (DDTI: benign is rare)")
    ap.add_argument("--n-synthetic", type=int, default=150)
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps for generation")
    ap.add_argument("--gen-seed", type=int, default=0)
    ap.add_argument("--arms", nargs="+", default=list("abcd"), choices=list(ARMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet34", "resnet50"])
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--embedder-file", default=None, help="local open_clip checkpoint for the image metrics")
    ap.add_argument("--allow-random-embedder", action="store_true", help="use a random domain CLIP if none is found")
    ap.add_argument("--no-image-metrics", action="store_true")
    ap.add_argument("--device", default=None)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command = "python training/evaluate.py " + shlex.join(argv)
    try:
        rep = run_evaluation(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for arm, s in rep["arms"].items():
        e = s["ensemble"]
        print(f"arm {arm}: AUROC {e['auroc']:.3f} [{e['auroc_ci95'][0]:.3f}, {e['auroc_ci95'][1]:.3f}]")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
