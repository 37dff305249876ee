"""The Distribution Transformer G_theta."""

from metasim_jax.transformer.gcn import (DistributionTransformer, TreeConv,
                                         build, init, transform, with_offsets)

__all__ = ["DistributionTransformer", "TreeConv", "build", "init",
           "transform", "with_offsets"]
