"""Aerial2D semantic segmentation (paper Sec. 4.2, Table 2).

  python -m experiments.aerial --flagfile=experiments/configs/aerial.flags

Variants (``--config=experiments/configs/aerial.py:VARIANT``, options
joined by commas): ``default``; ``relations`` (MMD features joined by the
relation statistics of the U-Net trained on V, ``task_features.py``: it
sees whether cars stand on the road and are aligned with it,
``benchmarks/aerial_landscape.py``); ``task`` (after the MMD stage, a
task stage on the cars' attributes: ``es``, rewarded by the car IoU on V
of U-Nets trained on the generated data); ``reinforce`` or ``unrolled``
beside ``task`` (the same stage by the paper's Algorithm 1, or by the
gradient of V's loss through a shorter unrolled U-Net training: the
README's comparison of estimators); ``smoke`` (tiny budgets, for
tests).  Starts from ``base.get_config()``
(every key, with its default) and sets world "aerial", task
"segmentation" (mean IoU over ``mean_over``); the Aerial2D-only keys
(``textures``, ``splits``) are set here.  The input grammar and the
target's parameters are JSON files (``grammar_file``, ``target_file``);
another target needs only another file, e.g.
``--config.target_file=my_target.json``.  Shipped worlds (``aerial/``):
``target.json`` (the default), ``target_offcentre.json`` (road
off-centre, cars tight on its axis, aligned, at 0.8 size) and
``target_lane.json`` (cars in one lane: its side cannot be seen where cars
show no front, ``benchmarks/aerial_slices.py``).

World: grass; a straight road (x, y, yaw); two cars that are children of
the road, so their x (across, |x| <= 16 px), y (along), yaw and scale are
in the road's frame; a tree and a house anywhere in the image.  Mutable:
the road's x, y, yaw; the cars' x, y, yaw, scale; the tree's and the
house's x, y (the grammar's groups, for ``config.schedule``: ``road``,
``cars``, ``context``).  The prior draws cars at about half their real size, the
target at real size.  Textures are procedural
(``metasim_jax/data/aerial_textures.py``).
"""

import os

import ml_collections

