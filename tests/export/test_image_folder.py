"""The image folder of COCO and KITTI exports, on a hand-made batch.

Three 8x10 scenes of the Aerial2D grammar, written in two batches (scenes
0-1, then 2), with instance maps drawn by hand: the expected file names,
pixels, KITTI label lines and COCO annotations are worked out here, not
by the code under test.  No run directory and no compilation: the writers
get a stand-in for ``TrainedRun`` with the attributes they read.
"""

import json
import os
import types

import jax
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from metasim_jax.export.batch import LabeledBatch
from metasim_jax.export.coco import CocoWriter
from metasim_jax.export.images import ImageFolder
from metasim_jax.export.kitti import KittiWriter
from metasim_jax.grammar import compile_grammar
from metasim_jax.render import semantic_names

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PRIOR = os.path.join(ROOT, "experiments", "configs", "aerial", "prior.json")
H, W = 8, 10
# Slots of the aerial grammar: 0 scene, 1 grass, 2 road, 3 car[0],
# 4 car[1], 5 tree, 6 house; semantic ids grass 1, road 2, car 3, tree 4,
# house 5.  Things: car, tree, house.
GRASS, ROAD, CAR0, CAR1, TREE, HOUSE = 1, 2, 3, 4, 5, 6
THINGS = ("car", "tree", "house")


def fake_run():
  with open(PRIOR, encoding="utf-8") as f:
    raw = json.load(f)
  g = compile_grammar(raw)
  assert [s.path for s in g.slots][CAR0] == "scene/road[0]/car[0]"
  canvas = types.SimpleNamespace(height=H, width=W, channels=3)
  pipe = types.SimpleNamespace(prior=g, canvas=canvas,
                               semantic_names=semantic_names(g))
  return types.SimpleNamespace(pipe=pipe, grammar=raw)


def meta(num_scenes=3):
  return {"format": "test", "num_scenes": num_scenes,
          "run": {"name": "aerial_smoke"}, "object_classes": list(THINGS)}


def boxes(instance, n):
  """Visible pixel count [B, N] and box [B, N, 4] per slot."""
  area = np.zeros(instance.shape[:1] + (n,), np.int32)
  box = np.zeros(instance.shape[:1] + (n, 4), np.float32)
  for j, inst in enumerate(instance):
    for s in range(n):
      ys, xs = np.nonzero(inst == s)
      if len(ys):
        area[j, s] = len(ys)
        box[j, s] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
  return area, box


def hand_batch() -> LabeledBatch:
  n, a = 7, 5
  inst = np.full((3, H, W), GRASS, np.int32)
  # Scene 0: car[0] on rows 2..4, columns 3..7 (its own footprint starts a
  # row higher, under something; its texture box leaves the image on the
  # left), a tree in the bottom-left corner, the house fully hidden.
  inst[0, 2:5, 3:8] = CAR0
  inst[0, 5:8, 0:2] = TREE
  # Scene 1: all road, no objects.
  inst[1] = ROAD
  # Scene 2: car[1] mostly hidden (5 of 20 pixels), the house, and one
  # row where nothing is drawn.
  inst[2, 0, 5:10] = CAR1
  inst[2, 3:5, 0:3] = HOUSE
  inst[2, 7] = -1
  visible_area, visible_box = boxes(inst, n)
  own_area = np.full((3, n), -1, np.int32)
  own_box = np.zeros((3, n, 4), np.float32)
  full_box = np.zeros((3, n, 4), np.float32)
  for j, slot, own, box, full in (
      (0, CAR0, 20, (3, 1, 8, 5), (-2, 1, 8, 5)),
      (0, TREE, 6, (0, 5, 2, 8), (0, 5, 2, 8)),
      (0, HOUSE, 10, (4, 4, 9, 6), (4, 4, 9, 6)),
      (2, CAR1, 20, (5, 0, 10, 4), (5, 0, 12, 4)),
      (2, HOUSE, 6, (0, 3, 3, 5), (0, 3, 3, 5))):
    own_area[j, slot], own_box[j, slot], full_box[j, slot] = own, box, full
  rng = np.random.default_rng(0)
  node_mask = np.ones((3, n), bool)
  node_mask[1, [CAR0, CAR1, TREE, HOUSE]] = False
  node_mask[2, CAR0] = False
  return LabeledBatch(
      image=rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8),
      attrs=rng.normal(size=(3, n, a)).astype(np.float32),
      node_mask=node_mask, label=np.zeros(3, np.int32),
      semantic=np.zeros((3, H, W), np.uint8), instance=inst,
      visible_area=visible_area, visible_box=visible_box, full_box=full_box,
      own_area=own_area, own_box=own_box)


def rows(b: LabeledBatch, lo: int, hi: int) -> LabeledBatch:
  return jax.tree.map(lambda x: x[lo:hi], b)


def export(cls, out_dir):
  b = hand_batch()
  writer = cls(out_dir, fake_run(), meta(), THINGS)
  writer.write(rows(b, 0, 2), 0)  # two shards, as generate streams them
  writer.write(rows(b, 2, 3), 2)
  writer.close()
  return b


