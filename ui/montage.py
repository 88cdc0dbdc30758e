"""Labelled image rows and grids for teaching slides, exported as one PNG.

Why one composed PNG: teachers paste a single picture into slides; a row of separate files
loses the labels and the order. Text is drawn with PIL's bundled font (no system fonts).
"""
from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

TILE = 192
PAD = 8


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for word in para.split():
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def labelled_row(images: Sequence[Image.Image], labels: Sequence[str], title: str = "",
                 notes: Sequence[str] | None = None, tile: int = TILE) -> Image.Image:
    """Images side by side, each with a label above and optional notes below, plus a title."""
    if not images or len(images) != len(labels):
        raise ValueError("A row needs one label per image and at least one image.")
    font, small, big = _font(16), _font(12), _font(18)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    note_lines = [_wrap(probe, n, small, tile) for n in (notes or [""] * len(images))]
    note_h = max(len(n) for n in note_lines) * 15 if notes else 0
    title_h = 28 if title else 0
    w = PAD + len(images) * (tile + PAD)
    h = title_h + 24 + tile + note_h + 2 * PAD
    canvas = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((PAD, PAD), title, fill="black", font=big)
    for i, (img, label) in enumerate(zip(images, labels)):
        x = PAD + i * (tile + PAD)
        y = PAD + title_h
        draw.text((x, y), label, fill="black", font=font)
        canvas.paste(img.convert("RGB").resize((tile, tile), Image.BILINEAR), (x, y + 22))
        for k, line in enumerate(note_lines[i]):
            draw.text((x, y + 26 + tile + k * 15), line, fill=(60, 60, 60), font=small)
    return canvas
