"""KITTI 2D AP against hand-computed precision/recall curves.

Reading the devkit's procedure for the expected values: the TP scores
(recall pass) sorted high to low give the score thresholds; precision at
threshold t is TP/(TP+FP) over detections scoring >= t; the k-th threshold
fills precision entry k (recall step k/40), later entries stay 0; then the
running max from the right. AP40 = mean(entries 1..40), AP11 =
mean(entries 0, 4, ..., 40), both in percent.
"""

import numpy as np
import pytest

from metasim_jax.tasknet import detection_ap as ap


def car(i, height=60.0, trunc=0.0, occ=0, kind="car", top=100.0):
  """A GT row at slot i (slots are 100 px apart, so they never overlap)."""
  return ((100.0 * i, top, 100.0 * i + 50.0, top + height), kind, trunc, occ)


def det(i, score, height=60.0, top=100.0):
  """A detection exactly on slot i."""
  return ((100.0 * i, top, 100.0 * i + 50.0, top + height), score)


def image(gts=(), dets=()):
  g = {"boxes": np.array([r[0] for r in gts], np.float64).reshape(-1, 4),
       "kind": np.array([r[1] for r in gts], dtype=object),
       "truncation": np.array([r[2] for r in gts], np.float64),
       "occlusion": np.array([r[3] for r in gts], np.int64)}
  d = {"boxes": np.array([r[0] for r in dets], np.float64).reshape(-1, 4),
       "scores": np.array([r[1] for r in dets], np.float64)}
  return g, d


def run(images, **kw):
  return ap.evaluate([g for g, _ in images], [d for _, d in images], **kw)


def aps(result, level):
  return result[level]["ap40"], result[level]["ap11"]


# The base case, one image: GT cars in slots 0 and 1; D1 (0.9) on slot 0,
# D2 (0.8) on empty slot 5 (FP), D3 (0.7) on slot 1.
BASE_GT = [car(0), car(1)]
BASE_DET = [det(0, 0.9), det(5, 0.8), det(1, 0.7)]
# TP scores [0.9, 0.7], n_gt = 2 -> thresholds 0.9 (recall 1/2) and 0.7.
# At 0.9: TP 1, FP 0 -> 1; at 0.7: TP 2, FP 1 -> 2/3.
# precision = [1, 2/3, 0, ...] -> AP40 = (2/3) / 40, AP11 = 1 / 11.
BASE_AP = (100 * (2 / 3) / 40, 100 / 11)
# Same, plus one extra FP at 0.95 (on slot 7): at 0.9 -> 1/2, at 0.7 -> 2/4.
# precision = [1/2, 1/2, 0, ...] -> AP40 = 0.5 / 40, AP11 = 0.5 / 11.
EXTRA_FP_AP = (100 * 0.5 / 40, 100 * 0.5 / 11)


def assert_aps(result, level, expected):
  np.testing.assert_allclose(aps(result, level), expected, rtol=1e-12,
                             atol=1e-12)


def test_two_gt_curve_by_hand():
  res = run([image(BASE_GT, BASE_DET)])
  for level in ap.DIFFICULTIES:
    assert res[level]["num_gt"] == 2
    assert_aps(res, level, BASE_AP)
  np.testing.assert_allclose(res["easy"]["precision"][:3], [1, 2 / 3, 0])
  np.testing.assert_allclose(res["easy"]["recall"][:3], [0.5, 1, 0])


@pytest.mark.parametrize("n", [41, 60])
def test_perfect_detections_give_100(n):
  # Enough GTs (>= 41) for getThresholds to reach all 41 recall steps.
  res = run([image([car(i) for i in range(n)],
                   [det(i, 1.0 - i / 100) for i in range(n)])])
  for level in ap.DIFFICULTIES:
    assert res[level]["num_gt"] == n
    assert_aps(res, level, (100.0, 100.0))


def test_perfect_detections_with_few_gt_are_capped():
  # Devkit quirk: 2 GTs give 2 thresholds -> precision [1, 1, 0, ...]:
  # AP40 = 1 / 40 (entry 1 only), AP11 = 1 / 11 (entry 0 only).
  res = run([image([car(0), car(1)], [det(0, 0.9), det(1, 0.8)])])
  assert_aps(res, "moderate", (100 / 40, 100 / 11))


