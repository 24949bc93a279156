"""Benchmarks of nncompiler's CPU backends against hand-written numpy, torch (eager and
torch.compile), jax.jit and TensorFlow/Keras: `python -m bench --help`, see bench/README.md."""
