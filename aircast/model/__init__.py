"""The forecaster: normaliser (store statistics as buffers), ViT backbone, heads, and the
factory that makes one for a training store."""