def test_forty_gt_curve_by_hand_over_several_images():
  # 40 images with one car each. Images 0..19 detected at scores
  # 0.99..0.80, then 10 FPs (0.75..0.66, in images 40..49 without GT),
  # then images 20..39 detected at 0.60..0.41. n_gt = 40, so every TP
  # score is a threshold: entry k has TP k+1 and FP = #FPs above it.
  # k < 20: 1; k >= 20: (k+1)/(k+11), increasing up to 40/50 at k = 39;
  # entry 40: 0. Running max: 1 (x20), 0.8 (x20), 0.
  # AP40 = (19 + 20 * 0.8) / 40 = 87.5; AP11 = (5 + 5 * 0.8) / 11 = 9 / 11.
  images = []
  for i in range(40):
    score = 0.99 - i / 100 if i < 20 else 0.60 - (i - 20) / 100
    images.append(image([car(0)], [det(0, score)]))
  for i in range(10):
    images.append(image([], [det(0, 0.75 - i / 100)]))
  res = run(images)
  assert res["easy"]["num_gt"] == 40
  assert_aps(res, "easy", (87.5, 100 * 9 / 11))


# GT 3 on slot 2, ignored in Easy for three reasons; D4 (0.95) on it.
IGNORED_IN_EASY = {
    "occluded": car(2, occ=2),  # level 2: only Hard
    "truncated": car(2, trunc=0.4),  # > 0.30: only Hard
    "small": car(2, height=30.0),  # < 40 px: Moderate and Hard
}


@pytest.mark.parametrize("reason", sorted(IGNORED_IN_EASY))
def test_detection_on_ignored_gt_is_neither_tp_nor_fp(reason):
  gt3 = IGNORED_IN_EASY[reason]
  d4 = det(2, 0.95, height=gt3[0][3] - gt3[0][1])
  res = run([image(BASE_GT + [gt3], BASE_DET + [d4])])
  # Easy: GT 3 is ignored and absorbs D4: exactly the base case.
  assert res["easy"]["num_gt"] == 2
  assert_aps(res, "easy", BASE_AP)
  # Hard: GT 3 is valid, D4 a TP. TP scores [0.95, 0.9, 0.7], n_gt = 3 ->
  # all three are thresholds: precision 1, 1, 3/4 -> [1, 1, 0.75, 0, ...].
  # AP40 = (1 + 0.75) / 40, AP11 = 1 / 11.
  hard = (100 * 1.75 / 40, 100 / 11)
  assert res["hard"]["num_gt"] == 3
  assert_aps(res, "hard", hard)
  assert_aps(res, "moderate", hard if reason == "small" else BASE_AP)


def test_same_detection_without_the_ignored_gt_is_fp():
  # D4 alone on the now empty slot 2: an FP at 0.95 in every level.
  res = run([image(BASE_GT, BASE_DET + [det(2, 0.95)])])
  assert_aps(res, "easy", EXTRA_FP_AP)
  assert_aps(res, "hard", EXTRA_FP_AP)


def test_neighbour_class_is_ignored():
  van = car(2, kind="Van")
  with_det = run([image(BASE_GT + [van], BASE_DET + [det(2, 0.95)])])
  without_det = run([image(BASE_GT + [van], BASE_DET)])
  for level in ap.DIFFICULTIES:
    assert with_det[level]["num_gt"] == 2
    assert_aps(with_det, level, BASE_AP)  # matched van: not an FP
    assert_aps(without_det, level, BASE_AP)  # missed van: not an FN
  # Integer kinds work the same way.
  g, d = image(BASE_GT + [van], BASE_DET + [det(2, 0.95)])
  g["kind"] = np.array([ap.CAR, ap.CAR, ap.NEIGHBOUR])
  assert_aps(ap.evaluate([g], [d]), "easy", BASE_AP)


def test_other_classes_absorb_nothing():
  # A pedestrian GT is skipped entirely (devkit ignored_gt = -1): the car
  # detection on it stays an FP.
  res = run([image(BASE_GT + [car(2, kind="Pedestrian")],
                   BASE_DET + [det(2, 0.95)])])
  assert_aps(res, "easy", EXTRA_FP_AP)


