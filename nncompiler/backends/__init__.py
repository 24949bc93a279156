"""Backends: each lowers optimised IR graphs to runnable code."""
