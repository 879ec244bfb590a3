"""The forecaster: normaliser (store statistics as buffers), ViT backbone, heads."""
