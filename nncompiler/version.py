"""The package version, at the bottom of the layers: caches and checkpoints record it
without importing the package (whose __init__ imports everything)."""
__version__ = "0.1.0"
