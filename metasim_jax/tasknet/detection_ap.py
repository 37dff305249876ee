"""KITTI-style 2D detection AP for the Car class (pure NumPy, host-side).

This follows the logic of the KITTI object devkit's ``cpp/evaluate_object.cpp``
(Geiger, Lenz, Urtasun; functions ``cleanData``, ``computeStatistics``,
``getThresholds``, ``eval_class``), as read in public copies such as
xingyizhou/CenterNet ``src/tools/kitti_eval/evaluate_object_3d_offline.cpp``
(prclibo's offline port, 2D "image" metric) and the devkit's AP read-out as
in traveller59/kitti-object-eval-python (``get_mAP`` / ``get_mAP_R40``). No
code was copied; the behaviours reproduced are:

* Difficulties: a ground truth (GT) of the class counts in a difficulty iff
  height >= ``MIN_HEIGHT``, occlusion level <= ``MAX_OCCLUSION`` and
  truncation <= ``MAX_TRUNCATION``; otherwise it is *ignored*: neither a
  false negative nor a true positive, but it may still absorb a detection.
  Neighbour-class GTs ("Van" for "Car") are ignored the same way. Other
  classes (pedestrian, truck, ...) are skipped entirely: they absorb nothing.
* Detections: all are of the evaluated class. One whose height, *truncated
  to an integer* (the devkit stores it in an ``int32_t``), is below the
  difficulty's minimum height is ignored (never an FP), as fixed in the
  devkit on 2017-04-25.
* Matching, per image and GT in input order, among unassigned detections
  with overlap *strictly greater* than the threshold (the devkit tests
  ``overlap > MIN_OVERLAP``, so IoU exactly 0.5 does not match at 0.5):
  - recall pass (``compute_fp=false``): the highest-scoring candidate; its
    score is recorded if the pair is a TP (valid GT, valid detection);
  - precision pass, once per score threshold (detections scoring below it
    dropped): the candidate with the largest IoU among non-ignored
    detections, else the first too-small one. A pair with an ignored GT or
    an ignored detection is "assigned" but counts as nothing (so a valid GT
    taken by a too-small detection is not even a false negative).
* DontCare: after matching, an unassigned, non-ignored detection whose
  intersection with a DontCare box divided by the *detection's own area*
  exceeds the same threshold (``boxoverlap(det, dc, criterion=0)`` with the
  class's ``MIN_OVERLAP``) is not a false positive.
* AP: ``getThresholds`` picks, from the TP scores sorted high to low, the
  scores whose recall k/n_gt is nearest each of ``N_SAMPLE_PTS`` = 41 recall
  steps (0, 1/40, ..., 1); precision TP/(TP+FP) is computed at each chosen
  threshold, entries past the last threshold stay 0, and precision is
  replaced by its running max from the right. AP|R40 (KITTI since 2019-10)
  is the mean of entries 1..40, the old AP|R11 the mean of entries
  0, 4, ..., 40. Both are returned in **percent** (0..100).

Consequences worth knowing: with fewer than ~40 valid GTs the devkit cannot
reach every recall step, so even perfect detections score below 100 (2 GTs,
both found: AP|R40 = 2.5); with no valid GT in a difficulty there is no
threshold and AP is 0 for both forms (``num_gt`` tells the case apart).
Where the devkit would divide 0 by 0 (NaN in C++), 0 is used here. Cost:
one sequential match per image and sampled threshold (<= 41), a few seconds
for a KITTI-val-sized set (3769 images) on one core.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

N_SAMPLE_PTS = 41  # recall steps 0, 1/40, ..., 1 (devkit constant)
DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)  # px, GT box height (y1 - y0)
KITTI_IMAGE_HEIGHT = 375  # px, the images MIN_HEIGHT was defined on
MAX_OCCLUSION = (0, 1, 2)  # KITTI occlusion level
MAX_TRUNCATION = (0.15, 0.30, 0.50)  # fraction of the object outside

# Ground-truth kinds as evaluated for "Car".
CAR, NEIGHBOUR, DONTCARE, OTHER = 0, 1, 2, 3
KINDS = {
    "car": CAR,
    "van": NEIGHBOUR, "neighbour": NEIGHBOUR, "neighbor": NEIGHBOUR,
    "dontcare": DONTCARE,
    "truck": OTHER, "pedestrian": OTHER, "person_sitting": OTHER,
    "cyclist": OTHER, "tram": OTHER, "misc": OTHER, "other": OTHER,
}


def occlusion_level(fraction, thresholds: tuple[float, float] = (0.1, 0.5)):
  """KITTI occlusion level (0 fully visible, 1 partly, 2 largely occluded)
  from a measured occluded-pixel fraction in [0, 1] (scalar or array).

  Level 0 if fraction < thresholds[0], 1 if < thresholds[1], else 2. KITTI's
  annotators judged occlusion by eye, whereas our renderer measures the
  hidden fraction of the object's pixels exactly. The defaults are a
  stated convention, not KITTI's: a car missing under 10% of its pixels (a
  pole, a mirror, a few anti-aliased edge pixels) would be labelled "fully
  visible" by a person, and "largely occluded" means at least half hidden.
  Level 3 ("unknown") is never produced. Returns int (array) like the input.
  """
  t0, t1 = (float(t) for t in thresholds)
  if not 0.0 < t0 < t1 < 1.0:
    raise ValueError(f"thresholds must satisfy 0 < t0 < t1 < 1, got "
                     f"{thresholds!r}")
  f = np.asarray(fraction, np.float64)
  if not np.all(np.isfinite(f)) or np.any((f < 0) | (f > 1)):
    raise ValueError("occluded fraction must lie in [0, 1]")
  level = np.searchsorted(np.array([t0, t1]), f, side="right")
  return int(level) if level.ndim == 0 else level.astype(np.int64)


def scaled_min_height(image_height: int) -> tuple[float, ...]:
  """KITTI's minimum box heights for images ``image_height`` px high: the
  devkit's 40 / 25 / 25 px are for KITTI's 375-px-high images, so a
  96-px-high render (or a KITTI image resized to it) keeps the
  difficulties' meaning at 10.2 / 6.4 / 6.4 px."""
  return tuple(h * image_height / KITTI_IMAGE_HEIGHT for h in MIN_HEIGHT)


