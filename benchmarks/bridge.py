"""The renderer bridge: renders/s per backend and worker count, and the
seconds of one finite-difference Jacobian through it.

  python -m benchmarks.bridge | tee results/bench_bridge.txt
  python -m benchmarks.bridge --backends=moderngl   # without Blender

Scenes: the driving grammar's prior (``experiments/configs/driving``),
96 x 312, drawn once and rendered by servers this script starts on
loopback.  "image" asks for RGB only (what distribution matching needs),
"all layers" adds the instance and semantic layers and each car's box,
truncation and occlusion (one extra pass on an extended canvas).  The
Jacobian is ``jax.grad`` of an image statistic of 16 scenes through
``render.finite_difference``: every mutable attribute of every node, +-
its step, sent as one batch that the client spreads over the workers;
either as variants that the server draws only where they can change
(``BridgeRenderer.finite_difference_vjp``, what training uses) or as whole
scenes.
Writes ``--png``: one scene graph by both backends side by side.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from PIL import Image

from metasim_jax import grammar as grammar_lib
from metasim_jax import render as render_lib
from metasim_jax.render import bridge
from third_party.renderer_bridge import client as client_lib

FLAGS = flags.FLAGS
flags.DEFINE_list("backends", ["moderngl", "blender"], "Backends to time.")
flags.DEFINE_list("workers", ["1", "2"], "Worker counts.")
flags.DEFINE_string("png", "results/bridge/backends_side_by_side.png",
                    "Where to write the side-by-side picture ('' = none).")

H, W = 96, 312
PRIOR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "experiments", "configs", "driving", "prior.json")


def _grammar():
  with open(PRIOR) as f:
    return grammar_lib.compile_grammar(json.load(f))


def _rate(client, scenes, image_only, repeats=3) -> float:
  client.render(scenes[:4], W, H, image_only)  # warm: contexts, buffers
  best = np.inf
  for _ in range(repeats):
    t = time.perf_counter()
    client.render(scenes, W, H, image_only)
    best = min(best, time.perf_counter() - t)
  return len(scenes) / best


def _jacobian_seconds(g, workers: int, crops: bool,
                      repeats: int = 3) -> tuple:
  names = render_lib.semantic_names(g)
  r = render_lib.create("bridge", canvas=render_lib.Canvas(H, W, 3),
                        semantic_names=names, backend="moderngl",
                        workers=workers)
  scene = grammar_lib.sample(jax.random.key(0), g, 16, {})
  directional = (lambda a, m, ct: r.finite_difference_vjp(
      a, m, ct, g, g.fd_step)) if crops else None
  fd = render_lib.finite_difference(
      lambda a, m: r.render_image(a, m, g, {}), g.fd_step, directional)
  weights = jax.random.normal(jax.random.key(1), (H, W, 3))
  grad = jax.jit(jax.grad(
      lambda a: jnp.sum(fd(a, scene.node_mask) * weights)))
  jax.block_until_ready(grad(scene.attrs))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(grad(scene.attrs))
    times.append(time.perf_counter() - t)
  pairs = int((np.asarray(g.fd_step) > 0).sum())
  bridge.close_clients()
  return min(times), pairs


def main(argv):
  del argv
  g = _grammar()
  codec = bridge.Codec.create(g, render_lib.semantic_names(g))
  scene = grammar_lib.sample(jax.random.key(0), g, 64, {})
  attrs, mask = np.asarray(scene.attrs), np.asarray(scene.node_mask)
  t = time.perf_counter()
  scenes = codec.scenes(attrs, mask)
  enc = (time.perf_counter() - t) / len(scenes)
  cars = int(mask[:, g.slots_of("car")].sum())
  print(f"driving prior scenes, {W}x{H}: {mask.sum() / len(mask):.1f} nodes "
        f"and {cars / len(mask):.1f} cars per scene on average; "
        f"scene graph -> protocol: {enc * 1e3:.2f} ms per scene; best of 3",
        flush=True)
  pictures = {}
  for backend in FLAGS.backends:
    for workers in map(int, FLAGS.workers):
      with client_lib.RendererClient.local(backend, workers) as c:
        name = c.info().renderer
        n = 64 if backend == "moderngl" else 16
        rates = [_rate(c, scenes[:n], image_only) for image_only in
                 (True, False)]
        if FLAGS.png and workers == 1:
          pictures[backend] = c.render(scenes[:3], W, H)
      print(f"{backend} ({name}), {workers} worker(s): image "
            f"{rates[0]:,.0f} renders/s, all layers {rates[1]:,.0f} "
            "renders/s", flush=True)
  for crops in (True, False):
    for workers in map(int, FLAGS.workers):
      seconds, pairs = _jacobian_seconds(g, workers, crops)
      how = ("each variant drawn only where it can change (crops)" if crops
             else "every variant drawn whole")
      print(f"finite-difference Jacobian, 16 driving scenes x {2 * pairs} "
            f"perturbations ({pairs} mutable slot attributes; "
            f"{16 * 2 * pairs:,} variants + the 16 scenes), moderngl, "
            f"{workers} worker(s), {how}: {seconds:.2f} s", flush=True)
  if FLAGS.png and pictures:
    rows = []
    for k in range(3):
      row = []
      for backend in FLAGS.backends:
        r = pictures[backend][k]
        ids = render_lib.colorize(r.semantic)
        row += [r.rgb, (ids * 255).astype(np.uint8)]
      rows.append(np.concatenate(row, 1))
    os.makedirs(os.path.dirname(FLAGS.png), exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(FLAGS.png)
    same = [(a.instance == b.instance).mean() for a, b in zip(
        pictures["moderngl"], pictures.get("blender", pictures["moderngl"]))]
    print(f"wrote {FLAGS.png} (columns: " + ", ".join(
        f"{b} rgb, {b} semantic" for b in FLAGS.backends)
        + f"); instance layers equal on {min(same):.4%} of pixels or more",
        flush=True)


if __name__ == "__main__":
  app.run(main)
