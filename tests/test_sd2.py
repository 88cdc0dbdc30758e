"""The `sd2` preset, built and run from a tiny randomly initialised SD-2-shaped folder.

Nothing is downloaded: the CLIPTokenizer's vocab.json/merges.txt are written from open_clip's
bundled BPE file (the same vocabulary OpenAI's CLIP tokenizer uses), the CLIPTextModel, the
3-channel AutoencoderKL (f=8) and the UNet come from tiny configs.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from tiger import nets
from tiger.pipeline import TigerPipeline


def _write_clip_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt of the CLIP BPE, from open_clip's bundled bpe_simple_vocab_16e6.txt.gz.

    Building the fast tokenizer from 49k merges takes seconds, so the result is cached in .cache/.
    """
    import shutil

    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    from tiger.paths import CACHE_ROOT

    cached = CACHE_ROOT / "test-sd2-clip-tokenizer"
    if (cached / "tokenizer_config.json").exists():
        shutil.copytree(cached, folder)
        return

    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="!", model_max_length=77).save_pretrained(str(folder))
    tmp = cached.with_name(cached.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    shutil.rmtree(cached, ignore_errors=True)
    tmp.rename(cached)


@pytest.fixture(scope="module")
def sd2_folder(tmp_path_factory) -> Path:
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path_factory.mktemp("sd2") / "stable-diffusion-2-tiny"
    torch.manual_seed(0)
    _write_clip_tokenizer(root / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
                                 projection_dim=32)).save_pretrained(str(root / "text_encoder"))
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16),
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  layers_per_block=1, norm_num_groups=4, sample_size=64).save_pretrained(str(root / "vae"))
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                         block_out_channels=(8, 16, 16, 16), norm_num_groups=4, cross_attention_dim=32,
                         attention_head_dim=(2, 4, 4, 4), use_linear_projection=True,
                         down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                         up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3).save_pretrained(str(root / "unet"))
    return root


def test_sd2_preset_builds_and_generates(sd2_folder, tmp_path):
    preset = nets.sd2_preset(sd2_folder)
    comps = nets.build_components(preset)
    assert comps["image_size"] == 64 and comps["tokenizer"] is not None
    fg = comps["controlnet_fg"]
    assert len(fg.config.conditioning_embedding_out_channels) == 4  # three stride-2 steps for f=8
    assert len(comps["fusion"].blocks) == 13
    states, omega = nets.encode_prompts(comps["text_encoder"], ["malignant, medullary carcinoma", ""],
                                        reweight=True, tokenizer=comps["tokenizer"])
    assert states.shape == (2, 77, 32) and omega[0].max().item() == pytest.approx(3.1)

    model = nets.save_components(comps, tmp_path / "tiger-sd2", fp16=True)
    assert (model / "tokenizer" / "tokenizer_config.json").exists()
    pipe = TigerPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    sob = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 16:44] = 255
    out = pipe(chips={"subtype": "medullary"}, mask=mask, sobel=sob, num_inference_steps=2, seed=3)
    again = pipe.replay(out.records[0])
    assert out.images[0].size == (64, 64) and out.images[0].mode == "L"
    assert np.array_equal(np.asarray(out.images[0]), np.asarray(again.images[0]))


def test_sd2_preset_without_folder_says_what_to_do(tmp_path):
    with pytest.raises(nets.PresetError, match="local Stable Diffusion 2 folder"):
        nets.build_vae(dict(nets.PRESETS["sd2"], source=None))
    with pytest.raises(FileNotFoundError, match="vae/"):
        nets.build_vae(nets.sd2_preset(tmp_path))
