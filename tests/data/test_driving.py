"""The driving world: KITTI examples converted to detection labels, and a
clear error where no KITTI is prepared."""

import numpy as np
import pytest

from metasim_jax.data import driving
from metasim_jax.tasknet import detection


def _example():
  """A tfds-KITTI-like example: 100 x 300 image, four objects."""
  return {"image": np.zeros((100, 300, 3), np.uint8),
          "objects": {
              # ymin, xmin, ymax, xmax (normalised)
              "bbox": np.array([[0.5, 0.1, 0.9, 0.3], [0.4, 0.5, 0.6, 0.6],
                                [0.0, 0.0, 0.2, 0.2], [0.3, 0.7, 0.5, 0.8]],
                               np.float32),
              "type": np.array([0, 1, 8, 3]),  # Car, Van, DontCare, Ped.
              "truncated": np.array([0.1, 0.0, -1.0, 0.0], np.float32),
              "occluded": np.array([1, 0, -1, 0])}}


def test_convert_scales_boxes_and_maps_classes():
  image, row = driving.convert(_example(), (96, 312))
  assert image.shape == (96, 312, 3) and image.dtype == np.float32
  np.testing.assert_allclose(row["boxes"][0], [31.2, 48.0, 93.6, 86.4],
                             rtol=1e-5)
  labels = detection.pack_labels([row])
  assert labels.shape == (1, 3, 7)  # the pedestrian is dropped
  valid = labels[0, :, detection.VALID]
  np.testing.assert_array_equal(valid, [detection.CAR, detection.IGNORED,
                                        detection.DONTCARE])
  assert labels[0, 0, detection.TRUNCATION] == pytest.approx(0.1)
  assert labels[0, 0, detection.OCCLUSION] == pytest.approx(
      detection.LEVEL_FRACTION[1])


def test_missing_kitti_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="no prepared tfds 'kitti'"):
    driving.kitti_sets(str(tmp_path), {"real": 2, "val": 2, "test": 2},
                       (96, 312))
