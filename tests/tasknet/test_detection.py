"""Car detection: target packing, heatmap encoding, decoding, loss, a few
training steps of the detector, and AP of a perfect model (eager and jit)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metasim_jax import tasknet
from metasim_jax.grammar import compile_grammar
from metasim_jax.tasknet import detection, detection_ap, detector, tasks
from metasim_jax.types import LabeledSet, Renders

H, W = 32, 64  # output grid 8 x 16
GRID = (H // 4, W // 4)


def renders_of(boxes, box_mask, truncation=None, occlusion=None):
  b, n = box_mask.shape
  return Renders(image=jnp.zeros((b, H, W, 3)),
                 semantic=jnp.zeros((b, H, W), jnp.int32),
                 instance=jnp.full((b, H, W), -1, jnp.int32),
                 boxes=jnp.asarray(boxes, jnp.float32),
                 box_mask=jnp.asarray(box_mask),
                 truncation=truncation, occlusion=occlusion)


def hand_targets():
  """[2, 3, 7]: image 0 has two cars and a padding row, image 1 one car,
  one DontCare region and one ignored object (a Van)."""
  t = np.zeros((2, 3, 7), np.float32)
  t[0, 0] = (4, 4, 20, 16, 1, 0, 0)     # centre (12, 10) -> cell (3, 2)
  t[0, 1] = (36, 10, 60, 30, 1, 0, 0)   # centre (48, 20) -> cell (12, 5)
  t[1, 0] = (10, 6, 31, 27, 1, 0, 0.2)  # centre (20.5, 16.5) -> (5, 4)
  t[1, 1] = (40, 0, 64, 12, -1, 0, 0)   # DontCare
  t[1, 2] = (40, 12, 64, 32, 2, 0, 0)   # ignored (Van)
  return jnp.asarray(t)


def test_targets_from_renders_pick_object_slots():
  boxes = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
  mask = np.array([[True, True, False, True], [False, False, True, True]])
  trunc = jnp.full((2, 4), 0.25)
  occ = jnp.full((2, 4), 0.5)
  t = np.asarray(detection.targets_from_renders(
      renders_of(boxes, mask, trunc, occ), (1, 3)))
  assert t.shape == (2, 2, 7) and t.dtype == np.float32
  np.testing.assert_array_equal(t[0, 0], list(boxes[0, 1]) + [1, .25, .5])
  np.testing.assert_array_equal(t[0, 1], list(boxes[0, 3]) + [1, .25, .5])
  np.testing.assert_array_equal(t[1, 0], np.zeros(7))  # slot 1 not drawn
  np.testing.assert_array_equal(t[1, 1], list(boxes[1, 3]) + [1, .25, .5])
  # Renderers without truncation/occlusion: zeros there.
  t = np.asarray(detection.targets_from_renders(renders_of(boxes, mask),
                                                (3,)))
  np.testing.assert_array_equal(t[:, 0, 5:], 0.0)
  np.testing.assert_array_equal(t[:, 0, 4], 1.0)


def test_pack_labels_kitti_kinds():
  labels = detection.pack_labels([
      {"boxes": [[0, 0, 10, 30], [5, 5, 9, 9], [1, 1, 2, 2], [3, 3, 40, 40],
                 [0, 0, 8, 8]],
       "kind": ["Car", "DontCare", "Pedestrian", "Van", "Car"],
       "truncation": [0.1, -1, 0, 0.2, 0], "occlusion_level": [1, -1, 0, 0,
                                                                3]},
      {"boxes": np.zeros((0, 4)), "kind": [], "truncation": [],
       "occlusion": []},
  ], capacity=5)
  assert labels.shape == (2, 5, 7)
  np.testing.assert_allclose(labels[0, 0], [0, 0, 10, 30, 1, 0.1, 0.3])
  np.testing.assert_allclose(labels[0, 1], [5, 5, 9, 9, -1, 0, 0])
  np.testing.assert_allclose(labels[0, 2, 4], 2)  # Van: ignored
  np.testing.assert_allclose(labels[0, 3, 4], 2)  # level 3: ignored
  np.testing.assert_array_equal(labels[0, 4], 0)
  np.testing.assert_array_equal(labels[1], 0)
  assert detection_ap.occlusion_level(labels[0, 0, 6]) == 1
  with pytest.raises(ValueError, match="capacity"):
    detection.pack_labels([{"boxes": np.zeros((2, 4)), "kind": ["Car"] * 2,
                            "truncation": [0, 0], "occlusion": [0, 0]}], 1)


def test_heatmap_peaks_at_box_centres():
  e = jax.jit(detection.encode, static_argnums=1)(hand_targets(), GRID)
  heat, pos = np.asarray(e["heat"]), np.asarray(e["pos"])
  assert heat.shape == (2,) + GRID and heat.max() <= 1.0
  want = np.zeros((2,) + GRID, bool)
  want[0, 2, 3] = want[0, 5, 12] = want[1, 4, 5] = True
  np.testing.assert_array_equal(pos, want)
  np.testing.assert_array_equal(heat[pos], 1.0)
  # Each centre is the strict maximum of its 3x3 neighbourhood.
  for b, y, x in zip(*np.nonzero(want)):
    nb = heat[b, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
    assert (nb < 1.0).sum() == nb.size - 1
  # The big car (24 x 20 px = 6 x 5 cells) gets a radius >= 1 Gaussian.
  assert 0 < heat[0, 5, 11] < 1
  np.testing.assert_array_equal(e["car"], [[1, 1, 0], [1, 0, 0]])
  np.testing.assert_allclose(e["offset"][1, 0], [0.125, 0.125])
  np.testing.assert_allclose(e["log_size"][0, 0], np.log([4.0, 3.0]),
                             rtol=1e-6)
  # No heatmap loss inside the DontCare and Van boxes (x >= 40 px).
  ignore = np.asarray(e["ignore"])
  assert ignore[1, :, 10:].all() and not ignore[1, :, :10].any()
  assert not ignore[0].any()
  # gaussian_radius grows with the box and is 0 for a one-cell box.
  r = detection.gaussian_radius(jnp.array([1.0, 5.0, 20.0]),
                                jnp.array([1.0, 6.0, 20.0]))
  assert np.floor(r[0]) == 0 and 0 < r[1] < r[2]


def test_decode_recovers_boxes_from_perfect_output():
  t = hand_targets()
  out = detection.perfect_output(t, GRID)
  assert out.shape == (2,) + GRID + (5,)
  boxes, scores = jax.jit(detection.decode, static_argnums=1)(out, 8)
  assert boxes.shape == (2, 8, 4) and scores.shape == (2, 8)
  boxes, scores = np.asarray(boxes), np.asarray(scores)
  assert (np.diff(scores, axis=1) <= 0).all()
  for b, n in ((0, 2), (1, 1)):
    assert (scores[b, :n] > 0.999).all() and (scores[b, n:] < 1e-3).all()
    found = sorted(map(tuple, boxes[b, :n].round(3)))
    want = sorted(map(tuple, np.asarray(t[b, :n, :4])))
    np.testing.assert_allclose(found, want, atol=1e-3)


def test_feature_maps_of_a_perfect_output():
  out = detection.perfect_output(hand_targets(), GRID)
  maps = np.asarray(detection.detection_maps(out))
  assert maps.shape == (2,) + GRID + (3,)
  # Car 0 of image 0: centre cell (2, 3), 16 x 12 px = 4 x 3 cells.
  np.testing.assert_allclose(maps[0, 2, 3], [1.0, np.log(3.0),
                                             np.log(4.0 / 3.0)], atol=1e-6)
  # Away from every car: no centre probability, nothing weighted by it.
  np.testing.assert_allclose(maps[0, 0, 0], 0.0, atol=1e-6)


def test_loss_lower_for_perfect_output():
  t = hand_targets()
  loss = jax.jit(detection.detection_loss)
  perfect = float(loss(detection.perfect_output(t, GRID), t))
  zeros = float(loss(jnp.zeros((2,) + GRID + (5,)), t))
  assert np.isfinite(perfect) and np.isfinite(zeros)
  assert perfect < 0.05 < 1.0 < zeros
  # No car: only the negative heatmap terms.
  empty = float(loss(jnp.zeros((2,) + GRID + (5,)), jnp.zeros((2, 3, 7))))
  np.testing.assert_allclose(empty, 2 * 8 * 16 * 0.25 * np.log(2),
                             rtol=1e-5)
  with pytest.raises(ValueError, match="logits"):
    detection.detection_loss(jnp.zeros((2,) + GRID + (3,)), t)


@pytest.mark.parametrize("lite", [False, True])
def test_detector_shapes_and_a_few_steps_reduce_the_loss(lite):
  model = detector.CenterNet(features=(8, 8, 16, 16), head=8, lite=lite)
  rng = np.random.default_rng(0)
  t = hand_targets()
  x = jnp.asarray(rng.random((2, H, W, 3)), jnp.float32)
  # An RBG key: threefry's random bits take XLA ~15 s to compile here.
  params = model.init(jax.random.key(0, impl="unsafe_rbg"), x[:1])["params"]
  assert model.apply({"params": params}, x).shape == (2,) + GRID + (5,)
  # 7 backbone + 2 top-down 3x3 convs; the heads' trunks: 3, or 1 shared.
  kernels = [v["kernel"].shape for v in params.values() if "kernel" in v]
  assert sum(k[:2] == (3, 3) for k in kernels) == (10 if lite else 12)
  with pytest.raises(ValueError, match="divisible by 4"):
    model.apply({"params": params}, jnp.zeros((1, 30, 64, 3)))
  tx = optax.adam(3e-3)

  @jax.jit
  def step(params, opt):
    loss, g = jax.value_and_grad(lambda p: detection.detection_loss(
        model.apply({"params": p}, x, train=True), t))(params)
    u, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, u), opt, loss

  opt = tx.init(params)
  losses = []
  for _ in range(15):
    params, opt, loss = step(params, opt)
    losses.append(float(loss))
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.7 * losses[0]
  assert tasknet.create("centernet", num_classes=1).num_classes == 1


class Echo(nn.Module):
  """'Predicts' the perfect output its input carries: every 4th pixel
  holds the [5] output of that cell."""

  @nn.compact
  def __call__(self, x, train=False):
    return x[:, ::4, ::4, :] + 0.0 * self.param("unused",
                                                 nn.initializers.zeros, ())


def perfect_set(num_images=12):
  """Images carrying the perfect output of 4 cars each (48 cars, easy:
  40-46 px tall, unoccluded), plus a DontCare and an ignored box."""
  h, w = 64, 128
  rng = np.random.default_rng(1)
  labels = np.zeros((num_images, 7, 7), np.float32)
  for i in range(num_images):
    for j in range(4):
      x0 = 32 * j + rng.uniform(2, 6)
      y0 = rng.uniform(4, 16)
      labels[i, j] = (x0, y0, x0 + rng.uniform(18, 24),
                      y0 + rng.uniform(40, 46), 1, rng.uniform(0, 0.1),
                      rng.uniform(0, 0.05))
  labels[:, 4] = (0, 60, 20, 64, -1, 0, 0)  # DontCare strip
  labels[:, 5] = (100, 60, 128, 64, 2, 0, 0)  # small ignored object
  out = detection.perfect_output(jnp.asarray(labels), (h // 4, w // 4))
  images = jnp.zeros((num_images, h, w, 5)).at[:, ::4, ::4].set(out)
  return LabeledSet(images=images, labels=jnp.asarray(labels))


def test_score_of_a_perfect_model_eager_and_in_jit():
  data = perfect_set()
  model = Echo()
  params = model.init(jax.random.key(0), data.images[:1])["params"]
  task = detection.Detection(object_slots=(0,))
  eager = detection.evaluate(params, model, data.images, data.labels,
                             batch=5)  # 12 = 5 + 5 + 2 (padded)
  assert set(eager) == set(detection.METRICS) | {"loss"}
  for name in detection.METRICS:
    np.testing.assert_allclose(eager[name], 1.0, err_msg=name)
  assert float(eager["loss"]) < 0.05
  jitted = jax.jit(lambda p, d: task.score(p, model, d))(params, data)
  for name in eager:
    np.testing.assert_allclose(jitted[name], eager[name], rtol=1e-5)
  # A model finding nothing scores 0 and a higher loss.
  blank = LabeledSet(images=jnp.zeros_like(data.images), labels=data.labels)
  zero = task.score(params, model, blank)
  assert float(zero["ap50_moderate"]) == 0.0
  assert float(zero["loss"]) > float(eager["loss"])
  line = task.describe({k: float(v) for k, v in eager.items()})
  assert "IoU 0.5 100.0/100.0/100.0" in line


def test_task_from_registry_and_grid_rows():
  prior = compile_grammar({"root": "scene", "classes": {
      "scene": {"children": [["camera", 1], ["car", [1, 3]], ["tree", 1]]},
      "camera": {"render": "camera"},
      "car": {"render": "mesh", "assets": ["car/sedan"], "semantic": "car",
              "object": True},
      "tree": {"render": "mesh", "assets": ["tree/conifer"],
               "semantic": "vegetation"}}})
  task = tasks.create("detection", None, prior, ("none", "car", "vegetation"))
  assert task.object_slots == (2, 3, 4)
  assert (task.headline, task.num_outputs, task.scene_label) == (
      "ap50_moderate", 1, None)
  boxes = np.zeros((2, 6, 4), np.float32)
  boxes[:, 2] = (8, 4, 24, 20)
  mask = np.zeros((2, 6), bool)
  mask[:, 2] = True
  r = renders_of(boxes, mask)
  assert task.targets(None, r).shape == (2, 3, 7)
  test = LabeledSet(images=jnp.zeros((3, H, W, 3)), labels=hand_targets()[
      jnp.array([0, 1, 0])])
  rows = task.grid_rows(r, r, test)
  assert [n for n, _ in rows] == ["input (prior)", "Meta-Sim", "target"]
  for _, im in rows:
    assert im.shape == (2, H, W, 3)
  green = rows[0][1][0]
  np.testing.assert_array_equal(green[4, 8:25], [[0, 1, 0]] * 17)
  np.testing.assert_array_equal(green[4:21, 24], [[0, 1, 0]] * 17)
  assert green[10, 12].sum() == 0  # inside stays
  # DontCare / ignored boxes of the target row are grey.
  np.testing.assert_allclose(rows[2][1][1, 0, 50], [0.6, 0.6, 0.6])
  no_objects = compile_grammar({"root": "scene", "classes": {
      "scene": {"children": [["tree", 1]]},
      "tree": {"render": "mesh", "assets": ["tree/conifer"]}}})
  with pytest.raises(ValueError, match="object"):
    tasks.create("detection", None, no_objects, ("none",))
