"""A new world, task and renderer, registered from outside the package,
run through the whole training loop and an export without any change to
``metasim_jax/`` or ``experiments/``.

* world ``blobs``: no assets; its target sets are rendered from the
  target grammar (one to three blobs, on the right of the image);
* renderer ``numpy_blobs``: draws each node with an ``x``/``y`` as a
  Gaussian blob, in NumPy on the host, behind one ``jax.pure_callback``
  per batch: no JAX gradient, so distribution matching differentiates it
  by finite differences, as it would an out-of-process renderer;
* task ``count``: classify how many blobs a scene holds.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import base
from metasim_jax import data as data_lib
from metasim_jax import render as render_lib
from metasim_jax import tasknet
from metasim_jax.export import generate as generate_lib
from metasim_jax.export import run as run_lib
from metasim_jax.tasknet import tasks
from metasim_jax.training import trainer
from metasim_jax.types import LabeledSet, Renders, SceneGraph

SIZE = 16
RADIUS = 1.5


def _grammar(x_mean: float) -> dict:
  gauss = lambda m, s: {"type": "gaussian", "mean": m, "std": s}
  return {"root": "scene", "classes": {
      "scene": {"children": [["background", 1], ["blob", [1, 3]]]},
      "background": {"render": "fill", "color": [0.1],
                     "semantic": "background"},
      "blob": {"render": "fill", "color": [0.9], "semantic": "blob",
               "attributes": {
                   "x": {"kind": "continuous", "range": [0.0, SIZE],
                         "mutable": True, "fd_step": 0.5,
                         "dist": gauss(x_mean, 1.5)},
                   "y": {"kind": "continuous", "range": [0.0, SIZE],
                         "mutable": True, "fd_step": 0.5,
                         "dist": gauss(SIZE / 2, 3.0)}}}}}


# ---------------------------------------------------------------- renderer
def _draw(attrs, node_mask, *, blobs, fills, colours, sem_ids, cx, cy, shape):
  """NumPy: all layers of a batch of scenes (any leading batch dims)."""
  h, w, c = shape
  lead = attrs.shape[:-2]
  attrs = np.asarray(attrs).reshape((-1,) + attrs.shape[-2:])
  mask = np.asarray(node_mask).reshape((-1, node_mask.shape[-1]))
  b, n = mask.shape
  yy, xx = np.mgrid[0:h, 0:w] + 0.5
  image = np.zeros((b, h, w, c), np.float32)
  semantic = np.zeros((b, h, w), np.int32)
  instance = np.full((b, h, w), -1, np.int32)
  boxes = np.zeros((b, n, 4), np.float32)
  for i in fills:
    on = mask[:, i, None, None]
    image = np.where(on[..., None], colours[i], image)
    semantic = np.where(on, sem_ids[i], semantic)
    instance = np.where(on, i, instance)
    boxes[:, i] = (0, 0, w, h)
  for i in blobs:
    x, y = attrs[:, i, cx, None, None], attrs[:, i, cy, None, None]
    a = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * RADIUS ** 2))
    a = (a * mask[:, i, None, None]).astype(np.float32)
    image = image * (1 - a[..., None]) + a[..., None] * colours[i]
    semantic = np.where(a > 0.5, sem_ids[i], semantic)
    instance = np.where(a > 0.5, i, instance)
    boxes[:, i] = np.stack([attrs[:, i, cx] - 2 * RADIUS,
                            attrs[:, i, cy] - 2 * RADIUS,
                            attrs[:, i, cx] + 2 * RADIUS,
                            attrs[:, i, cy] + 2 * RADIUS], -1)
  out = (image, semantic, instance, boxes, mask.copy())
  return tuple(o.reshape(lead + o.shape[1:]) for o in out)


@dataclasses.dataclass(frozen=True)
class NumpyBlobs:
  canvas: render_lib.Canvas
  semantic_names: tuple
  differentiable: bool = False

  def render(self, scene: SceneGraph, grammar, pools) -> Renders:
    del pools
    blobs = [i for i, s in enumerate(grammar.slots)
             if "x" in [a.name for a in grammar.classes[s.cls].attrs]]
    fills = [i for i, s in enumerate(grammar.slots)
             if grammar.classes[s.cls].render == "fill" and i not in blobs]
    colours = {i: np.resize(np.float32(grammar.classes[s.cls].color),
                            self.canvas.channels)
               for i, s in enumerate(grammar.slots)}
    fn = lambda a, m: _draw(
        a, m, blobs=blobs, fills=fills, colours=colours,
        sem_ids=render_lib.slot_semantic_ids(grammar, self.semantic_names),
        cx=grammar.col("x"), cy=grammar.col("y"), shape=self.canvas.shape)
    b, n = scene.node_mask.shape
    shapes = (jax.ShapeDtypeStruct((b,) + self.canvas.shape, jnp.float32),
              jax.ShapeDtypeStruct((b, SIZE, SIZE), jnp.int32),
              jax.ShapeDtypeStruct((b, SIZE, SIZE), jnp.int32),
              jax.ShapeDtypeStruct((b, n, 4), jnp.float32),
              jax.ShapeDtypeStruct((b, n), jnp.bool_))
    out = jax.pure_callback(fn, shapes, scene.attrs, scene.node_mask,
                            vmap_method="broadcast_all")
    return Renders(*out)

  def render_image(self, attrs, node_mask, grammar, pools):
    return self.render(SceneGraph(attrs, node_mask), grammar, pools).image


# -------------------------------------------------------------------- task
@dataclasses.dataclass(frozen=True)
class Count:
  slots: tuple
  headline: str = "count_accuracy"
  num_outputs: int = 3
  scene_label: tasks.SceneLabel = tasks.SceneLabel(3, "blobs - 1")

  def targets(self, scene, renders):
    del renders
    return scene.node_mask[:, np.array(self.slots)].sum(-1) - 1

  def loss(self, logits, targets):
    return tasknet.cross_entropy(logits, targets)

  def score(self, params, model, data):
    m = tasknet.evaluate(params, model, data.images, data.labels)
    return {"count_accuracy": m["accuracy"], "loss": m["loss"]}

  def describe(self, metrics):
    return f"counted right: {metrics['count_accuracy']:.2f}"

  def grid_rows(self, prior, metasim, test):
    n = prior.image.shape[0]
    return [("prior", np.asarray(prior.image)),
            ("Meta-Sim", np.asarray(metasim.image)),
            ("target", np.asarray(test.images[:n]))]


def count_task(config, prior, semantic_names):
  del config, semantic_names
  return Count(slots=tuple(int(i) for i in prior.slots_of("blob")))


# ------------------------------------------------------------------- world
def blob_sets(key, config, pipe):
  out = {}
  for i, name in enumerate(data_lib.SPLITS):
    scene = pipe.sample(jax.random.fold_in(key, i), config.splits[name], {},
                        source="target")
    r = pipe.render(scene, {}, pipe.target)
    out[name] = LabeledSet(r.image, pipe.task.targets(scene, r))
  return out


@pytest.fixture
def fast_compile():
  """Compile with few optimisations: this test compiles many small
  programs once each."""
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture
def registered():
  saved = (dict(data_lib.REGISTRY), dict(render_lib.REGISTRY),
           dict(tasks.REGISTRY))
  data_lib.register("blobs", data_lib.World(lambda config: {}, blob_sets))
  render_lib.register("numpy_blobs", NumpyBlobs)
  tasks.register("count", count_task)
  yield
  for reg, old in zip((data_lib.REGISTRY, render_lib.REGISTRY,
                       tasks.REGISTRY), saved):
    reg.clear()
    reg.update(old)


def blob_config():
  c = base.get_config()
  c.name = "blobs_smoke"
  c.world, c.renderer, c.task_type = "blobs", "numpy_blobs", "count"
  c.grammar, c.target = _grammar(4.0), _grammar(12.0)
  c.splits = {"real": 16, "val": 8, "test": 8}
  c.canvas = {"height": SIZE, "width": SIZE, "channels": 1}
  c.transformer = {"hidden": 16, "encoder_layers": 1, "decoder_layers": 1}
  c.pretrain.steps = 2
  c.mmd.steps, c.mmd.num_starts = 3, 2
  c.mmd.batch_size, c.mmd.select_batch = 8, 8
  c.mmd.grad = "finite_diff"
  c.tasknet = {"name": "small_cnn", "kwargs": {}}
  # No probes: they are the same trainer as the evaluation's, and checked
  # in the MNIST smoke run (tests/training/test_resume.py).
  c.eval = {"train_steps": 2, "batch_size": 4, "lr": 1e-3, "probe_steps": 2,
            "probe_every": 0, "num_scenes": 8, "repeats": 1}
  c.log_every = c.curve_every = 1
  return c


@pytest.mark.slow
def test_new_world_task_and_renderer_train_and_export(registered, fast_compile,
                                                     tmp_path):
  del registered, fast_compile
  workdir = tmp_path / "run"
  summary = trainer.run(blob_config(), str(workdir))
  r = summary["per_seed"][0]
  assert summary["summary"]["headline_metric"] == "count_accuracy"
  assert set(r["test_count_accuracy"]) == {"prior", "metasim", "oracle"}
  assert "scene/blob[2].x" in r["attribute_stats"]["metasim"]
  # MMD steps with finite differences through the host renderer.
  curves = r["curves"]["MMD^2 (train batch)"]
  assert [s for s, _ in curves["start 1"]] == [1, 2, 3]
  assert np.isfinite([v for _, v in curves["start 1"]]).all()
  assert (workdir / "grid_seed0.png").stat().st_size > 0

  # Export through the same plug-ins, from the run directory.
  run = run_lib.load(str(workdir))
  out = tmp_path / "export"
  generate_lib.generate(run, str(out), num_scenes=6, fmt="tfds", seed=0,
                        shard_size=4, file_format="tfrecord")
  import tensorflow_datasets as tfds
  path = os.path.join(out, "metasim_blobs_smoke", "1.0.0")
  builder = tfds.builder_from_directory(path)
  examples = list(tfds.as_numpy(builder.as_dataset(split="train",
                                                   shuffle_files=False)))
  assert len(examples) == 6
  assert builder.info.features["label"].num_classes == 3
  blob_slots = np.array(run.pipe.task.slots)
  for e in examples:
    count = int(e["scene"]["node_mask"][blob_slots].sum())
    assert int(e["label"]) == count - 1
    assert e["image"].shape == (SIZE, SIZE, 1)
  meta = json.loads((out / "metasim_blobs_smoke" / "1.0.0" /
                     "generation.json").read_text())
  assert meta["task"] == "count"


def test_unknown_plugin_names_list_the_valid_ones():
  c = blob_config()
  from metasim_jax import pipeline as pipeline_lib
  with pytest.raises(ValueError, match=r"unknown world 'blobs'; valid: "
                     r"\['aerial', 'driving', 'mnist'\]"):
    pipeline_lib.build(c)
  c.world = "mnist"
  with pytest.raises(ValueError, match="unknown renderer 'numpy_blobs'"):
    pipeline_lib.build(c)
  c.renderer = "raster2d"
  with pytest.raises(ValueError, match="unknown task 'count'"):
    pipeline_lib.build(c)
