"""Datasets that feed grammars (textures) and targets."""
