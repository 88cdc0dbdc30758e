"""Serving case images without giving the answer away: one normalisation for every case.

Why: re-encoding each case in its own size and colour mode told real from synthetic without
looking (real DDTI cases came out 560x360 RGB, 128-171 KB; synthetic ones 128x128 greyscale,
~10 KB). A study now fixes a `ServeSpec` when it is created and serves every case through it:

- greyscale, 8 bit: colour images become the mean of their channels, coloured caliper marks
  are painted over (as the importers do for training images);
- a non-square image (a scanner screenshot) is reduced to its ultrasound picture with the
  importers' frame detection (`tiger.importers.frame.find_views`, the largest view), then the
  centred square is cut out; square images (training crops, generated images) are kept whole;
- resized (bicubic) to `size` x `size`, by default the synthetic cases' own side (the model's
  resolution), so that real images are cropped and resized like training images were;
- encoded as PNG with compression level 0 and no ancillary chunks: no text, EXIF, ICC, gamma
  or resolution chunk, and a byte length that depends only on `size`, identical for every
  case (a compressed PNG's length would follow texture and noise, a class tell of its own).

`blinding_report` checks at creation what the normalisation cannot make equal: per-image
intensity statistics and recompressed size (texture/noise), and cases that had to be upscaled.
Studies created before ServeSpec existed (no "serve" in their design) keep the old pixels-only
re-encoding, so a running study does not change its images half-way.
"""
from __future__ import annotations

import functools
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MIN_SIZE, MAX_SIZE = 32, 1024
CROPS = ("auto", "none")


@dataclass(frozen=True)
class ServeSpec:
    """How every case of a study is served (stored in the study's design as "serve")."""

    size: int
    crop: str = "auto"  # "auto": frame detection for non-square images; "none": squash to square

    def as_design(self) -> dict:
        return {"size": self.size, "crop": self.crop, "mode": "L", "bits": 8, "format": "PNG", "compress_level": 0}

    @classmethod
    def from_design(cls, serve) -> "ServeSpec | None":
        """The spec stored in a design, or None for a study created before specs existed."""
        if not isinstance(serve, dict) or "size" not in serve:
            return None
        return cls(int(serve["size"]), str(serve.get("crop", "auto")))


def spec_problems(serve) -> list[str]:
    """What is wrong with a requested design["serve"] (an admin's input), [] when usable."""
    if serve is None:
        return []
    if not isinstance(serve, dict):
        return ['design "serve" must be an object like {"size": 128}']
    problems = []
    size = serve.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE):
        problems.append(f'design "serve" size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, got {size!r}')
    if serve.get("crop", "auto") not in CROPS:
        problems.append(f'design "serve" crop must be one of {", ".join(CROPS)}, got {serve.get("crop")!r}')
    return problems


def _grey(im: Image.Image) -> np.ndarray:
    """8-bit greyscale pixels; colour marks painted over like the importers do."""
    from tiger.importers.frame import colour_overlay, remove_overlay

    from tiger.greyscale import image_to_grey, was_colour

    if not was_colour(im):
        return image_to_grey(im)
    rgb = np.asarray(im.convert("RGB"))   # channel mean, as tiger.importers.ddti made the real images
    return remove_overlay(rgb.mean(axis=-1).astype(np.uint8), colour_overlay(rgb))