def _valid_for(level: int, height, occlusion, truncation,
               min_height=MIN_HEIGHT) -> np.ndarray:
  """[n] bool: GT counts (is not ignored) in difficulty ``level``."""
  return ((height >= min_height[level])
          & (occlusion <= MAX_OCCLUSION[level])
          & (truncation <= MAX_TRUNCATION[level]))


def difficulty(boxes, occlusion, truncation,
               min_height=MIN_HEIGHT) -> np.ndarray:
  """[n] int: easiest difficulty each GT box counts in (0 easy, 1 moderate,
  2 hard), -1 if in none. The levels are nested, so a box counts in every
  difficulty >= its value.

  boxes: [n, 4] (x0, y0, x1, y1) px; occlusion: [n] levels 0..3;
  truncation: [n] fraction in [0, 1].
  """
  b = _boxes(boxes, "boxes")
  n = b.shape[0]
  occ = _occlusion(occlusion, n, "occlusion")
  trunc = _truncation(truncation, n, "truncation")
  height = b[:, 3] - b[:, 1]
  out = np.full(n, -1, np.int64)
  for level in reversed(range(len(DIFFICULTIES))):
    out = np.where(_valid_for(level, height, occ, trunc, min_height), level,
                   out)
  return out


# ---------------------------------------------------------------------------
# Validation.


def _boxes(x, name: str) -> np.ndarray:
  b = np.asarray(x, np.float64)
  if b.size == 0:
    return b.reshape(0, 4)
  if b.ndim != 2 or b.shape[1] != 4:
    raise ValueError(f"{name} must have shape [n, 4] (x0, y0, x1, y1), got "
                     f"{b.shape}")
  if not np.all(np.isfinite(b)):
    raise ValueError(f"{name} must be finite")
  bad = (b[:, 0] > b[:, 2]) | (b[:, 1] > b[:, 3])
  if np.any(bad):
    raise ValueError(f"{name} must have x0 <= x1 and y0 <= y1; row "
                     f"{int(np.argmax(bad))} is {b[np.argmax(bad)].tolist()}")
  return b


def _vector(x, n: int, name: str) -> np.ndarray:
  v = np.asarray(x)
  if v.size == 0 and n == 0:
    return v.reshape(0)
  if v.shape != (n,):
    raise ValueError(f"{name} must have shape [{n}], got {v.shape}")
  return v


