"""Triton GPU backend: fusion plan, Triton codegen, runtime and ahead-of-time compilation."""
