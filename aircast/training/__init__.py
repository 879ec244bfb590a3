"""Training: losses (MAE, fMAE), the loop, checkpoints."""
