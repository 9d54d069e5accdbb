"""The shared training loop and its parts (optimizers, schedules, checkpoints, caching)."""
