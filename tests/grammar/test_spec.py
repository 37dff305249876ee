"""Grammar tables: training-stage groups of mutable attributes."""

import json
import os

import numpy as np
import pytest

from metasim_jax.grammar import GrammarError, compile_grammar


def test_stage_groups_switch_the_right_attributes():
  """The driving grammar's groups: each stage makes exactly its group's
  attributes mutable (and gives only them finite-difference steps)."""
  path = os.path.join(os.path.dirname(__file__), "..", "..", "experiments",
                      "configs", "driving", "prior.json")
  with open(path) as f:
    g = compile_grammar(json.load(f))
  assert g.groups == ("camera", "cars", "context")
  expect = {"cars": {("car", "x"), ("car", "y"), ("car", "yaw")},
            "camera": {("camera", "z"), ("camera", "pitch"),
                       ("camera", "yaw"), ("camera", "fov")}}
  for group, want in expect.items():
    stage = g.with_mutable_groups([group])
    got = {(stage.slots[i].cls, stage.attr_names[j])
           for i, j in zip(*np.nonzero(stage.mutable))}
    assert got == want
    assert ((stage.fd_step > 0) == stage.mutable).all()
  both = g.with_mutable_groups(["cars", "camera"])
  assert both.mutable.sum() == sum(
      g.with_mutable_groups([k]).mutable.sum() for k in expect)
  every = g.with_mutable_groups(g.groups)
  np.testing.assert_array_equal(every.mutable, g.mutable)
  np.testing.assert_array_equal(every.p0, g.p0)  # distributions unchanged
  with pytest.raises(GrammarError, match="unknown groups"):
    g.with_mutable_groups(["trucks"])
