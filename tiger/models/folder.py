"""Model folders in diffusers layout: model_index.json + one subfolder per part (fp16 safetensors)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel

from tiger.domain_clip import DomainCLIP
from tiger.models.builders import image_size_of
from tiger.models.errors import ModelFolderError
from tiger.models.attention_processor import set_omega_processor
from tiger.models.fusion import AFFFusion


_MODULE_CLASSES = {
    "vae": ("diffusers", "AutoencoderKL"),
    "unet": ("diffusers", "UNet2DConditionModel"),
    "controlnet_fg": ("diffusers", "ControlNetModel"),
    "controlnet_bg": ("diffusers", "ControlNetModel"),
    "fusion": ("tiger.nets", "AFFFusion"),
    "scheduler": ("diffusers", "DDIMScheduler"),
}
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin")


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise ModelFolderError(f"model folder {path.parent.parent if path.parent.name else path.parent} is missing "
                               f"{path.relative_to(path.parent.parent)} ({what})", path)


def _check_module(folder: Path, name: str, config: str = "config.json", weights: bool = True) -> Path:
    sub = folder / name
    if not sub.is_dir():
        raise ModelFolderError(f"model folder {folder} is missing {name}/", sub)
    if not (sub / config).exists():
        raise ModelFolderError(f"model folder {folder} is missing {name}/{config}", sub / config)
    try:
        json.loads((sub / config).read_text())
    except (ValueError, OSError) as e:
        raise ModelFolderError(f"{name}/{config} in {folder} is not valid JSON ({e})", sub / config) from e
    if weights and not any((sub / w).exists() for w in _WEIGHT_NAMES):
        raise ModelFolderError(f"model folder {folder} is missing {name}/{_WEIGHT_NAMES[0]}", sub / _WEIGHT_NAMES[0])
    return sub


def _load(cls: Any, sub: Path) -> Any:
    try:
        model = cls.from_pretrained(str(sub), local_files_only=True, torch_dtype=torch.float32)
    except Exception as e:  # safetensors / config errors: say which file
        raise ModelFolderError(f"could not load {sub.name}/ from {sub.parent}: {e}", sub) from e
    if next(model.parameters()).dtype != torch.float32:
        model = model.float()
    return model.eval()


@contextlib.contextmanager
def _quiet_diffusers():
    """diffusers warns on every fp16 cast of a module ("should be kept in float32: []"); mute it."""
    from diffusers.utils import logging as dlog
    old = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(old)


def save_components(components: dict, folder: str | Path, fp16: bool = True) -> Path:
    """Write a model folder in diffusers layout (model_index.json + one subfolder per part).

    fp16=True halves the size; loading upcasts to fp32 (CPU runs fp32). Weights are cast on a
    copy of the state, the in-memory modules are left in their dtype.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"_class_name": "TigerPipeline", "_diffusers_version": _diffusers_version()}
    for name in ("vae", "unet", "controlnet_fg", "controlnet_bg", "fusion", "text_encoder"):
        m = components.get(name)
        if m is None:
            continue
        dtype = next(m.parameters()).dtype
        with _quiet_diffusers():
            if fp16:
                m.to(torch.float16)
            try:
                m.save_pretrained(str(folder / name))
            finally:
                if fp16:
                    m.to(dtype)
        index[name] = _MODULE_CLASSES.get(name) or [type(m).__module__.split(".")[0], type(m).__name__]
        if name == "text_encoder" and isinstance(m, DomainCLIP):
            index[name] = ["tiger.domain_clip", "DomainCLIP"]
    if components.get("tokenizer") is not None:
        components["tokenizer"].save_pretrained(str(folder / "tokenizer"))
        index["tokenizer"] = ["transformers", type(components["tokenizer"]).__name__]
    if components.get("clip") is not None and components["clip"] is not components.get("text_encoder"):
        components["clip"].save_pretrained(str(folder / "clip"))
        index["clip"] = ["tiger.domain_clip", "DomainCLIP"]
    components["scheduler"].save_pretrained(str(folder / "scheduler"))
    index["scheduler"] = list(_MODULE_CLASSES["scheduler"])
    bank = components.get("background_bank")
    if bank is not None:
        bank.save(folder / "background_bank")
        index["background_bank"] = ["tiger.background_bank", "BackgroundBank"]
    index["tiger"] = {"model_id": components.get("model_id") or folder.name,
                      "image_size": int(components.get("image_size") or image_size_of(components["unet"], components["vae"]))}
    if components.get("control_guidance") not in (None, 1.0):
        index["tiger"]["control_guidance"] = float(components["control_guidance"])
    if components.get("control_guidance_until") not in (None, 1.0):
        index["tiger"]["control_guidance_until"] = float(components["control_guidance_until"])
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def _diffusers_version() -> str:
    import diffusers
    return diffusers.__version__