def _occlusion(x, n: int, name: str) -> np.ndarray:
  v = _vector(x, n, name)
  if v.dtype.kind not in "iuf" or not np.all(np.isin(v, (0, 1, 2, 3))):
    raise ValueError(f"{name} must be integer levels in {{0, 1, 2, 3}}")
  return v.astype(np.int64)


def _truncation(x, n: int, name: str) -> np.ndarray:
  v = _vector(x, n, name)
  if v.dtype.kind not in "iuf":
    raise ValueError(f"{name} must be numeric")
  v = v.astype(np.float64)
  if not np.all(np.isfinite(v)) or np.any((v < 0) | (v > 1)):
    raise ValueError(f"{name} must lie in [0, 1]")
  return v


def kind_codes(x, n: int, name: str) -> np.ndarray:
  """[n] kind ints (CAR, NEIGHBOUR, DONTCARE, OTHER) from ints or KITTI
  class names (any case); raises ValueError naming ``name``."""
  v = _vector(x, n, name)
  if v.size == 0:
    return np.zeros(0, np.int64)
  if v.dtype.kind in "iu":
    if not np.all(np.isin(v, (CAR, NEIGHBOUR, DONTCARE, OTHER))):
      raise ValueError(f"{name} ints must be CAR={CAR}, NEIGHBOUR="
                       f"{NEIGHBOUR}, DONTCARE={DONTCARE} or OTHER={OTHER}")
    return v.astype(np.int64)
  if v.dtype.kind not in "USO":
    raise ValueError(f"{name} must hold ints or class names, got {v.dtype}")
  out = np.empty(n, np.int64)
  for i, k in enumerate(v.tolist()):
    key = k.decode() if isinstance(k, bytes) else k
    if not isinstance(key, str) or key.lower() not in KINDS:
      raise ValueError(f"{name}[{i}]={k!r} is not a known kind; valid "
                       f"(case-insensitive): {sorted(KINDS)}")
    out[i] = KINDS[key.lower()]
  return out


def _get(d: Mapping[str, Any], key: str, what: str):
  if not isinstance(d, Mapping):
    raise ValueError(f"{what} must be a dict, got {type(d).__name__}")
  if key not in d:
    raise ValueError(f"{what} lacks key {key!r} (has {sorted(d)})")
  return d[key]


def _overlap(det: np.ndarray, other: np.ndarray, over_det: bool) -> np.ndarray:
  """[m, k] overlap of det [m, 4] with other [k, 4]: IoU, or intersection
  over the detection's area (``over_det``). 0 where boxes do not intersect
  with positive width and height (devkit ``boxoverlap``)."""
  x0 = np.maximum(det[:, None, 0], other[None, :, 0])
  y0 = np.maximum(det[:, None, 1], other[None, :, 1])
  x1 = np.minimum(det[:, None, 2], other[None, :, 2])
  y1 = np.minimum(det[:, None, 3], other[None, :, 3])
  w, h = x1 - x0, y1 - y0
  hit = (w > 0) & (h > 0)
  inter = np.where(hit, w * h, 0.0)
  area_d = ((det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1]))[:, None]
  if over_det:
    denom = np.broadcast_to(area_d, inter.shape)
  else:
    area_o = ((other[:, 2] - other[:, 0]) * (other[:, 3] - other[:, 1]))
    denom = area_d + area_o[None, :] - inter
  return np.where(hit, inter / np.where(hit, denom, 1.0), 0.0)


