"""Scenes rendered per second by the jitted 2D rasterizer (batch 1024).

  python -m benchmarks.render_throughput | tee results/bench_render.txt

MNIST (32x32 and 64x64, one channel) and Aerial2D (64x64 RGB): each line
times the windowed renderer (``metasim_jax/render/raster2d.py``) and, in
the same run, the full-canvas renderer it replaced, kept as the test
reference (``tests/render/reference_raster2d.py``), called in turn.  Other
processes on the machine change these figures; compare the two columns of
one run.
"""

import time

import jax
import numpy as np

from benchmarks.common import problem
from experiments.configs import aerial as aerial_config
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.data import aerial
from metasim_jax.render import raster2d
from tests.render import reference_raster2d

BATCH = 1024
RENDERERS = (("windowed", raster2d.render),
             ("reference", reference_raster2d.render))


def _interleaved(fns: dict, arg, repeats: int = 20, warmup: int = 2):
  """Median seconds per call of each of ``fns``, called in turn (so that a
  change of load on the machine hits all of them alike)."""
  for fn in fns.values():
    for _ in range(warmup):
      jax.block_until_ready(fn(arg))
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(fn(arg))
      times[name].append(time.perf_counter() - t)
  return {name: float(np.median(t)) for name, t in times.items()}


def _report(title: str, fns: dict, arg) -> None:
  """Prints scenes/s of each renderer's ``fns[name]`` on ``arg``."""
  parts, rates = [], {}
  for name, t in _interleaved(fns, arg).items():
    rates[name] = BATCH / t
    parts.append(f"{name} {BATCH / t:,.0f} scenes/s ({t * 1e3:.1f} ms)")
  speedup = rates["windowed"] / rates["reference"]
  print(f"{title}: {'; '.join(parts)}; {speedup:.1f}x", flush=True)


def _time_problem(label: str, prior, pools, canvas, names, sample_key=None):
  """Image only, all layers (and sample + image) for both renderers."""
  scene = jax.jit(lambda k: grammar_lib.sample(k, prior, BATCH, pools))(
      jax.random.key(0))

  def renders(render_fn):
    return lambda s: render_fn(s, prior, pools, canvas, names)

  _report(f"{label} image only",
          {n: jax.jit(lambda s, r=r: renders(r)(s).image)
           for n, r in RENDERERS}, scene)
  _report(f"{label} all layers (image, semantic, instance, boxes)",
          {n: jax.jit(renders(r)) for n, r in RENDERERS}, scene)
  if sample_key is not None:
    _report(f"{label} sample + image",
            {n: jax.jit(lambda k, r=r: renders(r)(grammar_lib.sample(
                k, prior, BATCH, pools)).image) for n, r in RENDERERS},
            sample_key)


def main():
  print(f"batch {BATCH}; median of 20 calls after 2 warm-up calls, the "
        "two renderers called in turn")
  for variant in ("rot", "rot_trans"):
    _, pipe, _, pools, _, _, _ = problem(variant)
    h = pipe.canvas.height
    _time_problem(f"MNIST {h}x{h}", pipe.prior, pools, pipe.canvas,
                  pipe.semantic_names, sample_key=jax.random.key(1))

  config = aerial_config.get_config()
  pipe, _ = pipeline_lib.build(config)
  pools = aerial.texture_pools(config.textures.grammar_seed,
                               dict(config.textures.counts))
  h, w = pipe.canvas.height, pipe.canvas.width
  _time_problem(f"Aerial2D {h}x{w} RGB", pipe.prior, pools, pipe.canvas,
                pipe.semantic_names)


if __name__ == "__main__":
  main()
