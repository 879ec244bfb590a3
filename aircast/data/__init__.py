"""Data for the model: the typed :class:`Batch` that crosses into the model, and the torch
datasets that read the training store."""