class _Image:
  """One validated image: GT/det arrays and their overlaps."""

  def __init__(self, i: int, gt: Mapping[str, Any], det: Mapping[str, Any],
               iou_threshold: float):
    gw, dw = f"gt[{i}]", f"det[{i}]"
    gt_boxes = _boxes(_get(gt, "boxes", gw), f"{gw}['boxes']")
    n = gt_boxes.shape[0]
    kind = kind_codes(_get(gt, "kind", gw), n, f"{gw}['kind']")
    # DontCare rows carry no truncation/occlusion in KITTI (-1); skip them.
    obj = kind != DONTCARE
    trunc = np.asarray(_get(gt, "truncation", gw))
    occ = np.asarray(_get(gt, "occlusion", gw))
    _vector(trunc, n, f"{gw}['truncation']")
    _vector(occ, n, f"{gw}['occlusion']")
    self.truncation = np.zeros(n)
    self.truncation[obj] = _truncation(trunc[obj], int(obj.sum()),
                                       f"{gw}['truncation']")
    self.occlusion = np.zeros(n, np.int64)
    self.occlusion[obj] = _occlusion(occ[obj], int(obj.sum()),
                                     f"{gw}['occlusion']")
    self.kind = kind
    self.gt_height = gt_boxes[:, 3] - gt_boxes[:, 1]

    det_boxes = _boxes(_get(det, "boxes", dw), f"{dw}['boxes']")
    m = det_boxes.shape[0]
    scores = _vector(_get(det, "scores", dw), m, f"{dw}['scores']")
    if scores.dtype.kind not in "iuf" or not np.all(np.isfinite(scores)):
      raise ValueError(f"{dw}['scores'] must be finite numbers")
    self.scores = scores.astype(np.float64)
    # int32_t height = fabs(y1 - y2) in the devkit: truncated toward zero.
    self.det_height = np.floor(det_boxes[:, 3] - det_boxes[:, 1])

    # Per GT, the (detection index, IoU) pairs above the threshold, in
    # detection order; plain Python, as the matching loop is sequential.
    iou = _overlap(det_boxes, gt_boxes, over_det=False)  # [m, n]
    self.candidates = [[(int(j), float(iou[j, i]))
                        for j in np.flatnonzero(iou[:, i] > iou_threshold)]
                       for i in range(n)]
    in_dc = _overlap(det_boxes, gt_boxes[kind == DONTCARE], over_det=True)
    self.in_dontcare = (in_dc > iou_threshold).any(axis=1).tolist()  # [m]
    self.score_list = self.scores.tolist()

  def ignored(self, level: int, min_height=MIN_HEIGHT
              ) -> tuple[np.ndarray, np.ndarray]:
    """ignored_gt [n] (0 valid, 1 ignored, -1 skipped) and ignored_det [m]
    (0 valid, 1 too small) for difficulty ``level`` (devkit cleanData)."""
    valid = _valid_for(level, self.gt_height, self.occlusion, self.truncation,
                       min_height)
    ig = np.full(self.kind.shape, -1, np.int64)
    ig[self.kind == NEIGHBOUR] = 1
    ig[self.kind == CAR] = np.where(valid[self.kind == CAR], 0, 1)
    idet = (self.det_height < min_height[level]).astype(np.int64)
    return ig, idet


def _statistics(im: _Image, ig: list[int], idet: list[int],
                thresh: float | None) -> tuple[int, int, int, list[float]]:
  """One image's (tp, fp, fn, tp_scores) (devkit computeStatistics).

  ``ig``/``idet``: ``_Image.ignored`` as lists. ``thresh=None`` is the recall
  pass (highest-score matching, no FP); otherwise detections scoring below
  ``thresh`` are dropped, matching takes the largest IoU, and FPs are
  counted net of DontCare regions.
  """
  scores = im.score_list
  m = len(scores)
  assigned = [False] * m
  active = ([True] * m if thresh is None
            else [score >= thresh for score in scores])
  tp = fn = 0
  tp_scores = []
  for i, flag in enumerate(ig):
    if flag == -1:
      continue
    j, best, small = -1, -np.inf, -1
    for c, overlap in im.candidates[i]:
      if assigned[c] or not active[c]:
        continue
      if thresh is None:  # first of the highest scores
        if scores[c] > best:
          j, best = c, scores[c]
      elif idet[c] == 0:  # first of the largest overlaps
        if overlap > best:
          j, best = c, overlap
      elif small < 0:  # else the first too-small detection
        small = c
    if j < 0:
      j = small
    if j < 0:
      fn += int(flag == 0)
    elif flag == 1 or idet[j] == 1:
      assigned[j] = True
    else:
      tp += 1
      tp_scores.append(scores[j])
      assigned[j] = True
  fp = 0
  if thresh is not None:
    fp = sum(1 for c in range(m) if active[c] and not assigned[c]
             and idet[c] == 0 and not im.in_dontcare[c])
  return tp, fp, fn, tp_scores


