"""The training callbacks under Keras's module name: `m.fit(..., callbacks=[nnc.callbacks.EarlyStopping(...)])`."""
from .callbacks import (Callback, EarlyStopping, LambdaCallback, LearningRateScheduler,  # noqa: F401
                              ReduceLROnPlateau)
from .checkpoint import ModelCheckpoint  # noqa: F401
from .progress import EpochPrinter, ProgressBar  # noqa: F401

__all__ = ["Callback", "EarlyStopping", "LambdaCallback", "LearningRateScheduler", "ReduceLROnPlateau",
           "ModelCheckpoint", "EpochPrinter", "ProgressBar"]
