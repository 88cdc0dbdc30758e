"""Image-set metrics: realism, diversity, memorisation, text agreement."""
