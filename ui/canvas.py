"""The draggable nodule canvas: a Gradio 6 `gr.HTML` with an html_template and js_on_load.

Why a gr.HTML and not a built component: Gradio 6 lets a template plus a little JavaScript
carry its own state (`props.value`) and fire events (`trigger`), so the drag runs entirely in
the browser (no round trip per mouse move) and only the drop reaches Python. Python stays the
source of truth: on a drop it re-places the mask with tiger.conditions (snapping it inside the
gland, computing the Location) and sends back a fresh value, which re-renders the template.

The value is a plain JSON dict (see `canvas_value`); every geometric field is precomputed in
percent so the template needs no arithmetic, and the same dict is what API clients send.
"""
from __future__ import annotations

import base64
import io
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

THIRD_ORDER = ("inferior", "middle", "upper pole")
MASK_RGBA = (255, 80, 60, 150)   # translucent red: the nodule must not hide the background

_TEMPLATE = """
<div class="tc-wrap">
{{#if value.bg}}
  <div class="tc-stage" style="aspect-ratio: {{value.w}} / {{value.h}};">
    <img class="tc-bg" src="{{value.bg}}" alt="background" draggable="false">
    <div class="tc-gland" style="left:{{value.gland.left}}%;top:{{value.gland.top}}%;width:{{value.gland.width}}%;height:{{value.gland.height}}%;"></div>
    {{#each value.thirds}}
      <div class="tc-third {{#if this.active}}tc-active{{/if}}" data-third="{{this.name}}"
           style="left:{{this.left}}%;top:{{this.top}}%;width:{{this.width}}%;height:{{this.height}}%;">
        <span class="tc-label">{{this.name}}</span></div>
    {{/each}}
    {{#if value.mask}}
    <img class="tc-mask" src="{{value.mask}}" alt="nodule mask" draggable="false"
         style="left:{{value.box.left}}%;top:{{value.box.top}}%;width:{{value.box.width}}%;height:{{value.box.height}}%;">
    {{/if}}
  </div>
  <div class="tc-status">Location: <b class="tc-location">{{value.location}}</b>
    {{#if value.note}} &mdash; <span class="tc-note">{{value.note}}</span>{{/if}}</div>
{{else}}
  <div class="tc-empty">{{value.note}}</div>
{{/if}}
</div>
"""

_CSS = """
.tc-stage { position: relative; width: 100%; max-width: 512px; user-select: none; touch-action: none;
            background: #000; overflow: hidden; }
.tc-bg { position: absolute; inset: 0; width: 100%; height: 100%; image-rendering: pixelated; }
.tc-gland { position: absolute; border: 2px dashed rgba(255,255,255,0.6); pointer-events: none; }
.tc-third { position: absolute; border: 1px solid rgba(90,200,255,0.7); pointer-events: none; }
.tc-third.tc-active, .tc-third.tc-hover { background: rgba(90,200,255,0.18); }
.tc-label { position: absolute; left: 2px; top: 1px; font-size: 11px; color: #8fd8ff;
            text-shadow: 0 0 2px #000; }
.tc-mask { position: absolute; cursor: grab; image-rendering: pixelated; }
.tc-mask.tc-dragging { cursor: grabbing; outline: 1px solid #fff; }
.tc-status { margin-top: 4px; font-size: 14px; }
.tc-empty { padding: 1em; border: 1px dashed #888; }
"""

