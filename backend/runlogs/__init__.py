"""A run's training log: the training process's stdout/stderr, read by byte offset and tailed."""
