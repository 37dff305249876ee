"""Generated datasets: TFDS, COCO and KITTI exports of trained runs.

Each export is read back with its format's own reader (tfds, pycocotools,
KITTI's 15-field layout) and checked against a re-render of the scene
graphs stored beside it.
"""

import filecmp
import functools
import json
import os
import shutil

import jax
import numpy as np
import pytest

from metasim_jax.export import generate as generate_lib
from metasim_jax.export import run as run_lib
from metasim_jax.export.batch import region_boxes
from metasim_jax.types import SceneGraph

N, SHARD = 24, 10  # three shards, the last one padded


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
  """(experiment, format) -> output dir, generated once per module."""
  root = tmp_path_factory.mktemp("exports")
  out = {}
  for name, fmt in (("mnist", "tfds"), ("aerial", "tfds"), ("aerial", "coco"),
                    ("aerial", "kitti")):
    out[name, fmt] = generate_lib.generate(
        runs[name], str(root / f"{name}_{fmt}"), num_scenes=N, fmt=fmt,
        seed=3, shard_size=SHARD)
  return out


@functools.cache
def _render_fn(pipe):
  return jax.jit(pipe.render)


def rerender(run, attrs, node_mask):
  """Renders stored scene graphs again: (image uint8, semantic, instance)."""
  r = _render_fn(run.pipe)(
      SceneGraph(attrs=np.asarray(attrs), node_mask=np.asarray(node_mask)),
      run.pools)
  image = np.round(np.asarray(r.image) * 255).astype(np.uint8)
  return image, np.asarray(r.semantic), np.asarray(r.instance)


def assert_same_pixels(a, b, tolerance=0.002):
  """Equal up to a few pixels (float rounding may differ with the batch
  size at a threshold or a rounding boundary)."""
  a, b = np.asarray(a, np.int32), np.asarray(b, np.int32)
  assert a.shape == b.shape
  assert np.mean(a != b) <= tolerance


def tfds_examples(path):
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(path)
  source = builder.as_data_source()["train"]
  return builder, [source[i] for i in range(len(source))]


def test_tfds_mnist_images_labels_and_scene_graphs(runs, exports):
  run = runs["mnist"]
  path = os.path.join(exports["mnist", "tfds"], "metasim_mnist_rot_smoke",
                      "1.0.0")
  builder, examples = tfds_examples(path)
  assert builder.info.splits["train"].num_examples == N
  assert builder.info.splits["train"].shard_lengths == [10, 10, 4]
  assert builder.info.features["label"].names == [str(d) for d in range(10)]
  assert builder.info.supervised_keys == ("image", "label")
  assert [int(e["id"]) for e in examples] == list(range(N))
  attrs = np.stack([e["scene"]["attrs"] for e in examples])
  mask = np.stack([e["scene"]["node_mask"] for e in examples])
  g = run.pipe.prior
  labels = np.array([e["label"] for e in examples])
  np.testing.assert_array_equal(
      labels, attrs[:, run.pipe.task.slot, run.pipe.task.col])
  assert len(set(labels)) > 3  # drawn over the ten classes
  image, _, _ = rerender(run, attrs, mask)
  stored = np.stack([e["image"] for e in examples])
  assert stored.shape == (N, 32, 32, 1) and stored.std() > 10
  assert_same_pixels(stored, image)
  meta = builder.info.metadata
  assert meta["scene_graph"]["attr_names"] == list(g.attr_names)
  assert meta["run"]["transformer_sha256"] == run.params_sha256
  grammar = json.load(open(os.path.join(path, "grammar.json")))
  assert grammar == run.grammar


