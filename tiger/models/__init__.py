"""The networks of the Tiger Model, one file per concept (as diffusers splits its models):

- presets.py: the sizes of every part by preset name (tiny, micro, sd2);
- builders.py: randomly initialised parts of a preset (VAE, UNet, text encoder, ControlNets, AFF,
  schedulers);
- fusion.py: attentional feature fusion (AFF) of the FG and BG ControlNet residuals;
- attention_processor.py: the FG ControlNet's omega-weighted cross-attention;
- prompts.py: prompts -> token states and per-token omega;
- forward.py: the one fused forward pass that training and the pipeline share;
- mask_channel.py: the nodule mask as a fifth UNet input channel (departure from the paper);
- folder.py: model folders in diffusers layout (save / load);
- errors.py: PresetError, ModelFolderError.

Callers use the single namespace `tiger.nets`, which re-exports the public names.
"""
