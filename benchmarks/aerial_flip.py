"""Can anything that sees Aerial2D's images or labels tell cars pointing
along the road from cars pointing backwards?  The road's 180-degree twin.

  python -m benchmarks.aerial_flip [TARGET_FILE]

A road looks the same turned by 180 degrees (asphalt, edge lines, dashed
centre line; only its random grain and patches turn with it), and a scene
(road yaw t, cars at (x, y) in the road's frame with relative heading p) is
drawn exactly like its twin (t + 180, (-x, -y), p + 180): same car pixels,
same masks, the road's texture turned.  If the world's road yaw is uniform
on the circle and its cars' offsets are symmetric about the road's centre
(the shipped target), the twin map carries the target's attribute
distribution with every car turned backwards onto the target's own, so the
two render the same image distribution up to the road texture's turn, and
no objective on images or labels can learn the sign of the relative
heading; only its axis (modulo 180) is identified.

Printed, for the target's scenes and edits of them (3 draws of 200 scenes;
mean +- std):
  * MMD^2 against the target's X_R with the shipped run's features (local
    statistics + relations, ``task_features``);
  * per scene, against the unedited scene (the twin: against the scene
    it is the twin of): the fraction of pixels whose
    semantic label agrees and the mean absolute image difference.
Edits: none (fresh draws), every car turned by 180 degrees on its road
(Meta-Sim's state on the shipped target), the twin of that (road turned,
offsets mirrored: cars' image headings unchanged), cars turned by 90
degrees (across the road), and the prior's scenes for scale.
"""

import sys

import jax
import numpy as np

from benchmarks import common
from metasim_jax.scene_graph import encoding


def main(argv):
  config, pipe, pools, features, target = common.aerial_relations_world(
      argv[1] if len(argv) > 1 else None)
  g = pipe.target
  cars, roads = g.slots_of("car"), g.slots_of("road")
  x, y, yaw = g.col("x"), g.col("y"), g.col("yaw")
  n = 200

  def turn_cars(a, degrees):
    return a.at[:, cars, yaw].set(
        encoding.wrap_angle(a[:, cars, yaw] + degrees))

  def twin(a):
    a = turn_cars(a, 180.0)
    a = a.at[:, roads, yaw].set(encoding.wrap_angle(a[:, roads, yaw] + 180.0))
    return a.at[:, cars, x].multiply(-1.0).at[:, cars, y].multiply(-1.0)

  same = lambda a: a
  backwards = lambda a: turn_cars(a, 180.0)
  # (label, edit, the scenes each edited scene is compared with)
  edits = (
      ("target, fresh draws", same, same),
      ("cars turned 180 deg on the road", backwards, same),
      ("  its twin: road turned, offsets mirrored",
       lambda a: twin(backwards(a)), backwards),
      ("cars turned 90 deg (across the road)",
       lambda a: turn_cars(a, 90.0), same),
  )
  print(f"target {config.target_file}; {n} scenes a draw, 3 draws")
  print(f"  {'scenes':<44s} {'MMD^2 to X_R':>22s} {'labels agree':>14s} "
        f"{'|image diff|':>13s}")
  for label, edit, reference in edits + (("prior grammar", None, None),):
    m, agree, diff = [], [], []
    for s in range(3):
      key = jax.random.key(100 + s)
      if edit is None:
        scene = pipe.sample(key, n, pools, source="prior")
        r = pipe.render(scene, pools, pipe.prior)
        m.append(float(target.mmd2(features(r.image))))
        continue
      scene = pipe.sample(key, n, pools, source="target")
      base = pipe.render(scene.replace(attrs=reference(scene.attrs)), pools,
                         g)
      r = pipe.render(scene.replace(attrs=edit(scene.attrs)), pools, g)
      m.append(float(target.mmd2(features(r.image))))
      agree.append(float(np.mean(np.asarray(r.semantic == base.semantic))))
      diff.append(float(np.mean(np.abs(np.asarray(r.image - base.image)))))
    cells = [f"{np.mean(m):.5f} +- {np.std(m):.5f}"]
    cells += ([f"{100 * np.mean(agree):.2f} %", f"{np.mean(diff):.4f}"]
              if agree else ["-", "-"])
    print(f"  {label:<44s} {cells[0]:>22s} {cells[1]:>14s} {cells[2]:>13s}")


if __name__ == "__main__":
  main(sys.argv)
