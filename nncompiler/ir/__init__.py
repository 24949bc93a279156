"""The dataflow IR: primitive table, immutable SSA graph, textual form, verifier."""
from .graph import Builder, Graph, Node, rebuild
from .primitives import PRIMITIVES, Primitive, norm_axes
from .shapes import TensorType, parse_type
from .text import parse_graph, parse_graphs, print_graph, print_graphs
from .verify import verify

__all__ = ["Builder", "Graph", "Node", "rebuild", "PRIMITIVES", "Primitive", "norm_axes",
           "TensorType", "parse_type", "parse_graph", "parse_graphs", "print_graph", "print_graphs",
           "verify"]