def test_tfds_aerial_masks_boxes_and_classes(runs, exports):
  run = runs["aerial"]
  path = os.path.join(exports["aerial", "tfds"], "metasim_aerial_smoke",
                      "1.0.0")
  builder, examples = tfds_examples(path)
  assert len(examples) == N
  names = builder.info.features["objects"]["label"].names
  assert names == ["none", "grass", "road", "car", "tree", "house"]
  assert builder.info.metadata["semantic_classes"] == names
  assert builder.info.metadata["object_classes"] == ["car", "tree", "house"]
  attrs = np.stack([e["scene"]["attrs"] for e in examples])
  mask = np.stack([e["scene"]["node_mask"] for e in examples])
  image, semantic, instance = rerender(run, attrs, mask)
  assert_same_pixels(np.stack([e["image"] for e in examples]), image)
  seg = np.stack([e["segmentation"][..., 0] for e in examples])
  assert_same_pixels(seg, semantic)
  assert set(np.unique(seg)) <= set(range(len(names)))
  inst = np.stack([e["instance"][..., 0] for e in examples]).astype(int) - 1
  assert_same_pixels(inst, instance)
  num_objects = 0
  for e in examples:
    objs = e["objects"]
    for box, label, slot, area in zip(objs["bbox"], objs["label"],
                                      objs["slot"], objs["area"]):
      num_objects += 1
      assert names[label] in ("car", "tree", "house")
      hit = e["instance"][..., 0] == slot + 1
      assert hit.sum() == area > 0
      assert np.all(seg[int(e["id"])][hit] == label)
      _, want = region_boxes(hit)
      x0, y0, x1, y1 = np.asarray(want)
      np.testing.assert_allclose(box, np.array([y0, x0, y1, x1]) / 64.0,
                                 atol=1e-6)
  assert num_objects >= N  # cars, trees and houses are mostly visible


def test_tfds_tfrecord_reads_with_as_dataset(runs, tmp_path):
  import tensorflow_datasets as tfds
  out = generate_lib.generate(runs["aerial"], str(tmp_path / "rec"),
                              num_scenes=N, fmt="tfds", seed=3,
                              shard_size=SHARD, file_format="tfrecord")
  builder = tfds.builder("metasim_aerial_smoke", data_dir=out)
  ds = tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False))
  ids = [int(e["id"]) for e in ds]
  assert sorted(ids) == list(range(N))


def test_coco_annotations_match_the_instance_maps(runs, exports):
  from PIL import Image
  from pycocotools.coco import COCO
  run = runs["aerial"]
  out = exports["aerial", "coco"]
  coco = COCO(os.path.join(out, "annotations.json"))
  assert sorted(coco.getImgIds()) == list(range(N))
  cats = {c["id"]: c for c in coco.loadCats(coco.getCatIds())}
  assert [cats[k]["name"] for k in sorted(cats)] == [
      "grass", "road", "car", "tree", "house"]
  assert {c["name"] for c in cats.values()
          if c["supercategory"] == "thing"} == {"car", "tree", "house"}
  attrs = np.load(os.path.join(out, "scene_attrs.npy"))
  mask = np.load(os.path.join(out, "scene_node_mask.npy"))
  image, semantic, instance = rerender(run, attrs, mask)
  slots = [s.path for s in run.pipe.prior.slots]
  for i in range(N):
    info = coco.loadImgs(i)[0]
    png = np.asarray(Image.open(os.path.join(out, "images",
                                             info["file_name"])))
    assert_same_pixels(png[..., None] if png.ndim == 2 else png, image[i])
    anns = coco.loadAnns(coco.getAnnIds(imgIds=i))
    assert anns, "every image has grass or road at least"
    covered = np.zeros((64, 64), bool)
    for a in anns:
      m = coco.annToMask(a).astype(bool)
      assert m.sum() == a["area"] > 0 and a["iscrowd"] == 0
      assert not (covered & m).any()  # instances do not overlap
      covered |= m
      assert_same_pixels(m, instance[i] == slots.index(a["metasim_slot"]))
      assert np.all(semantic[i][m] == a["category_id"])
      ys, xs = np.nonzero(m)
      np.testing.assert_allclose(
          a["bbox"], [xs.min(), ys.min(), xs.max() + 1 - xs.min(),
                      ys.max() + 1 - ys.min()])
    assert_same_pixels(covered, semantic[i] > 0)