def test_detection_in_dontcare_is_ignored():
  dc = ((700.0, 50.0, 1000.0, 250.0), "DontCare", -1.0, -1)
  inside = det(8, 0.95)  # x 800..850, fully inside the region
  res = run([image(BASE_GT + [dc], BASE_DET + [inside])])
  for level in ap.DIFFICULTIES:
    assert_aps(res, level, BASE_AP)
  # The same detection with the region elsewhere is an FP.
  elsewhere = ((2000.0, 50.0, 2300.0, 250.0), "DontCare", -1.0, -1)
  res = run([image(BASE_GT + [elsewhere], BASE_DET + [inside])])
  assert_aps(res, "easy", EXTRA_FP_AP)


def test_dontcare_uses_intersection_over_detection_area():
  # Region x 700..1000, y 50..250 (area 60000). Detection x 950..1030,
  # y 100..160 (area 4800): intersection 50 * 60 = 3000, i.e. 0.625 of the
  # detection (> 0.5 -> ignored) though its IoU is only 3000 / 61800.
  dc = ((700.0, 50.0, 1000.0, 250.0), "dontcare", 0.0, 0)
  mostly_in = ((950.0, 100.0, 1030.0, 160.0), 0.95)
  res = run([image(BASE_GT + [dc], BASE_DET + [mostly_in])])
  assert_aps(res, "easy", BASE_AP)
  # x 970..1050: 30 * 60 = 1800 of 4800 = 0.375 inside -> an FP.
  mostly_out = ((970.0, 100.0, 1050.0, 160.0), 0.95)
  res = run([image(BASE_GT + [dc], BASE_DET + [mostly_out])])
  assert_aps(res, "easy", EXTRA_FP_AP)
  # The DontCare test uses the same threshold: at 0.7, 0.625 is not enough.
  # (The base pairs have IoU 1, so they still match at 0.7.)
  res = run([image(BASE_GT + [dc], BASE_DET + [mostly_in])],
            iou_threshold=0.7)
  assert_aps(res, "easy", EXTRA_FP_AP)


def test_small_detections_are_ignored():
  # 30 px: below Easy's 40 (ignored) but not Moderate's 25 (an FP there).
  res = run([image(BASE_GT, BASE_DET + [det(5, 0.95, height=30.0, top=300)])])
  assert_aps(res, "easy", BASE_AP)
  assert_aps(res, "moderate", EXTRA_FP_AP)
  # The devkit truncates detection heights to int: 39.9 px counts as 39.
  res = run([image(BASE_GT, BASE_DET + [det(5, 0.95, height=39.9, top=300)])])
  assert_aps(res, "easy", BASE_AP)


def test_iou_threshold_changes_a_borderline_match():
  # GT slot 1 is x 100..150, y 100..160 (area 3000); a detection covering
  # y 100..136 of it has IoU 36 * 50 / 3000 = 0.6.
  borderline = ((100.0, 100.0, 150.0, 136.0), 0.7)
  dets = [det(0, 0.9), det(5, 0.8), borderline]
  at_05 = run([image(BASE_GT, dets)], iou_threshold=0.5)
  at_07 = run([image(BASE_GT, dets)], iou_threshold=0.7)
  # Hard (min height 25 < 36) to keep the borderline box a valid detection.
  assert_aps(at_05, "hard", BASE_AP)
  # At 0.7 only D1 is a TP: one threshold (0.9) with precision 1 ->
  # [1, 0, ...]: AP40 = 0, AP11 = 1 / 11.
  assert_aps(at_07, "hard", (0.0, 100 / 11))


def test_overlap_must_exceed_the_threshold():
  # IoU exactly 0.5 (30 of 60 px high) is not a match: the devkit uses >.
  half = ((100.0, 100.0, 150.0, 130.0), 0.7)
  res = run([image(BASE_GT, [det(0, 0.9), det(5, 0.8), half])])
  assert_aps(res, "hard", (0.0, 100 / 11))


def test_no_gt_in_a_difficulty_gives_zero():
  # Both cars are largely occluded: no valid GT in Easy or Moderate, so no
  # threshold and AP 0 (the devkit's zero-filled precision); Hard is fine.
  gts = [car(0, occ=2), car(1, occ=2)]
  res = run([image(gts, BASE_DET)])
  for level in ("easy", "moderate"):
    assert res[level]["num_gt"] == 0
    assert_aps(res, level, (0.0, 0.0))
  assert_aps(res, "hard", BASE_AP)
  empty = run([image([], [])])
  for level in ap.DIFFICULTIES:
    assert empty[level]["num_gt"] == 0
    assert_aps(empty, level, (0.0, 0.0))