def _picture(grey: np.ndarray, crop: str) -> np.ndarray:
    """The square part that is served: scanner frames reduced to their largest view, then centred."""
    h, w = grey.shape
    if crop == "none" or h == w:
        return grey
    from tiger.importers.frame import find_views

    views = find_views(grey)
    if views:
        x0, y0, x1, y1 = max(views, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        grey = grey[y0:y1, x0:x1]
        h, w = grey.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return grey[top:top + s, left:left + s]


def normalise(path: str | Path, spec: ServeSpec) -> tuple[Image.Image, int]:
    """The served picture (mode L, spec.size square) and the side of the source square it came from."""
    with Image.open(path) as im:
        im.load()
        square = _picture(_grey(im), spec.crop)
    src_side = min(square.shape)
    out = Image.fromarray(square, mode="L")
    if out.size != (spec.size, spec.size):
        out = out.resize((spec.size, spec.size), Image.Resampling.BICUBIC)
    return out, src_side


def encode(image: Image.Image) -> bytes:
    """PNG with fixed settings (level 0, no ancillary chunks): the length depends only on the size."""
    clean = Image.frombytes(image.mode, image.size, image.tobytes())  # pixels only, no info
    buf = io.BytesIO()
    clean.save(buf, format="PNG", compress_level=0, optimize=False)
    return buf.getvalue()


@functools.lru_cache(maxsize=256)  # level-0 PNGs are size^2 bytes: 64 MiB at 512 px
def _served(path: str, mtime_ns: int, spec: ServeSpec | None) -> bytes:
    if spec is None:
        return _legacy_png(path)
    return encode(normalise(path, spec)[0])


def _legacy_png(path: str) -> bytes:
    """Pre-ServeSpec studies: pixels only, own size and mode (kept so running studies do not change)."""
    with Image.open(path) as im:
        im.load()
        mode = "L" if im.mode in ("L", "1", "I", "I;16") else "RGB"
        clean = Image.frombytes(mode, im.size, im.convert(mode).tobytes())
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def served_png(path: str | Path, spec: ServeSpec | None) -> bytes:
    """The bytes a reader gets for a case image under the study's spec."""
    p = Path(path)
    return _served(str(p), p.stat().st_mtime_ns, spec)


def default_spec(paths_by_truth: dict[str, list[Path]], serve: dict | None = None) -> ServeSpec:
    """The study's spec: the admin's choice, else the synthetic cases' smallest side (the model's
    resolution), else the smallest side of all cases; clamped to MIN_SIZE..MAX_SIZE."""
    serve = serve or {}
    crop = serve.get("crop", "auto")
    if serve.get("size"):
        return ServeSpec(int(serve["size"]), crop)
    pool = paths_by_truth.get("synthetic") or [p for ps in paths_by_truth.values() for p in ps]
    sides = []
    for p in pool:
        with Image.open(p) as im:
            sides.append(min(im.size))
    return ServeSpec(int(min(max(min(sides), MIN_SIZE), MAX_SIZE)) if sides else 128, crop)


def _auc(a: list[float], b: list[float]) -> float:
    """P(value of a > value of b) + half the ties: 0.5 means the statistic does not separate."""
    x, y = np.asarray(a)[:, None], np.asarray(b)[None, :]
    return float(((x > y).sum() + 0.5 * (x == y).sum()) / (x.size * y.size))


SEPARATING_AUC = 0.9  # a statistic with AUC >= 0.9 (or <= 0.1) tells most pairs apart
STATISTICS = {
    "mean intensity": lambda a: float(a.mean()),
    "intensity spread (std)": lambda a: float(a.std()),
    "darkest 1% level": lambda a: float(np.percentile(a, 1)),
    "brightest 1% level": lambda a: float(np.percentile(a, 99)),
    "share of black pixels": lambda a: float((a <= 2).mean()),
    "size when recompressed (texture/noise)": lambda a: float(len(zlib.compress(a.tobytes(), 6))),
}


def blinding_report(paths_by_truth: dict[str, list[Path]], spec: ServeSpec) -> list[str]:
    """Warnings about what still differs between real and synthetic cases once served.

    Served files are identical in size, mode, bit depth, encoder and byte length by
    construction (checked here too); what can differ is the picture itself, so each statistic
    in STATISTICS is compared between the classes by AUC, and upscaled sources are counted.
    """
    served: dict[str, list[np.ndarray]] = {}
    warnings: list[str] = []
    formats = set()
    for truth, paths in paths_by_truth.items():
        arrays, upscaled = [], 0
        for p in paths:
            img, side = normalise(p, spec)
            data = encode(img)
            with Image.open(io.BytesIO(data)) as back:
                formats.add((back.size, back.mode, back.format, len(data)))
            arrays.append(np.asarray(img))
            upscaled += side < spec.size
        served[truth] = arrays
        if upscaled:
            warnings.append(f"{upscaled} of {len(paths)} {truth} case(s) are smaller than {spec.size} px and are "
                            "upscaled (the blur can show)")
    if len(formats) > 1:
        warnings.append(f"served files differ in size/mode/format/length: {sorted(formats)}")
    real, synthetic = served.get("real", []), served.get("synthetic", [])
    if len(real) >= 2 and len(synthetic) >= 2:
        for name, stat in STATISTICS.items():
            auc = _auc([stat(a) for a in real], [stat(a) for a in synthetic])
            if max(auc, 1 - auc) >= SEPARATING_AUC:
                higher = "real" if auc > 0.5 else "synthetic"
                warnings.append(f"{name} separates the classes once served (AUC {max(auc, 1 - auc):.2f}, "
                                f"higher for {higher} cases): readers may learn it instead of judging the image")
    return warnings