def parse_kitti(path):
  """KITTI devkit label layout: 15 space-separated fields per object."""
  rows = []
  for line in open(path).read().splitlines():
    f = line.split(" ")
    assert len(f) == 15, line
    rows.append({"type": f[0], "truncated": float(f[1]),
                 "occluded": int(f[2]), "alpha": float(f[3]),
                 "bbox": [float(v) for v in f[4:8]],
                 "dimensions": [float(v) for v in f[8:11]],
                 "location": [float(v) for v in f[11:14]],
                 "rotation_y": float(f[14])})
  return rows


def test_kitti_labels_follow_the_devkit_layout(runs, exports):
  run = runs["aerial"]
  out = exports["aerial", "kitti"]
  images = sorted(os.listdir(os.path.join(out, "training", "image_2")))
  labels = sorted(os.listdir(os.path.join(out, "training", "label_2")))
  assert images == [f"{i:06d}.png" for i in range(N)]
  assert labels == [f"{i:06d}.txt" for i in range(N)]
  attrs = np.load(os.path.join(out, "scene_attrs.npy"))
  mask = np.load(os.path.join(out, "scene_node_mask.npy"))
  _, semantic, _ = rerender(run, attrs, mask)
  types = {"Car": 3, "Tree": 4, "House": 5}
  count, levels = 0, set()
  for i, name in enumerate(labels):
    for row in parse_kitti(os.path.join(out, "training", "label_2", name)):
      count += 1
      assert row["type"] in types
      assert 0.0 <= row["truncated"] <= 1.0
      assert row["occluded"] in (0, 1, 2)
      levels.add(row["occluded"])
      assert row["alpha"] == -10 and row["rotation_y"] == -10
      assert row["dimensions"] == [-1, -1, -1]
      assert row["location"] == [-1000, -1000, -1000]
      left, top, right, bottom = row["bbox"]
      assert 0 <= left < right <= 64 and 0 <= top < bottom <= 64
      # Some pixels of its class lie in its box.
      box = semantic[i, int(top):int(bottom), int(left):int(right)]
      assert (box == types[row["type"]]).any()
  assert count >= N
  assert 0 in levels


@pytest.mark.parametrize("name,fmt", [("mnist", "tfds"), ("aerial", "tfds"),
                                      ("aerial", "coco"),
                                      ("aerial", "kitti")])
def test_same_run_seed_and_n_give_identical_files(runs, exports, tmp_path,
                                                  name, fmt):
  again = generate_lib.generate(runs[name], str(tmp_path / "again"),
                                num_scenes=N, fmt=fmt, seed=3,
                                shard_size=SHARD)
  first = exports[name, fmt]
  files = sorted(os.path.relpath(os.path.join(d, f), first)
                 for d, _, fs in os.walk(first) for f in fs)
  assert files == sorted(os.path.relpath(os.path.join(d, f), again)
                         for d, _, fs in os.walk(again) for f in fs)
  match, mismatch, errors = filecmp.cmpfiles(first, again, files,
                                             shallow=False)
  assert not mismatch and not errors and len(match) == len(files)


def test_another_seed_gives_other_scenes(runs, exports, tmp_path):
  out = generate_lib.generate(runs["aerial"], str(tmp_path / "s4"),
                              num_scenes=N, fmt="coco", seed=4,
                              shard_size=SHARD)
  a = np.load(os.path.join(exports["aerial", "coco"], "scene_attrs.npy"))
  b = np.load(os.path.join(out, "scene_attrs.npy"))
  assert not np.array_equal(a, b)


def test_a_full_trainer_run_directory_loads(aerial_run, tmp_path):
  """results/aerial is trainer.run's output of the full Aerial2D run (its
  params are not committed; the smoke run's have the same shapes)."""
  full = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), "results", "aerial")
  run_dir = tmp_path / "aerial"
  run_dir.mkdir()
  for name in ("results.json", "grammar.json", "target.json"):
    shutil.copy(os.path.join(full, name), run_dir / name)
  shutil.copy(os.path.join(aerial_run, "transformer_seed0.msgpack"), run_dir)
  run = run_lib.load(str(run_dir))
  assert run.config.name == "aerial" and run.config.task_type == "segmentation"
  assert len(run.pools["car"]) == 600  # the full config's textures
  assert run.grammar == json.load(open(os.path.join(full, "grammar.json")))