# Runs once per mount. Listeners sit on `element` (which survives template re-renders), the
# mask is moved with CSS during the drag, and on release the centre in image pixels is put
# into props.value and announced with trigger('drop').
_JS = """
let drag = null;
const stageRect = () => element.querySelector('.tc-stage').getBoundingClientRect();
function hoverThird(cx, cy, r) {
  element.querySelectorAll('.tc-third').forEach((t) => {
    const b = t.getBoundingClientRect();
    const inside = cx >= b.left - r.left && cx <= b.right - r.left && cy >= b.top - r.top && cy <= b.bottom - r.top;
    t.classList.toggle('tc-hover', inside);
  });
}
element.addEventListener('pointerdown', (e) => {
  const m = e.target.closest('.tc-mask');
  if (!m) return;
  const r = stageRect(); const mr = m.getBoundingClientRect();
  drag = { m: m, r: r, dx: e.clientX - mr.left, dy: e.clientY - mr.top, w: mr.width, h: mr.height,
           left: mr.left - r.left, top: mr.top - r.top };
  m.classList.add('tc-dragging');
  try { m.setPointerCapture(e.pointerId); } catch (err) {}
  e.preventDefault();
});
element.addEventListener('pointermove', (e) => {
  if (!drag) return;
  const r = drag.r;
  drag.left = Math.min(Math.max(e.clientX - r.left - drag.dx, -drag.w / 2), r.width - drag.w / 2);
  drag.top = Math.min(Math.max(e.clientY - r.top - drag.dy, -drag.h / 2), r.height - drag.h / 2);
  drag.m.style.left = (100 * drag.left / r.width) + '%';
  drag.m.style.top = (100 * drag.top / r.height) + '%';
  hoverThird(drag.left + drag.w / 2, drag.top + drag.h / 2, r);
});
function finish(e) {
  if (!drag) return;
  const d = drag; drag = null;
  d.m.classList.remove('tc-dragging');
  const v = props.value || {};
  const cx = (d.left + d.w / 2) / d.r.width * v.w;
  const cy = (d.top + d.h / 2) / d.r.height * v.h;
  props.value = Object.assign({}, v, { drop: { cx: cx, cy: cy }, seq: (v.seq || 0) + 1 });
  trigger('drop', { cx: cx, cy: cy });
}
element.addEventListener('pointerup', finish);
element.addEventListener('pointercancel', finish);
"""


def data_uri(arr: np.ndarray | Image.Image) -> str:
    """A PNG data URI, so the canvas needs no file route (and no path leaves the server)."""
    image = arr if isinstance(arr, Image.Image) else Image.fromarray(np.asarray(arr))
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pct(v: float, total: int) -> float:
    return round(100.0 * float(v) / float(total), 3)


def _box(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> dict[str, float]:
    return {"left": _pct(x0, w), "top": _pct(y0, h), "width": _pct(x1 - x0, w), "height": _pct(y1 - y0, h)}


def empty_value(note: str) -> dict[str, Any]:
    """What the canvas shows when there is no background (e.g. the model folder is missing)."""
    return {"bg": None, "w": 1, "h": 1, "note": note, "thirds": [], "mask": None, "location": ""}


def canvas_value(sobel: np.ndarray, gland: tuple[float, float, float, float],
                 thirds: dict[str, tuple[float, float, float, float]], mask: np.ndarray | None,
                 location: str = "", note: str = "") -> dict[str, Any]:
    """Build the JSON value the template renders.

    `sobel` is the HxW uint8 background; `gland` and `thirds` boxes are (x0, y0, x1, y1) pixels;
    `mask` is HxW 0/255 (None: no nodule). The mask is sent cropped to its bounding box so the
    browser can move it as one element.
    """
    h, w = sobel.shape[:2]
    value: dict[str, Any] = {
        "bg": data_uri(sobel.astype(np.uint8)), "w": int(w), "h": int(h),
        "gland": _box(*gland, w, h),
        "thirds": [{"name": name, "active": name == location, **_box(*thirds[name], w, h)}
                   for name in THIRD_ORDER if name in thirds],
        "location": location, "note": note, "mask": None, "box": None,
    }
    if mask is not None and np.any(mask):
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        crop = np.asarray(mask)[y0:y1, x0:x1] > 0
        rgba = np.zeros(crop.shape + (4,), np.uint8)
        rgba[crop] = MASK_RGBA
        value["mask"] = data_uri(rgba)
        value["box"] = _box(x0, y0, x1, y1, w, h)
        value["center"] = {"cx": float(xs.mean()), "cy": float(ys.mean())}
    return value


def dropped_center(value: Any) -> tuple[float, float] | None:
    """The (cx, cy) pixel centre the user dropped the mask at, or None when the value has none.

    Values come from browsers and API clients, so anything malformed yields None (no move)
    rather than an exception.
    """
    if not isinstance(value, dict):
        return None
    drop = value.get("drop")
    if not isinstance(drop, dict):
        return None
    try:
        cx, cy = float(drop["cx"]), float(drop["cy"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(cx) and np.isfinite(cy)):
        return None
    w, h = float(value.get("w") or 1), float(value.get("h") or 1)
    return min(max(cx, 0.0), w - 1), min(max(cy, 0.0), h - 1)


def mask_canvas(value: dict[str, Any] | None = None, **kwargs: Any) -> gr.HTML:
    """Create the canvas component; listen to drops with `canvas.drop(fn, ...)`."""
    return gr.HTML(value=value or empty_value("Choose a background to place the nodule."),
                   html_template=_TEMPLATE, css_template=_CSS, js_on_load=_JS,
                   apply_default_css=False, **kwargs)