from experiments.configs import base

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aerial")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  options = set(arg.split(",")) - {"default", ""}
  valid = {"smoke", "relations", "task", "reinforce", "unrolled"}
  if options - valid:
    raise ValueError(f"unknown options {sorted(options - valid)}; "
                     f"valid: default, {', '.join(sorted(valid))}")
  if options & {"reinforce", "unrolled"} and "task" not in options:
    raise ValueError("options 'reinforce' and 'unrolled' choose the task "
                     "stage's estimator: use them with 'task'")
  if {"reinforce", "unrolled"} <= options:
    raise ValueError("choose one estimator: 'reinforce' or 'unrolled'")
  c = base.get_config()
  c.name = "aerial" + "".join(f"_{o}" for o in sorted(options))
  c.world = "aerial"
  c.task_type = "segmentation"
  c.mean_over = ("car", "road", "house", "tree")  # the paper's mean IoU
  c.grammar_file = os.path.join(HERE, "prior.json")
  c.target_file = os.path.join(HERE, "target.json")
  # The target world uses the grammar's texture sets, as in the paper (its
  # target is the same renderer and assets with realistic parameters).
  # target_seed != grammar_seed gives the target its own textures: a fixed
  # appearance gap that no scene parameter can close, and that then
  # dominates the MMD (README, "Aerial2D").
  c.textures = {"grammar_seed": 1, "target_seed": 1,
                "counts": {"car": 600, "road": 4, "grass": 7, "tree": 40,
                           "house": 20}}  # the paper's counts
  c.splits = {"real": 500, "val": 200, "test": 500}
  c.canvas = {"height": 64, "width": 64, "channels": 3}

  c.pretrain.steps = 300
  # Translation-invariant local statistics: blurred pixels (MNIST's
  # pyramid) mostly measure the road's pose and do not see whether a car
  # is on the road (benchmarks/aerial_landscape.py).
  c.features.name = "local_stats"
  c.features.filter_size = 5

  # The rasterizer is differentiable; "finite_diff" (the paper's) renders
  # 2 x 13 perturbed copies of every scene and is ~6x slower here.
  c.mmd.steps = 400
  c.mmd.grad = "autodiff"
  c.mmd.num_starts = 2
  c.mmd.lr_decay = True
  c.task.num_scenes = 200
  c.task.inner_batch = 16
  c.task.sigma = {"x": 1.0, "y": 1.0, "yaw": 5.0}

  c.tasknet.name = "unet"
  c.tasknet.kwargs = {"features": (16, 32, 64)}
  c.eval = {"train_steps": 1500, "batch_size": 16, "lr": 2e-3,
            "probe_steps": 200, "probe_every": 100, "num_scenes": 500,
            "repeats": 1}

  if "relations" in options:
    # The affine head (per class and attribute: a shift and a log-scale of
    # the spread) lets the cars' across-offset and heading spreads shrink.
    c.transformer.affine = True
    # Twice the default's steps: a road's position spread is felt
    # consistently only once the cars stand on it, late in the stage
    # (benchmarks/aerial_grad_snr.py), when a cosine schedule has little
    # learning rate left.
    c.mmd.steps = 800
    c.task_features.update({"steps": 300, "batch": 16, "synthetic": 8,
                            "lr": 2e-3, "weight": 1.0,
                            "pooling": "relations", "radii": (2.0, 4.0, 8.0)})

  if "task" in options:
    # MMD on every attribute, then the task loss on the cars' (the
    # grammar's "cars" group: x across, y along, yaw, scale).  The paired
    # measurement (benchmarks/aerial_task_signal.py) sees where and how the
    # cars stand in V's car IoU after 300 U-Net steps (-10 points for the
    # local statistics' MMD result), not in V's loss (cars are 2 % of the
    # pixels), hence the reward; the other classes' IoU cannot move here.
    c.transformer.affine = True  # es searches its shifts and log-spreads
    c.schedule = "all:mmd;cars:task"
    c.task.weight = 1.0
    c.task.steps = 14
    c.task.with_mmd = False
    c.task.estimator = "es"
    c.task.reward = "score:iou_car"
    c.task.num_scenes = 400
    c.task.inner_steps = 300
    c.task.inner_batch = 16
    c.task.lr = 2e-3  # the evaluation's
    # Shifts perturbed by half a prior standard deviation (a car's offset
    # by 2.3 px), spreads by a factor e^0.3; a step moves each by about
    # lr x that.  One U-Net after another (vmap=False): on a CPU the
    # vmapped convolutions are ~19x slower.
    # Every step's members fine-tune (task.inner_steps) from one U-Net
    # trained warm_steps on the unperturbed generator's scenes: from
    # scratch, 300-step U-Nets prefer *wider* placement than the target's;
    # fine-tuned, a narrower offset spread (benchmarks/aerial_es_pairs.py).
    c.task.es.update({"pairs": 2, "sigma": 0.5, "log_sigma": 0.3, "lr": 0.5,
                      "normalise": "rank", "vmap": False, "warm_steps": 300})
  if "reinforce" in options:
    # Algorithm 1 as the paper wrote it: per-scene Gaussian noise around
    # the cars' predicted attributes (about half es's shift on x and y, a
    # tenth of a car's size on scale), one U-Net a step, Adam on every
    # transformer weight.
    c.task.estimator = "reinforce"
    c.task.sigma = {"x": 1.0, "y": 1.0, "yaw": 5.0, "scale": 0.05}
    c.task.es.warm_steps = 0
  if "unrolled" in options:
    # The gradient of V's loss through the inner training, on the affine
    # parameters (as es searches them): a smooth U-Net (SiLU, average
    # pooling) trained by heavy-ball SGD, 100 steps (the activations of
    # every step are kept for the backward pass).  V's loss, not the car
    # IoU: a score has no gradient.
    c.task.estimator = "unrolled"
    c.task.unrolled_affine_only = True
    c.task.reward = "neg_loss"
    c.task.inner_optimizer = "sgd"
    c.task.inner_steps = 100
    c.task.lr = 0.1
    c.task.gen_lr = 0.1
    c.tasknet.kwargs = {**c.tasknet.kwargs, "smooth": True}
    c.task.es.warm_steps = 0

  if "smoke" in options:
    c.textures.counts = {"car": 6, "road": 2, "grass": 2, "tree": 3,
                         "house": 3}
    c.splits = {"real": 16, "val": 8, "test": 8}
    c.pretrain.steps = 2
    c.mmd.steps = 2
    c.mmd.select_batch = 8
    c.mmd.batch_size = 8
    c.eval = {"train_steps": 2, "batch_size": 4, "lr": 1e-3,
              "probe_steps": 2, "probe_every": 1, "num_scenes": 16,
              "repeats": 1}
    c.log_every = 1
    c.task_features.steps = min(c.task_features.steps, 2)
    c.task.steps = min(c.task.steps, 1)
    c.task.num_scenes = min(c.task.num_scenes, 8)
    c.task.inner_steps = min(c.task.inner_steps, 2)
    c.task.es.pairs = 1
    c.task.es.warm_steps = min(c.task.es.warm_steps, 2)
  return c
