"""Scene graphs as network inputs: feature schema and GraphsTuples."""

from metasim_jax.scene_graph.encoding import (apply_head, decode, encode,
                                              layout)
from metasim_jax.scene_graph.graph import to_graphs_tuple

__all__ = ["apply_head", "decode", "encode", "layout", "to_graphs_tuple"]
