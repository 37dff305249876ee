"""The moderngl and the Blender server render the same scene graphs (the
driving grammar's) with the same ids and boxes; only shading differs."""

import importlib.util
import json
import os

import jax
import numpy as np
import pytest

from metasim_jax import grammar as grammar_lib
from metasim_jax import render as render_lib
from metasim_jax.render import bridge
from third_party.renderer_bridge import client as client_lib

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bpy") is None,
    reason="Blender as a module is not installed (tools/install_renderers.sh)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PRIOR = os.path.join(ROOT, "experiments", "configs", "driving", "prior.json")


def test_same_ids_and_boxes():
  with open(PRIOR) as f:
    g = grammar_lib.compile_grammar(json.load(f))
  codec = bridge.Codec.create(g, render_lib.semantic_names(g))
  scene = grammar_lib.sample(jax.random.key(3), g, 6, {})
  scenes = codec.scenes(np.asarray(scene.attrs), np.asarray(scene.node_mask))
  out = {}
  for backend in ("moderngl", "blender"):
    with client_lib.RendererClient.local(backend, 1, timeout_s=300) as c:
      out[backend] = c.render(scenes, 312, 96)
  for gl, bl in zip(out["moderngl"], out["blender"]):
    assert set(np.unique(gl.instance)) == set(np.unique(bl.instance))
    assert (gl.instance == bl.instance).mean() >= 0.999
    np.testing.assert_array_equal(gl.semantic == 0, bl.semantic == 0)
    assert len(gl.objects) == len(bl.objects) > 0
    for a, b in zip(gl.objects, bl.objects):
      assert a.instance_id == b.instance_id
      assert np.abs(np.subtract(a.box, b.box)).max() <= 1
      assert a.truncation == pytest.approx(b.truncation, abs=0.02)
      assert a.occlusion == pytest.approx(b.occlusion, abs=0.02)
    # Shading differs: the images are not the same.
    assert np.abs(gl.rgb.astype(int) - bl.rgb).mean() > 1.0
