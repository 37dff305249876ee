"""Run outputs: results JSON, sample grids, curves, attribute statistics."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any, Mapping, Sequence

import numpy as np


PACKAGES = ("jax", "jaxlib", "flax", "optax", "jraph", "numpy", "mlxtend",
            "ml_collections", "orbax-checkpoint", "tensorboardX",
            "metasim_jax")


def versions() -> dict[str, str]:
  out = {"python": platform.python_version()}
  for p in PACKAGES:
    try:
      out[p] = metadata.version(p)
    except metadata.PackageNotFoundError:
      out[p] = "not installed"
  return out


def attribute_stats(attrs: np.ndarray, mask: np.ndarray,
                    names: Sequence[str], kinds: Sequence[str],
                    columns: Sequence[tuple[str, int, int]]) -> dict:
  """Mean/std per (slot path, attribute); circular statistics for angles.

  ``columns`` are (slot path, slot index, attribute column).
  """
  out = {}
  for path, n, j in columns:
    v = attrs[:, n, j][mask[:, n]]
    if len(v):
      out[f"{path}.{names[j]}"] = _moments(v, kinds[j])
  return out


def class_attribute_stats(attrs: np.ndarray, mask: np.ndarray,
                          classes: Sequence[str], names: Sequence[str],
                          kinds: Sequence[str],
                          columns: Sequence[tuple[str, int, int]]) -> dict:
  """Mean/std per (class, attribute) over every slot of the class (e.g.
  "car.yaw" over all the cars of all scenes); ``classes[i]`` is slot i's
  class."""
  values: dict[tuple[str, int], list] = {}
  for _, n, j in columns:
    values.setdefault((classes[n], j), []).append(attrs[:, n, j][mask[:, n]])
  out = {}
  for (cls, j), v in values.items():
    if sum(map(len, v)):
      v = np.concatenate(v)
      out[f"{cls}.{names[j]}"] = _moments(v, kinds[j])
      if kinds[j] == "angle":  # the line it lies on (front-back blind)
        out[f"{cls}.{names[j]}_axis"] = _moments(v, "axial")
  return out


def _moments(v: np.ndarray, kind: str) -> dict:
  """Mean and std of values ``v``; circular for angles; for "axial" (an
  angle's axis: 0 and 180 degrees are the same line), circular of the
  doubled angle, halved."""
  if kind == "axial":
    m = _moments(2.0 * v, "angle")
    return {**m, "mean": m["mean"] / 2.0, "std": m["std"] / 2.0,
            "kind": kind}
  if kind == "angle":
    r = np.deg2rad(v)
    c, s = np.cos(r).mean(), np.sin(r).mean()
    resultant = min(max(np.hypot(c, s), 1e-12), 1.0)
    mean = float(np.rad2deg(np.arctan2(s, c)))
    std = float(np.rad2deg(np.sqrt(-2 * np.log(resultant))))
  else:
    mean, std = float(v.mean()), float(v.std())
  return {"mean": mean, "std": std, "kind": kind, "n": len(v)}


def angle_error(a: float, b: float) -> float:
  return float(abs((a - b + 180.0) % 360.0 - 180.0))


def _distance(a: float, b: float, kind: str) -> float:
  if kind == "axial":
    return angle_error(2.0 * a, 2.0 * b) / 2.0
  return angle_error(a, b) if kind == "angle" else abs(a - b)


def moved(prior: float, metasim: float, target: float, kind: str) -> float:
  """Fraction of the way from ``prior`` to ``target`` that ``metasim``
  covers (1: at the target, 0: where the prior was, < 0: farther away)."""
  gap = _distance(prior, target, kind)
  return (float("nan") if gap == 0
          else 1.0 - _distance(metasim, target, kind) / gap)


# Circular std (degrees) above which an angle's mean says nothing (the
# uniform's resultant length is ~0; 90 degrees: a resultant of 0.29).
_FLAT_STD = {"angle": 90.0, "axial": 45.0}


# A prior and a target statistic closer than this many standard errors of
# their difference are taken as equal (|z| < 3: p ~ 0.003 for one
# statistic, ~7 % for the 24 means and spreads of a dozen rows).
SAME_STANDARD_ERRORS = 3.0


def _standard_error(a: dict, b: dict, stat: str) -> float:
  """Standard error of the difference of two samples' ``stat`` ("mean":
  std / sqrt(n); "std": std / sqrt(2 n), the normal's); 0 for statistics
  saved without their count (older results files)."""
  if "n" not in a or "n" not in b:
    return 0.0
  k = 1.0 if stat == "mean" else 2.0
  return float(np.sqrt(a["std"] ** 2 / (k * a["n"])
                       + b["std"] ** 2 / (k * b["n"])))


def attribute_table(by_class: Mapping[str, Mapping[str, dict]]) -> list[str]:
  """Markdown rows: per (class, attribute), mean ± std of the prior,
  Meta-Sim and the target, and the fraction of the way each of the mean
  and the std moved toward the target's (``moved``; "-" where the prior's
  is within a tenth of the target's std of it: nothing to move; "drifted
  d" where Meta-Sim's then lies d away, more than a quarter of the
  target's std: moved where it had no reason to)."""
  lines = ["| attribute | prob. grammar | Meta-Sim | target | mean moved | "
           "std moved |", "|---|---|---|---|---|---|"]
  fmt = lambda d: f"{d['mean']:.2f} ± {d['std']:.2f}"
  for name, t in by_class["target"].items():
    p, m = by_class["prior"][name], by_class["metasim"][name]
    cells = []
    for stat, kind in (("mean", t["kind"]), ("std", "continuous")):
      same = max(0.1 * t["std"], SAME_STANDARD_ERRORS * _standard_error(
          p, t, stat))
      if _distance(p[stat], t[stat], kind) <= same:
        off = _distance(m[stat], t[stat], kind)
        # The mean of a near-uniform angle is noise: nothing to drift from.
        flat = stat == "mean" and t["std"] > _FLAT_STD.get(kind, np.inf)
        noise = SAME_STANDARD_ERRORS * _standard_error(m, t, stat)
        cells.append("-" if flat or off <= max(0.25 * t["std"], noise)
                     else f"drifted {off:.2f}")
      else:
        cells.append(f"{100 * moved(p[stat], m[stat], t[stat], kind):.0f} %")
    lines.append(f"| {name} | {fmt(p)} | {fmt(m)} | {fmt(t)} | "
                 f"{cells[0]} | {cells[1]} |")
  return lines


def save_grid(path: str, rows: Sequence[tuple[str, np.ndarray]],
              zoom: int = 3) -> None:
  """PNG grid: one titled row per [n, H, W, C] image array in [0, 1]."""
  from PIL import Image, ImageDraw
  title_w = 90
  tiles = []
  for _, imgs in rows:
    imgs = np.asarray(imgs)
    if imgs.shape[-1] == 1:
      imgs = np.repeat(imgs, 3, -1)
    pad = np.ones((imgs.shape[0], imgs.shape[1] + 2, imgs.shape[2] + 2, 3))
    pad[:, 1:-1, 1:-1] = imgs
    tiles.append(np.concatenate(list(pad), 1))
  grid = (np.clip(np.concatenate(tiles, 0), 0, 1) * 255).astype(np.uint8)
  im = Image.fromarray(grid).resize((grid.shape[1] * zoom,
                                     grid.shape[0] * zoom), Image.NEAREST)
  canvas = Image.new("RGB", (im.width + title_w, im.height), "white")
  canvas.paste(im, (title_w, 0))
  draw = ImageDraw.Draw(canvas)
  row_h = im.height // len(rows)
  for i, (title, _) in enumerate(rows):
    draw.text((4, i * row_h + row_h // 2 - 6), title, fill="black")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  canvas.save(path)


def save_curves(path: str, curves: Mapping[str, Mapping[str, Sequence]],
                title: str) -> None:
  """One panel per curve name: {'panel': {'label': [(x, y), ...]}}."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = [(k, v) for k, v in curves.items() if any(len(s) for s in
                                                      v.values())]
  if not panels:
    return
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4),
                           squeeze=False)
  for ax, (name, series) in zip(axes[0], panels):
    for label, pts in series.items():
      if len(pts):
        xy = np.asarray(pts, float)
        ax.plot(xy[:, 0], xy[:, 1], label=label, lw=1.2)
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(series) > 1:
      ax.legend(fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_summary(path: str, summary: Mapping[str, Any], command: str,
                  tensorboard_dir: str = "", checkpoint_dir: str = "") -> None:
  """A Markdown run summary: command, results table, pictures (atomic).

  ``tensorboard_dir``, ``checkpoint_dir``: the run's TensorBoard logs and
  checkpoints, relative to the summary.
  """
  s = summary["summary"]
  head = s["headline_metric"]
  sources = ("prior", "metasim", "oracle")
  names = {"prior": "prob. grammar", "metasim": "Meta-Sim",
           "oracle": "oracle"}
  lines = [f"# {summary['experiment']}", "", "```bash", command, "```", "",
           f"Test {head} (%) per seed, trained on each source's data:", "",
           "| seed | " + " | ".join(names[x] for x in sources) + " |",
           "|---|" + "---|" * len(sources)]
  for i, seed in enumerate(s["seeds"][:len(summary["per_seed"])]):
    lines.append(f"| {seed} | " + " | ".join(
        f"{100 * s[f'test_{head}_per_seed'][x][i]:.1f}" for x in sources)
        + " |")
  means = s["test_metrics_mean"]
  metrics = [k for k in means["prior"] if k.startswith("iou_")]
  if "stages" in s:  # an explicit schedule: one row per stage
    per_stage = s["test_metrics_per_stage_mean"]
    order = {d: i for i, d in enumerate(("easy", "moderate", "hard"))}
    cols = sorted((k for k in means["prior"] if k.startswith(("ap", "iou_"))),
                  key=lambda k: (k.split("_")[0],
                                 order.get(k.split("_")[-1], 9), k)) or [head]
    lines += ["", "Every stage of the schedule, mean over seeds (%):", "",
              "| trained on | " + " | ".join(cols) + " |",
              "|---|" + "---|" * len(cols)]
    for name, m in ([("prob. grammar", means["prior"])]
                    + [(f"Meta-Sim: {x}", per_stage[x]) for x in s["stages"]]
                    + [("oracle", means["oracle"])]):
      lines.append(f"| {name} | " + " | ".join(
          f"{100 * m[c]:.1f}" for c in cols) + " |")
    metrics = []
  if metrics:
    lines += ["", "Per-class IoU (%), mean over seeds:", "",
              "| source | " + " | ".join(m[4:] for m in metrics) + " | "
              f"{head} |", "|---|" + "---|" * (len(metrics) + 1)]
    for x in sources:
      lines.append(f"| {names[x]} | " + " | ".join(
          f"{100 * means[x][m]:.1f}" for m in metrics + [head]) + " |")
  lines += ["", f"Wall time: {s['wall_seconds'] / 60:.1f} min. "
            f"Versions: " + ", ".join(f"{k} {v}" for k, v in
                                      summary["versions"].items()), ""]
  if tensorboard_dir:
    lines += [f"TensorBoard logs (one folder per seed): `{tensorboard_dir}/`;"
              f" view with `tensorboard --logdir {tensorboard_dir}` from this "
              "folder.", ""]
  if checkpoint_dir:
    lines += [f"Checkpoints (one folder per seed): `{checkpoint_dir}/`; a "
              "stopped run continues from them with `--resume`.", ""]
  for r in summary["per_seed"]:
    seed = r["seed"]
    lines += [f"## Seed {seed}", ""]
    if r.get("attribute_stats_by_class"):
      lines += ["Mutable attributes per class (all slots of a class, "
                "mean ± std, circular for angles; `_axis`: an angle's "
                "line, front and back alike; Meta-Sim: the last stage):",
                "",
                *attribute_table(r["attribute_stats_by_class"]), ""]
    lines += [f"![samples](grid_seed{seed}.png)", "",
              f"![curves](curves_seed{seed}.png)", ""]
    pred = f"predictions_seed{seed}.png"
    if os.path.isfile(os.path.join(os.path.dirname(path), pred)):
      lines += ["Each row's task network on the same test images "
                "(detections red, ground truth green):", "",
                f"![predictions]({pred})", ""]
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write("\n".join(lines))
  os.replace(tmp, path)
