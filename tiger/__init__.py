"""Tiger model library: knowledge base, data, conditions, nets, pipeline, metrics.

Importing the package applies the offline settings first, so that no code path of the
library (diffusers, transformers, ultralytics, gradio) ever tries to reach the network.
"""
from tiger.offline import apply_offline_settings

apply_offline_settings()

__version__ = "0.1.0"