def check_folder(out_dir, images, b):
  """Images, sidecar and scene arrays shared by every image export."""
  assert sorted(os.listdir(os.path.join(out_dir, images))) == [
      "000000.png", "000001.png", "000002.png"]
  for i in range(3):
    with Image.open(os.path.join(out_dir, images, f"{i:06d}.png")) as im:
      assert im.mode == "RGB"
      np.testing.assert_array_equal(np.asarray(im), b.image[i])
  np.testing.assert_array_equal(
      np.load(os.path.join(out_dir, "scene_attrs.npy")), b.attrs)
  np.testing.assert_array_equal(
      np.load(os.path.join(out_dir, "scene_node_mask.npy")), b.node_mask)
  with open(os.path.join(out_dir, "grammar.json"), encoding="utf-8") as f:
    assert json.load(f) == fake_run().grammar
  with open(os.path.join(out_dir, "generation.json"), encoding="utf-8") as f:
    assert json.load(f) == meta()


def test_kitti_writes_images_and_devkit_lines(tmp_path):
  out = str(tmp_path / "kitti")
  b = export(KittiWriter, out)
  assert sorted(os.listdir(out)) == [
      "generation.json", "grammar.json", "scene_attrs.npy",
      "scene_node_mask.npy", "training"]
  assert sorted(os.listdir(os.path.join(out, "training"))) == [
      "image_2", "label_2"]
  check_folder(out, os.path.join("training", "image_2"), b)
  rest = "-1 -1 -1 -1000 -1000 -1000 -10\n"
  expected = {
      # car: 8 of 10 box columns inside, 15 of 20 own pixels visible.
      "000000.txt": ["Car 0.20 1 -10 3.00 1.00 8.00 5.00 " + rest,
                     "Tree 0.00 0 -10 0.00 5.00 2.00 8.00 " + rest],
      "000001.txt": [],
      # car: 5 of 7 box columns inside (0.2857), 5 of 20 pixels visible.
      "000002.txt": ["Car 0.29 2 -10 5.00 0.00 10.00 4.00 " + rest,
                     "House 0.00 0 -10 0.00 3.00 3.00 5.00 " + rest],
  }
  labels = os.path.join(out, "training", "label_2")
  assert sorted(os.listdir(labels)) == sorted(expected)
  for name, lines in expected.items():
    with open(os.path.join(labels, name), encoding="ascii") as f:
      assert f.readlines() == lines


def test_coco_writes_images_and_instance_annotations(tmp_path):
  out = str(tmp_path / "coco")
  b = export(CocoWriter, out)
  assert sorted(os.listdir(out)) == [
      "annotations.json", "generation.json", "grammar.json", "images",
      "scene_attrs.npy", "scene_node_mask.npy"]  # no .part files left
  check_folder(out, "images", b)
  with open(os.path.join(out, "annotations.json"), encoding="utf-8") as f:
    coco = json.load(f)
  assert coco["info"]["description"] == (
      "Meta-Sim generated dataset (aerial_smoke)")
  assert coco["categories"] == [
      {"id": 1, "name": "grass", "supercategory": "stuff"},
      {"id": 2, "name": "road", "supercategory": "stuff"},
      {"id": 3, "name": "car", "supercategory": "thing"},
      {"id": 4, "name": "tree", "supercategory": "thing"},
      {"id": 5, "name": "house", "supercategory": "thing"}]
  assert coco["images"] == [
      {"id": i, "file_name": f"{i:06d}.png", "width": W, "height": H}
      for i in range(3)]
  # (image, slot, category, [x, y, w, h], area): every visible instance,
  # stuff included, in slot order; the hidden house of image 0 has none.
  expected = [
      (0, GRASS, 1, [0, 0, 10, 8], 80 - 15 - 6),
      (0, CAR0, 3, [3, 2, 5, 3], 15),
      (0, TREE, 4, [0, 5, 2, 3], 6),
      (1, ROAD, 2, [0, 0, 10, 8], 80),
      (2, GRASS, 1, [0, 0, 10, 7], 80 - 5 - 6 - 10),
      (2, CAR1, 3, [5, 0, 5, 1], 5),
      (2, HOUSE, 5, [0, 3, 3, 2], 6)]
  anns = coco["annotations"]
  assert len(anns) == len(expected)
  paths = [s.path for s in fake_run().pipe.prior.slots]
  for k, (a, (i, slot, cat, bbox, area)) in enumerate(zip(anns, expected)):
    assert a["id"] == k + 1
    assert (a["image_id"], a["category_id"], a["area"]) == (i, cat, area)
    assert a["bbox"] == bbox and a["iscrowd"] == 0
    assert a["metasim_slot"] == paths[slot]
    assert a["segmentation"]["size"] == [H, W]
    np.testing.assert_array_equal(mask_utils.decode(a["segmentation"]),
                                  b.instance[i] == slot)


def test_image_folder_names_and_counts(tmp_path):
  folder = ImageFolder(str(tmp_path), "a/b", fake_run(), meta())
  assert folder.name(7) == "000007"
  b = hand_batch()
  assert folder.write_batch(rows(b, 0, 2), 0) == [(0, "000000"),
                                                  (1, "000001")]
  with pytest.raises(ValueError, match="wrote 2 rows of 3"):
    folder.close()  # a scene short
  assert sorted(os.listdir(tmp_path / "a" / "b")) == ["000000.png",
                                                      "000001.png"]
  wide = ImageFolder(str(tmp_path / "wide"), "images", fake_run(),
                     meta(num_scenes=10_000_001))
  assert wide.name(7) == "00000007"
  assert wide.write_batch(rows(b, 2, 3), 9_999_999) == [(9_999_999,
                                                         "09999999")]
  assert os.listdir(tmp_path / "wide" / "images") == ["09999999.png"]
