"""Triton kernel templates (filled in by the Triton backend)."""
