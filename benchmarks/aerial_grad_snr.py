"""How consistently the MMD gradient pushes each affine parameter of a
trained Aerial2D generator: signal-to-noise of d MMD^2 / d parameter over
fresh batches.

  python -m benchmarks.aerial_grad_snr RUN_DIR [BATCHES]

Adam moves a parameter about ``lr`` a step only while its gradient keeps
its sign; a gradient whose mean is small against its batch-to-batch
spread moves it about lr x mean / rms, however much the loss depends on
the parameter on average.  For the run's seed-0 generator (its own
config, grammar and target files, with its relation features rebuilt as
in training), over BATCHES (default 24) batches of ``mmd.batch_size``
scenes: per (class, attribute) of the affine head, the mean and std of
the gradient of the log-spread and of the shift, and their ratio (SNR).
Twice: at the trained generator, and with its affine parameters reset to
0 (the pre-trained generator's spreads and means).
"""

import os
import sys

import jax
import ml_collections
import numpy as np

from metasim_jax import pipeline as pipeline_lib
from metasim_jax import task_features
from metasim_jax.export import run as run_lib
from metasim_jax.features import MMDTarget


def main(argv):
  run_dir = os.path.abspath(argv[1])
  batches = int(argv[2]) if len(argv) > 2 else 24
  run = run_lib.load(run_dir, 0)
  # The run's config with its own features (load swaps in the pyramid).
  config = ml_collections.ConfigDict(run_lib.upgrade_config(
      run.saved_config))
  config.grammar_file = os.path.join(run_dir, "grammar.json")
  config.target_file = os.path.join(run_dir, "target.json")
  pipe, fp = pipeline_lib.build(config)
  pools, sets = pipeline_lib.build_data(config, pipe)
  pipe, fp = task_features.build(config, pipe, fp, sets, pools)
  target = MMDTarget.create(jax.jit(pipe.feature_fn)(fp, sets["real"].images),
                            config.mmd.median_multiples)
  grad = jax.jit(jax.grad(pipe.mmd_loss))
  g = pipe.prior
  rows = [(c, j) for c in g.classes for j in range(g.num_attrs)
          if g.attr_kinds[j] in ("continuous", "angle")
          and g.mutable[g.slots_of(c), j].any()]
  names = list(g.classes)
  reset = {**run.params,
           "log_spread": run.params["log_spread"] * 0,
           "class_shift": run.params["class_shift"] * 0}
  print(f"{run_dir} seed 0: {batches} batches of {pipe.mmd_batch} scenes")
  for label, params in (("trained", run.params), ("affine reset", reset)):
    spread, shift = [], []
    for b in range(batches):
      gr = grad(params, jax.random.key(10_000 + b), pools, fp, target)
      spread.append(np.asarray(gr["log_spread"]))
      shift.append(np.asarray(gr["class_shift"]))
    spread, shift = np.stack(spread), np.stack(shift)
    print(f"  {label}: gradient mean / std (SNR) over batches")
    print(f"    {'attribute':12s} {'log_spread':>28s} {'shift':>28s}")
    for c, j in rows:
      cells = []
      for arr in (spread, shift):
        v = arr[:, names.index(c), j]
        cells.append(f"{v.mean():+.2e} / {v.std():.2e} "
                     f"({abs(v.mean()) / (v.std() + 1e-30):4.2f})")
      print(f"    {c + '.' + g.attr_names[j]:12s} {cells[0]:>28s} "
            f"{cells[1]:>28s}")


if __name__ == "__main__":
  main(sys.argv)
