"""The standard library: layers, activations, losses, metrics, optimizers,
initialisers and regularisers, each a registry (name -> function) of functions
that emit IR primitives. See context.py for the calling contract."""
from .activations import ACTIVATIONS
from .context import (Activation, Initializer, LayerContext, ParamDecl, Regularizer, Shape, Spec,
                      Tensor, Value)
from .initializers import INITIALIZERS, compute_fans, initial_value
from . import conv, core_layers, recurrent
from .layers import LAYERS as _DENSE_LAYERS
from .layers import apply_activation
from .losses import LOSSES
from .metrics import METRICS
from .optimizers import OPTIMIZERS, OptimizerDef
from .regularizers import REGULARIZERS, apply_regularizer

# one registry of layers, gathered from the modules that define them
LAYERS = {**_DENSE_LAYERS, **core_layers.LAYERS, **conv.LAYERS, **recurrent.LAYERS}

__all__ = ["ACTIVATIONS", "INITIALIZERS", "LAYERS", "LOSSES", "METRICS", "OPTIMIZERS", "REGULARIZERS",
           "OptimizerDef", "initial_value", "compute_fans", "apply_regularizer", "apply_activation",
           "Activation", "Initializer", "LayerContext", "ParamDecl", "Regularizer", "Shape", "Spec",
           "Tensor", "Value"]
