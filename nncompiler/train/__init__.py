"""Training: data readers, the training loop, and metrics."""
