"""Scenes rendered per second by the jitted 2D rasterizer (batch 1024).

  python -m benchmarks.render_throughput
"""

import jax

from benchmarks.common import problem, timeit
from metasim_jax import grammar as grammar_lib


def main():
  for variant in ("rot", "rot_trans"):
    _, pipe, _, pools, _, _, _ = problem(variant)
    batch = 1024
    sample = jax.jit(lambda k: grammar_lib.sample(k, pipe.prior, batch, pools))
    scene = sample(jax.random.key(0))
    image = jax.jit(lambda s: pipe.render(s, pools).image)
    layers = jax.jit(lambda s: pipe.render(s, pools))
    both = jax.jit(lambda k: pipe.render(
        grammar_lib.sample(k, pipe.prior, batch, pools), pools).image)
    h = pipe.canvas.height
    for name, fn, arg in (("image only", image, scene),
                          ("all layers (image, semantic, instance, boxes)",
                           layers, scene),
                          ("sample + image", both, jax.random.key(1))):
      t = timeit(fn, arg)
      print(f"{h}x{h} {name}: {batch / t:,.0f} scenes/s "
            f"({t * 1e3:.1f} ms per batch of {batch})")


if __name__ == "__main__":
  main()
