"""Semantic ids come from one table (the prior's), whatever order a grammar
lists its classes in; a target that names a class differently is refused."""

import json
import pathlib

import jax
import numpy as np
import pytest

from experiments.configs import aerial as aerial_config
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.data import aerial

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = ROOT / "experiments" / "configs" / "aerial" / "target.json"


def _pipe(tmp_path, target: dict, name: str):
  path = tmp_path / name
  path.write_text(json.dumps(target))
  config = aerial_config.get_config("smoke")
  config.target_file = str(path)
  pipe, _ = pipeline_lib.build(config)
  return pipe, aerial.texture_pools(1, dict(config.textures.counts))


def test_reordered_target_classes_keep_their_labels(tmp_path):
  target = json.loads(TARGET.read_text())
  pipe, pools = _pipe(tmp_path, target, "target.json")
  # The same grammar with its classes listed in another order (grass after
  # road and car: a target file edited by hand).
  classes = target["classes"]
  order = ["scene", "road", "car", "grass", "house", "tree"]
  assert sorted(order) == sorted(classes)
  reordered = dict(target, classes={k: classes[k] for k in order})
  pipe2, _ = _pipe(tmp_path, reordered, "reordered.json")
  # The same target scenes, labelled through each pipeline's target grammar.
  scene = pipe.sample(jax.random.key(0), 4, pools, source="target")
  labels = np.asarray(pipe.render(scene, pools, pipe.target).semantic)
  labels2 = np.asarray(pipe2.render(scene, pools, pipe2.target).semantic)
  np.testing.assert_array_equal(labels2, labels)
  names = pipe.semantic_names
  assert names == ("none", "grass", "road", "car", "tree", "house")
  assert pipe2.semantic_names == names  # the prior's table
  # Grass covers most of an aerial image, and is labelled grass.
  assert (labels == names.index("grass")).mean() > 0.3
  assert (labels == names.index("road")).mean() > 0.05


def test_target_that_names_a_class_differently_is_refused(tmp_path):
  target = json.loads(TARGET.read_text())
  target["classes"]["road"]["semantic"] = "street"
  path = tmp_path / "target.json"
  path.write_text(json.dumps(target))
  config = aerial_config.get_config("smoke")
  config.target_file = str(path)
  with pytest.raises(ValueError, match="class 'road' has semantic class "
                     "'street'"):
    pipeline_lib.build(config)
