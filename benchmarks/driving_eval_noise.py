"""How much a driving results row moves with the detector's own randomness.

  python -m benchmarks.driving_eval_noise [--repeats=4] [--sources=prior,target]

Each row of the driving table is one CenterNet (``config.eval.repeats`` =
1) trained for ``eval.train_steps`` on fresh scenes of a source and scored
on the offline target's test images (AP|R40, IoU 0.5).  Here the same
training runs ``repeats`` times per source with different keys (other
scenes, other initialisation): the spread of AP over those repeats is the
noise any difference between two rows has to clear.  ``target`` is the
oracle row (the target's own parameters).  Prints one line per repeat and a
mean +- std per source; the README quotes them
(results/bench_driving_eval_noise.txt).  Run it on idle cores.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from benchmarks import common
from metasim_jax.tasknet import detection_ap
from metasim_jax.training import steps as steps_lib

_REPEATS = flags.DEFINE_integer("repeats", 4, "Detectors per source.")
_SOURCES = flags.DEFINE_list("sources", ["prior", "target"],
                             "Scene sources: prior, target (the oracle).")
_TEST = flags.DEFINE_integer("test", 500, "Test images (the run's 500).")
_SAME_KEY = flags.DEFINE_bool(
    "same_key", True, "Train each source's first detector twice from the "
    "same key: a difference means training is not reproducible.")


def main(argv):
  del argv
  config, pipe, _, pools, sets = common.driving_world(16, 16, _TEST.value)
  ev = config.eval
  trainer = {s: pipe.task_trainer(steps_lib.adam(ev.lr),
                                  steps=ev.train_steps,
                                  batch=ev.batch_size, source=s)
             for s in _SOURCES.value}
  score = jax.jit(pipe.score)
  names = [f"ap50_{d}" for d in detection_ap.DIFFICULTIES]
  print(f"driving detector, {ev.train_steps} steps of {ev.batch_size} "
        f"scenes, scored on {len(sets['test'].images)} test images of the "
        f"offline target; AP|R40 % at IoU 0.5 (easy/moderate/hard)",
        flush=True)
  for source in _SOURCES.value:
    rows = []
    for r in range(_REPEATS.value):
      t0 = time.perf_counter()
      params, _ = trainer[source].run(jax.random.key(100 + r), None, pools)
      m = score(params, sets["test"])
      rows.append([100 * float(m[n]) for n in names])
      if r == 0:
        first = params
      print(f"  {source:7s} repeat {r}: "
            + "/".join(f"{v:.1f}" for v in rows[-1])
            + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    if _SAME_KEY.value:
      again, _ = trainer[source].run(jax.random.key(100), None, pools)
      m = score(again, sets["test"])
      diff = max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
                 for x, y in zip(jax.tree.leaves(first),
                                 jax.tree.leaves(again)))
      print(f"  {source:7s} repeat 0 again (same key): "
            + "/".join(f"{100 * float(m[n]):.1f}" for n in names)
            + f"  (max |param difference| {diff:.3g})", flush=True)
    a = np.asarray(rows)
    print(f"{source:7s} mean +- std over {len(a)}: "
          + "/".join(f"{m:.1f} +- {s:.1f}"
                     for m, s in zip(a.mean(0), a.std(0, ddof=1))),
          flush=True)


if __name__ == "__main__":
  app.run(main)
