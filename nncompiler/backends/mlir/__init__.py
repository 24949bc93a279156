"""MLIR backend: standard MLIR (linalg on tensors) compiled and run on the CPU through IREE."""