def _read_index(folder: Path) -> dict:
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist", folder)
    mi = folder / "model_index.json"
    if not mi.exists():
        raise ModelFolderError(f"model folder {folder} is missing model_index.json", mi)
    try:
        index = json.loads(mi.read_text())
    except ValueError as e:
        raise ModelFolderError(f"model_index.json in {folder} is not valid JSON ({e})", mi) from e
    if not isinstance(index, dict):
        raise ModelFolderError(f"model_index.json in {folder} is not a JSON object", mi)
    return index


def read_model_info(folder: str | Path) -> dict:
    """{"model_id", "image_size"} of a model folder without loading any weights (for pages that
    describe the model before, or instead of, loading it); ModelFolderError when it is not one."""
    folder = Path(folder)
    meta = _read_index(folder).get("tiger", {}) or {}
    size = meta.get("image_size")
    if not size:
        try:
            unet = json.loads((folder / "unet" / "config.json").read_text())
            vae = json.loads((folder / "vae" / "config.json").read_text())
            s = unet["sample_size"]
            size = int(s[0] if isinstance(s, (list, tuple)) else s) * 2 ** (len(vae["block_out_channels"]) - 1)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelFolderError(f"the model folder {folder} does not say its image size ({e})", folder) from e
    return {"model_id": meta.get("model_id", folder.name), "image_size": int(size)}


def open_background_bank(folder: str | Path) -> Any:
    """The model folder's background bank (`tiger.background_bank.BackgroundBank`), or None."""
    sub = Path(folder) / "background_bank"
    if not sub.is_dir():
        return None
    from tiger.background_bank import BackgroundBank
    return BackgroundBank(sub)


def load_components(folder: str | Path) -> dict:
    """Load a model folder (local only) into a dict of fp32 eval-mode modules.

    Keys: vae, text_encoder, tokenizer (None for the domain CLIP), unet, controlnet_fg,
    controlnet_bg, fusion, scheduler, clip (the domain CLIP when present), background_bank
    (None when the folder has none), model_id, image_size. A missing or corrupt part raises
    ModelFolderError naming the file.
    """
    folder = Path(folder)
    index = _read_index(folder)
    comps: dict[str, Any] = {}
    comps["vae"] = _load(AutoencoderKL, _check_module(folder, "vae"))
    comps["unet"] = _load(UNet2DConditionModel, _check_module(folder, "unet"))
    comps["controlnet_fg"] = _load(ControlNetModel, _check_module(folder, "controlnet_fg"))
    comps["controlnet_bg"] = _load(ControlNetModel, _check_module(folder, "controlnet_bg"))
    set_omega_processor(comps["controlnet_fg"])
    comps["fusion"] = _load(AFFFusion, _check_module(folder, "fusion"))
    te_cls = (index.get("text_encoder") or ["tiger.domain_clip", "DomainCLIP"])[1]
    te_dir = _check_module(folder, "text_encoder")
    if te_cls == "DomainCLIP":
        comps["text_encoder"] = _load(DomainCLIP, te_dir)
        comps["tokenizer"] = None
    else:
        from transformers import CLIPTextModel, CLIPTokenizer
        comps["text_encoder"] = _load(CLIPTextModel, te_dir)
        tok_dir = folder / "tokenizer"
        if not any((tok_dir / f).exists() for f in ("tokenizer.json", "vocab.json")):
            raise ModelFolderError(f"model folder {folder} is missing tokenizer/tokenizer.json (or vocab.json)",
                                   tok_dir / "tokenizer.json")
        comps["tokenizer"] = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    if (folder / "clip").is_dir():
        comps["clip"] = _load(DomainCLIP, _check_module(folder, "clip"))
    else:
        comps["clip"] = comps["text_encoder"] if isinstance(comps["text_encoder"], DomainCLIP) else None
    sch = folder / "scheduler" / "scheduler_config.json"
    if not sch.exists():
        raise ModelFolderError(f"model folder {folder} is missing scheduler/scheduler_config.json", sch)
    try:
        comps["scheduler"] = DDIMScheduler.from_pretrained(str(folder / "scheduler"))
    except Exception as e:
        raise ModelFolderError(f"scheduler/scheduler_config.json in {folder} is unreadable ({e})", sch) from e
    comps["background_bank"] = open_background_bank(folder)
    meta = index.get("tiger", {})
    comps["model_id"] = meta.get("model_id", folder.name)
    comps["image_size"] = int(meta.get("image_size") or image_size_of(comps["unet"], comps["vae"]))
    # the control guidance (beta) this model was measured best at; calls that give none use it
    comps["control_guidance"] = float(meta.get("control_guidance", 1.0))
    comps["control_guidance_until"] = float(meta.get("control_guidance_until", 1.0))
    return comps


def load_domain_clip(folder: str | Path) -> DomainCLIP | None:
    """The model folder's full domain CLIP (clip/, or text_encoder/ when that is the DomainCLIP)."""
    folder = Path(folder)
    for sub in ("clip", "text_encoder"):
        p = folder / sub / "config.json"
        if p.exists() and "DomainCLIP" in p.read_text():
            return _load(DomainCLIP, folder / sub)
    return None
