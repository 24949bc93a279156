"""Package data for the .nn language: the Lark grammar (nn.lark) and its reference (reference.md)."""