def test_occlusion_level():
  assert ap.occlusion_level(0.0) == 0
  assert ap.occlusion_level(0.09) == 0
  assert ap.occlusion_level(0.1) == 1
  assert ap.occlusion_level(0.49) == 1
  assert ap.occlusion_level(0.5) == 2
  assert ap.occlusion_level(1.0) == 2
  np.testing.assert_array_equal(
      ap.occlusion_level(np.array([0.0, 0.2, 0.8]), thresholds=(0.3, 0.7)),
      [0, 0, 2])
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    ap.occlusion_level(1.5)
  with pytest.raises(ValueError, match="thresholds"):
    ap.occlusion_level(0.2, thresholds=(0.5, 0.1))


def test_difficulty():
  boxes = np.array([[0, 0, 10, 40], [0, 0, 10, 39], [0, 0, 10, 25],
                    [0, 0, 10, 24], [0, 0, 10, 50], [0, 0, 10, 50],
                    [0, 0, 10, 50], [0, 0, 10, 50]], np.float64)
  occ = np.array([0, 0, 0, 0, 1, 2, 3, 0])
  trunc = np.array([0.15, 0.0, 0.0, 0.0, 0.3, 0.5, 0.0, 0.51])
  np.testing.assert_array_equal(ap.difficulty(boxes, occ, trunc),
                                [0, 1, 1, -1, 1, 2, -1, -1])


def test_min_heights_scale_with_the_image_height():
  """KITTI's 40 / 25 / 25 px are for 375-px images: at 96 px they are
  10.24 / 6.4 / 6.4 px, and a 12-px-high car counts as Easy there (it is
  ignored with KITTI's own heights).  One GT: the devkit's AP11 is 1/11,
  its AP40 0 (see the capped case above)."""
  assert ap.scaled_min_height(375) == ap.MIN_HEIGHT
  np.testing.assert_allclose(ap.scaled_min_height(96), (10.24, 6.4, 6.4))
  small = [image([car(0, height=12.0)], [det(0, 0.9, height=12.0)])]
  scaled = run(small, min_height=ap.scaled_min_height(96))
  assert scaled["easy"]["num_gt"] == 1
  np.testing.assert_allclose(scaled["easy"]["ap11"], 100 / 11)
  assert run(small)["easy"]["num_gt"] == 0
  with pytest.raises(ValueError, match="min_height"):
    run(small, min_height=(10.0, 6.0))


@pytest.mark.parametrize("mutate,match", [
    (lambda g, d: g.update(boxes=np.array([[10.0, 0, 5, 50]])), "x0 <= x1"),
    (lambda g, d: d.update(boxes=np.array([[0.0, 50, 5, 10]])), "y0 <= y1"),
    (lambda g, d: g.update(boxes=np.zeros((1, 3))), r"\[n, 4\]"),
    (lambda g, d: g.update(kind=np.array(["bus"])), "not a known kind"),
    (lambda g, d: g.update(kind=np.array([7])), "ints must be"),
    (lambda g, d: g.update(truncation=np.array([1.5])), r"\[0, 1\]"),
    (lambda g, d: g.update(occlusion=np.array([4])), "levels"),
    (lambda g, d: g.update(occlusion=np.array([0, 1])), r"shape \[1\]"),
    (lambda g, d: g.pop("truncation"), "lacks key 'truncation'"),
    (lambda g, d: d.update(scores=np.array([np.nan])), "finite"),
])
def test_bad_input_raises(mutate, match):
  g, d = image([car(0)], [det(0, 0.9)])
  mutate(g, d)
  with pytest.raises(ValueError, match=match):
    ap.evaluate([g], [d])


def test_bad_call_raises():
  g, d = image([car(0)], [det(0, 0.9)])
  with pytest.raises(ValueError, match="images"):
    ap.evaluate([g], [d, d])
  with pytest.raises(ValueError, match="iou_threshold"):
    ap.evaluate([g], [d], iou_threshold=1.0)
  with pytest.raises(ValueError, match="lists"):
    ap.evaluate(g, d)
