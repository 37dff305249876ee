"""IoU against hand-computed cases; the U-Net's shapes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metasim_jax.tasknet import segmentation, unet


def test_confusion_and_iou_by_hand():
  labels = jnp.array([[0, 0, 1, 1], [2, 2, 2, 1]])
  pred = jnp.array([[0, 1, 1, 1], [2, 2, 0, 0]])
  cm = segmentation.confusion_matrix(pred, labels, 4)
  np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [1, 2, 0, 0],
                                     [1, 0, 2, 0], [0, 0, 0, 0]])
  iou = np.asarray(segmentation.iou_from_confusion(cm))
  # class 0: TP 1, FP 2 (pred 0 where 1, 2), FN 1 -> 1/4
  # class 1: TP 2, FP 1, FN 1 -> 2/4; class 2: TP 2, FP 0, FN 1 -> 2/3
  np.testing.assert_allclose(iou[:3], [1 / 4, 2 / 4, 2 / 3], rtol=1e-6)
  assert np.isnan(iou[3])  # absent from labels and predictions


class OneHotEcho(nn.Module):
  """'Predicts' what its input encodes: logits = input channels."""

  @nn.compact
  def __call__(self, x, train=False):
    return x + 0.0 * self.param("unused", nn.initializers.zeros, ())


def test_evaluate_matches_numpy_over_padded_chunks():
  rng = np.random.default_rng(0)
  k, m = 3, 7
  labels = rng.integers(0, k, (m, 4, 5))
  pred = np.where(rng.random((m, 4, 5)) < 0.7, labels,
                  rng.integers(0, k, (m, 4, 5)))
  images = jax.nn.one_hot(pred, k)
  model = OneHotEcho()
  params = model.init(jax.random.key(0), images[:1])["params"]
  out = segmentation.evaluate(params, model, images, jnp.asarray(labels),
                              ("a", "b", "c"), ("b", "c"), chunk=3)
  ious = []
  for c in range(k):
    tp = np.sum((pred == c) & (labels == c))
    union = np.sum((pred == c) | (labels == c))
    ious.append(tp / union)
  np.testing.assert_allclose([out["iou_a"], out["iou_b"], out["iou_c"]], ious,
                             rtol=1e-6)
  np.testing.assert_allclose(out["miou"], np.mean(ious[1:]), rtol=1e-6)
  np.testing.assert_allclose(out["pixel_accuracy"], np.mean(pred == labels),
                             rtol=1e-6)


def test_unet_shapes_and_size_check():
  model = unet.UNet(num_classes=6)
  x = jnp.zeros((2, 16, 24, 3))
  params = model.init(jax.random.key(0), x)["params"]
  assert model.apply({"params": params}, x).shape == (2, 16, 24, 6)
  convs = [k for k in jax.tree_util.tree_flatten_with_path(params)[0]
           if "kernel" in jax.tree_util.keystr(k[0])]
  assert len(convs) == 7  # the paper's seven convolutional layers
  with pytest.raises(ValueError, match="divisible by 4"):
    model.init(jax.random.key(0), jnp.zeros((1, 18, 24, 3)))


def test_smooth_unet_shares_parameters_and_has_a_matching_derivative():
  """``smooth=True`` changes the activations and pooling, not the weights;
  its directional derivative in the image matches central differences
  (what the ``unrolled`` estimator relies on)."""
  x = jax.random.uniform(jax.random.key(1), (1, 16, 16, 3))
  params = unet.UNet(num_classes=3).init(jax.random.key(0), x)["params"]
  smooth = unet.UNet(num_classes=3, smooth=True)
  assert (jax.tree.structure(smooth.init(jax.random.key(0), x)["params"])
          == jax.tree.structure(params))
  loss = lambda img: jnp.sum(jnp.sin(smooth.apply({"params": params}, img)))
  v = jax.random.normal(jax.random.key(2), x.shape)
  _, slope = jax.jvp(loss, (x,), (v,))
  eps = 1e-2
  fd = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
  np.testing.assert_allclose(slope, fd, rtol=2e-2)
