"""Probabilistic scene grammars: definition, validation, sampling."""

from metasim_jax.grammar.sampler import sample, wrap_angle
from metasim_jax.grammar.spec import (Grammar, GrammarError, compile_grammar)

__all__ = ["Grammar", "GrammarError", "compile_grammar", "sample",
           "wrap_angle"]