def _score_thresholds(tp_scores: Sequence[float], n_gt: int) -> np.ndarray:
  """Scores sampling recall at the 41 steps (devkit getThresholds)."""
  v = sorted(tp_scores, reverse=True)
  out = []
  current = 0.0  # accumulated like the devkit, in float64
  for i, s in enumerate(v):
    last = i == len(v) - 1
    left = (i + 1) / n_gt
    right = left if last else (i + 2) / n_gt
    if not last and (right - current) < (current - left):
      continue
    out.append(s)
    current += 1.0 / (N_SAMPLE_PTS - 1.0)
  # At most 41 by construction; the C++ would overrun its buffer otherwise.
  return np.array(out[:N_SAMPLE_PTS], np.float64)


def _evaluate_level(images: list[_Image], level: int,
                    min_height=MIN_HEIGHT) -> dict[str, Any]:
  """One difficulty's AP (devkit eval_class) over prepared images."""
  flags = [tuple(f.tolist() for f in im.ignored(level, min_height))
           for im in images]
  n_gt = sum(ig.count(0) for ig, _ in flags)
  scores = []
  for im, (ig, idet) in zip(images, flags):
    scores += _statistics(im, ig, idet, None)[3]
  thresholds = _score_thresholds(scores, n_gt) if n_gt else np.zeros(0)
  k = thresholds.shape[0]
  tp, fp, fn = np.zeros(k), np.zeros(k), np.zeros(k)
  for im, (ig, idet) in zip(images, flags):
    for t, thresh in enumerate(thresholds):
      s = _statistics(im, ig, idet, float(thresh))
      tp[t] += s[0]
      fp[t] += s[1]
      fn[t] += s[2]
  precision = np.zeros(N_SAMPLE_PTS)
  recall = np.zeros(N_SAMPLE_PTS)
  precision[:k] = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
  recall[:k] = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
  precision = np.maximum.accumulate(precision[::-1])[::-1]
  return {
      "ap40": float(100.0 * precision[1:].mean()),
      "ap11": float(100.0 * precision[::4].mean()),
      "num_gt": n_gt,
      "precision": precision,
      "recall": recall,
  }


def evaluate(gt: Sequence[Mapping[str, Any]],
             det: Sequence[Mapping[str, Any]],
             iou_threshold: float = 0.5, min_height=MIN_HEIGHT
             ) -> dict[str, dict[str, Any]]:
  """KITTI 2D Car AP per difficulty over a set of images.

  Args:
    gt: per image, a dict with ``boxes`` [n, 4] (x0, y0, x1, y1) px,
      ``kind`` [n] (``CAR``/``NEIGHBOUR``/``DONTCARE``/``OTHER`` ints or
      KITTI class names, case-insensitive: "Car", "Van", "DontCare", ...),
      ``truncation`` [n] in [0, 1] and ``occlusion`` [n] levels 0..3 (both
      unused, and unchecked, for DontCare rows).
    det: per image (same length and order), a dict with ``boxes`` [m, 4]
      px and ``scores`` [m] (higher is more confident); all are Car.
    iou_threshold: minimum overlap, exclusive (0.5 as in the Meta-Sim
      paper; KITTI's own Car threshold is 0.7). Also used for DontCare.
    min_height: minimum GT and detection box heights (px) of easy,
      moderate, hard: KITTI's by default; ``scaled_min_height`` for images
      of another height.

  Returns:
    {"easy" | "moderate" | "hard": {"ap40": AP|R40 in percent, "ap11":
    AP|R11 in percent, "num_gt": valid GTs (recall denominator),
    "precision": [41] interpolated precision at recall steps i/40,
    "recall": [41] recall reached at each sampled threshold (0 past the
    last)}}.
  """
  if isinstance(gt, Mapping) or isinstance(det, Mapping):
    raise ValueError("gt and det must be lists of per-image dicts")
  if len(gt) != len(det):
    raise ValueError(f"gt has {len(gt)} images but det has {len(det)}")
  thr = float(iou_threshold)
  if not 0.0 < thr < 1.0:
    raise ValueError(f"iou_threshold must lie in (0, 1), got {iou_threshold}")
  min_height = tuple(float(h) for h in min_height)
  if len(min_height) != len(DIFFICULTIES) or min(min_height) < 0:
    raise ValueError(f"min_height must be {len(DIFFICULTIES)} heights >= 0, "
                     f"got {min_height}")
  images = [_Image(i, g, d, thr) for i, (g, d) in enumerate(zip(gt, det))]
  return {name: _evaluate_level(images, level, min_height)
          for level, name in enumerate(DIFFICULTIES)}
