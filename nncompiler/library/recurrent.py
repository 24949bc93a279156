"""Recurrent layers (rnn, lstm, gru) over [B, T, F] inputs, unrolled over a static T."""
from __future__ import annotations

LAYERS: dict = {}
