"""Training losses that are more than a one-liner (segmentation: cross-entropy, Dice, Focal)."""
