"""Aerial2D world: textures, the road-frame hierarchy, labels vs pixels."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import aerial as aerial_config
from metasim_jax.data import aerial, aerial_textures
from metasim_jax.grammar import compile_grammar, sample
from metasim_jax.render import Canvas, render, semantic_names
from metasim_jax.types import TexturePool

CANVAS = Canvas(64, 64, 3)
SMALL = {"car": 8, "road": 2, "grass": 2, "tree": 4, "house": 4}


def _grammar(which="prior"):
  with open(os.path.join(aerial_config.HERE, f"{which}.json")) as f:
    return compile_grammar(json.load(f))


@pytest.fixture(scope="module")
def pools():
  return aerial.texture_pools(0, SMALL)


@pytest.mark.parametrize("kind", sorted(aerial_textures.MAKERS))
def test_textures_are_deterministic_per_seed_and_distinct(kind):
  a = aerial_textures.make(kind, 5, seed=3)
  b = aerial_textures.make(kind, 5, seed=3)
  c = aerial_textures.make(kind, 5, seed=4)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (5,) + aerial_textures.SIZES[kind] + (4,)
  assert not np.allclose(a, c)  # another seed, other textures
  flat = a.reshape(5, -1)
  for i in range(5):  # and no two textures of one pool are the same
    for j in range(i):
      assert np.abs(flat[i] - flat[j]).max() > 0.05, (kind, i, j)
  # Premultiplied RGBA: 0 <= colour <= alpha <= 1.
  assert (a >= 0).all() and (a <= 1).all()
  assert (a[..., :3] <= a[..., 3:] + 1e-6).all()


def test_one_kind_count_does_not_change_another_kind():
  a = aerial_textures.make_all(7, {"car": 3, "tree": 2})
  b = aerial_textures.make_all(7, {"car": 10, "tree": 2})
  np.testing.assert_array_equal(a["tree"], b["tree"])
  np.testing.assert_array_equal(a["car"], b["car"][:3])


def test_cars_are_children_of_the_road():
  g = _grammar()
  road = g.slot("scene/road[0]")
  cars = g.slots_of("car")
  assert len(cars) == 2 and all(g.parents[c] == road for c in cars)


def _car_centres(g, scene, pools):
  r = render(scene, g, pools, CANVAS)
  b = np.asarray(r.boxes)[:, g.slots_of("car")]
  return (b[..., :2] + b[..., 2:]) / 2


def test_moving_or_rotating_the_road_moves_its_cars(pools):
  g = _grammar("target")
  scene = sample(jax.random.key(0), g, 4, pools)
  road = g.slot("scene/road[0]")
  x, y, yaw = g.col("x"), g.col("y"), g.col("yaw")
  before = _car_centres(g, scene, pools)
  # Translate the road: its cars translate with it.
  moved = scene.replace(attrs=scene.attrs.at[:, road, x].add(5.0)
                        .at[:, road, y].add(-3.0))
  np.testing.assert_allclose(_car_centres(g, moved, pools) - before,
                             np.broadcast_to([5.0, -3.0], before.shape),
                             atol=1e-3)
  # Rotate the road by 90 degrees: cars rotate about the road's origin
  # (counter-clockwise on screen with y down: (dx, dy) -> (dy, -dx)).
  turned = scene.replace(attrs=scene.attrs.at[:, road, yaw].add(90.0))
  origin = np.asarray(scene.attrs[:, road, :])[:, [x, y]][:, None]
  d0 = before - origin
  d1 = _car_centres(g, turned, pools) - origin
  np.testing.assert_allclose(d1, np.stack([d0[..., 1], -d0[..., 0]], -1),
                             atol=1e-3)


def test_a_road_turned_by_180_with_mirrored_cars_draws_the_same_masks(pools):
  # A road looks the same either way along it, so the scene (road yaw t,
  # car offsets (x, y), relative heading p) and its twin (t + 180, (-x, -y),
  # p + 180) put every car on the same pixels pointing the same way: only
  # the road's texture turns.  (Why the signed relative heading is not
  # identified from images or labels: benchmarks/aerial_flip.py.)
  g = _grammar("target")
  scene = sample(jax.random.key(2), g, 8, pools)
  road, cars = g.slot("scene/road[0]"), g.slots_of("car")
  x, y, yaw = g.col("x"), g.col("y"), g.col("yaw")
  a = scene.attrs
  twin = (a.at[:, road, yaw].add(180.0).at[:, cars, yaw].add(180.0)
          .at[:, cars, x].multiply(-1.0).at[:, cars, y].multiply(-1.0))
  r0 = render(scene, g, pools, CANVAS)
  r1 = render(scene.replace(attrs=twin), g, pools, CANVAS)
  np.testing.assert_allclose(np.asarray(r1.boxes), np.asarray(r0.boxes),
                             atol=1e-3)
  agree = np.asarray(r1.semantic) == np.asarray(r0.semantic)
  assert agree.mean() > 0.999
  # The car pixels themselves are the same (same texture, same pose),
  # except at the antialiased edges (about 16 % of them at this size),
  # where the turned road shows through.
  is_car = np.asarray(r0.semantic) == semantic_names(g).index("car")
  diff = np.abs(np.asarray(r1.image) - np.asarray(r0.image))[is_car].max(-1)
  assert is_car.sum() > 200 and np.mean(diff < 0.01) > 0.75, np.mean(diff < 0.01)


def test_every_car_pixel_of_the_map_is_drawn_from_a_car_texture(pools):
  # Paint every car texture magenta, a colour nothing else in the world
  # has, then compare the map with the pixels both ways.
  g = _grammar("prior")
  car = np.zeros((1,) + aerial_textures.SIZES["car"] + (4,), np.float32)
  car[0, 2:-2, 1:-1] = (1.0, 0.0, 1.0, 1.0)
  magenta = dict(pools, car=TexturePool.create(car, np.zeros(1), 1))
  scene = sample(jax.random.key(1), g, 64, magenta)
  r = render(scene, g, magenta, CANVAS)
  img = np.asarray(r.image)
  is_car = np.asarray(r.semantic) == semantic_names(g).index("car")
  assert is_car.sum() > 500
  # A car pixel has more than half of its colour from the magenta layer,
  # so R - G and B - G stay well above 0 (the layers below have
  # R - G, B - G >= -0.6; a tree above it, alpha <= 0.5, takes off some).
  redness = img[..., 0] - img[..., 1]
  blueness = img[..., 2] - img[..., 1]
  assert (redness[is_car] > 0.1).all() and (blueness[is_car] > 0.1).all()
  # And a clearly magenta pixel is labelled car (no other texture has
  # R - G or B - G near 0.75: houses, the reddest, reach 0.55 and 0.15).
  clearly = (redness > 0.75) & (blueness > 0.75)
  assert clearly.sum() > 300 and is_car[clearly].all()


def test_semantic_classes_and_target_sets(pools):
  config = aerial_config.get_config("smoke")
  from metasim_jax import pipeline as pipeline_lib
  pipe, _ = pipeline_lib.build(config)
  assert pipe.semantic_names == ("none",) + aerial.CLASSES
  assert pipe.task.class_names == pipe.semantic_names
  sets = aerial.render_sets(jax.random.key(0), pipe, pools,
                            {"real": 6, "val": 3, "test": 5}, batch=4)
  assert sets["test"].images.shape == (5, 64, 64, 3)
  assert sets["test"].labels.shape == (5, 64, 64)
  labels = np.asarray(sets["real"].labels)
  assert set(np.unique(labels)) <= set(range(1, 6))  # grass everywhere
  # Disjoint draws: the three sets differ.
  assert not np.allclose(sets["val"].images[:3], sets["test"].images[:3])
