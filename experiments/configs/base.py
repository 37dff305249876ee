"""The base config: every key the code reads, with its default.

A world's config (``mnist.py``, ``aerial.py``) starts from ``get_config()``
and changes what differs, so every experiment has the same keys and any of
them can be set from a flag (the configs are locked: a flag can only set a
key that exists).  Keys that only one world reads stay in that world's file
(MNIST: ``digits``, ``data_dir``, ``pool``, ``splits``; Aerial2D:
``textures``, ``splits``).

  world        "mnist" or "aerial": where the grammar's assets (digit or
               texture pools) and the target sets come from.
  task_type    "classification" (label: ``label.attr`` of the slot
               ``label.slot``) or "segmentation" (label: the renderer's
               semantic map; mean IoU over the classes ``mean_over``).
  renderer     "raster2d" (jitted 2D, differentiable) or "bridge" (3D
               renderer servers, ``metasim_jax/render/bridge.py``), with
               ``renderer_options`` (the bridge: ``backend``, ``workers``,
               ``addresses``, ``timeout_s``).
  grammar, target            the grammars as dicts, or
  grammar_file, target_file  JSON files (a non-empty path wins).
  mmd          distribution matching: MMD^2 on features, multi-start.
  schedule     the generator's stages: which attribute groups each trains,
               with MMD or the task loss (``training/schedule.py``).
  task         the task meta-objective (Algorithm 1, REINFORCE).
  parallel     devices and hosts (``metasim_jax/parallel.py``): scene
               batches split over ``devices`` (0: every device of every
               host), the K starts over ``starts`` of them; a multi-host
               run sets ``coordinator`` (host:port of process 0),
               ``num_processes`` and, on each host, ``process_id``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = ""
  c.world = "mnist"  # or "aerial"
  c.task_type = "classification"  # or "segmentation"
  c.renderer = "raster2d"
  c.renderer_options = {}
  c.seeds = (0,)
  c.data_seed = 1234  # fixes the data splits and the target sets
  c.log_every = 50    # console
  c.curve_every = 10  # curves in the PNG
  # Steps of a stage between checkpoints (workdir/checkpoints; a stage's
  # start and each evaluated source get one too); --resume continues there.
  c.checkpoint_every = 100

  # Input grammar and target: a dict each, or a JSON file each.
  c.grammar = {}
  c.target = {}
  c.grammar_file = ""
  c.target_file = ""
  # Classification: the label is attribute `attr` of slot `slot` (e.g.
  # "scene/digit[0]", "class").  Segmentation: mean IoU over `mean_over`.
  c.label = {"slot": "", "attr": ""}
  c.mean_over = ()
  c.canvas = {"height": 32, "width": 32, "channels": 1}

  # affine: a learned shift and log-scale per (class, attribute) about the
  # prior's centre (metasim_jax/transformer/gcn.py): means and spreads move
  # through one parameter each.
  c.transformer = {"hidden": 64, "encoder_layers": 2, "decoder_layers": 2,
                   "affine": False}
  c.pretrain = {"steps": 200, "batch_size": 64, "lr": 3e-3}
  # All the arguments of metasim_jax.features.create; "pyramid" reads
  # levels and sigma, "local_stats" levels, num_filters, filter_size, seed
  # and grid (rows, cols of pooling cells), "inception" the inception_* ones.
  c.features = {"name": "pyramid", "levels": 4, "sigma": 1.0,
                "num_filters": 32, "filter_size": 3, "seed": 0,
                "grid": (1, 1),
                "inception_weights": "", "inception_layer": "Mixed_5d",
                "inception_resize": 128}

  # Learned MMD features (metasim_jax/task_features.py): the task network
  # trained on V for `steps` steps (0: off; batches of `batch` images of V
  # and `synthetic` prior scenes), its output maps pooled over `grid`
  # cells (pooling "cells") or into relation statistics at `radii` px
  # (pooling "relations"), or, for detection, into the joint histogram of
  # the objects' size, shape and row over `bins` per value (pooling
  # "objects"), a block of weight `weight` beside config.features.
  c.task_features = {"steps": 0, "batch": 16, "synthetic": 0, "lr": 2e-3,
                     "grid": (1, 1), "weight": 1.0, "pooling": "cells",
                     "radii": (2.0, 4.0, 8.0), "bins": 4}

  # Distribution matching: MMD^2 between the features of generated and
  # real images, from num_starts starts (the one with the lowest MMD^2 on
  # select_batch fresh scenes is kept).
  c.mmd = ml_collections.ConfigDict()
  c.mmd.weight = 1.0
  c.mmd.steps = 300
  c.mmd.batch_size = 50
  c.mmd.lr = 1e-2
  c.mmd.optimizer = "adam"  # or "sgd" (training/steps.py: optimizer)
  # Gaussian-kernel bandwidths as multiples of the median real-real
  # feature distance.
  c.mmd.median_multiples = (0.5, 1.0, 2.0, 4.0)
  c.mmd.grad = "finite_diff"  # or "autodiff"
  c.mmd.num_starts = 4
  c.mmd.start_spread = 0.0
  c.mmd.select_batch = 500
  # Screening (training/screen.py): before an MMD stage's first step,
  # screen_candidates > 1 candidate starts (shifts in +-screen_shift prior
  # standard deviations, log-scales in screen_log_spread, of the
  # attributes the stage switches on; affine head) are scored by their
  # MMD^2 on select_batch scenes and the best num_starts trained.
  c.mmd.screen_candidates = 0
  c.mmd.screen_shift = 2.0
  c.mmd.screen_log_spread = (-2.0, 0.5)
  c.mmd.lr_decay = False  # cosine decay of the MMD learning rate to 0
  # In a stage that trains some groups only (config.schedule), weight of
  # the autoencoder loss that keeps the other groups' outputs at identity.
  c.mmd.hold_weight = 1.0

  # The task meta-objective (Algorithm 1, REINFORCE): train a task net on
  # num_scenes generated scenes, reward it on the real validation set.
  # Generator stages after pre-training (metasim_jax/training/schedule.py):
  # "" = MMD (mmd.steps) then the task loss (task.steps) on every mutable
  # attribute; else e.g. "cars:mmd;cars+camera:mmd;all:task", each stage
  # evaluated as a row of the results.
  c.schedule = ""

  c.task = ml_collections.ConfigDict()
  c.task.weight = 0.0
  c.task.steps = 0
  c.task.with_mmd = True
  c.task.num_scenes = 1000
  c.task.inner_steps = 60
  c.task.inner_batch = 50
  c.task.lr = 2e-3
  c.task.gen_lr = 3e-3
  c.task.sigma = {"x": 1.0, "y": 1.0, "yaw": 10.0}
  c.task.baseline_decay = 0.9
  # The task reward on V: "score" (the task's headline metric), "neg_loss"
  # or "score:METRIC", e.g. "score:iou_car".
  c.task.reward = "score"
  c.task.fixed_init = True
  c.task.noise = "per_scene"  # Algorithm 1; "per_dataset" is ours
  # The inner task-net training: "host" (a loop of jitted steps; faster
  # on the CPU), "scan" (one lax.scan; faster on a GPU) or "auto" (host on
  # the CPU, scan elsewhere); same keys, same parameters.
  c.task.inner_loop = "auto"
  # The gradient estimator of the task stage: "reinforce" (Algorithm 1, the
  # paper's) or "es" (antithetic evolution strategies over the per-class
  # affine parameters, needs transformer.affine; training/es.py): ``pairs``
  # antithetic pairs a step, perturbations of ``sigma`` prior standard
  # deviations on the shifts and ``log_sigma`` on the log-spreads, Adam
  # (first-moment decay ``momentum``) with ``lr`` in units of those
  # perturbations (a step moves a shift by
  # about lr x sigma; ``lr_decay``: by a cosine to 0 over the stage after
  # its fraction ``decay_start``, and the perturbations with it down to
  # ``sigma_floor`` x their size),
  # rewards normalised by "rank", "std" or "none"; ``vmap``: the 2P task
  # nets trained in one vmapped program (small nets, accelerators) or one
  # after another (False: a U-Net on a CPU, ~19x faster there).  Or "unrolled" (ours,
  # training/unrolled.py): the gradient of V's loss through the inner
  # training (a lax.scan) and the renderer, Adam at gen_lr on every
  # transformer parameter, or only on the affine ones
  # (``unrolled_affine_only``); the task net should be smooth (MNIST:
  # tasknet.kwargs.smooth).
  c.task.estimator = "reinforce"
  c.task.unrolled_affine_only = False
  # The task net's optimiser inside the task stage (lr: task.lr): "adam",
  # or "sgd" (momentum 0.9; training/steps.py: optimizer), smoother to
  # differentiate through (tests/training/test_unrolled.py).
  c.task.inner_optimizer = "adam"
  # ``warm_steps`` > 0: every member starts from a task net trained that
  # many steps on the unperturbed generator's data (es.py), not from scratch.
  # ``coarse_starts`` > 1: before the first step, that many candidate
  # starts (angles turned around the circle, continuous attributes shifted
  # by up to ``coarse_spread`` normalised units) are scored by one task net
  # each and es starts from the best (es.py: plateaus symmetric about the
  # start, e.g. a half turn); ``coarse_contract`` < 1: the candidates other
  # than the generator as it is also have their searched angles' spread
  # contracted by that factor (headings concentrated, pointing round the
  # circle: a nearly uniform heading's plateau).  ``relative_shift``: the
  # shifts perturbed and stepped in units of their attribute's current
  # spread, not the prior's (es.py: a contracted heading).
  # ``coarse_fit``: "best" (the best-scored candidate) or "harmonic" (the
  # peak of a curve fitted to all candidates' rewards over their heading;
  # one searched angle).  ``attributes``: comma-separated "class.attr"
  # names the search moves ("": every mutable continuous or angle one);
  # "class.attr:spread" or ":shift" moves only that part (es.search_parts).
  c.task.es = {"pairs": 4, "sigma": 3.0, "log_sigma": 0.3, "lr": 0.15,
               "lr_decay": False, "decay_start": 0.0, "sigma_floor": 1.0,
               "momentum": 0.9, "normalise": "rank", "vmap": True,
               "warm_steps": 0, "coarse_starts": 1, "coarse_spread": 0.0,
               "coarse_contract": 1.0, "coarse_fit": "best",
               "relative_shift": False, "attributes": ""}

  # kwargs: the task net's constructor arguments (by net).
  c.tasknet = {"name": "small_cnn", "kwargs": {}}
  c.eval = {"train_steps": 2000, "batch_size": 64, "lr": 2e-3,
            "probe_steps": 300, "probe_every": 100, "num_scenes": 1000,
            "repeats": 1}  # repeats: task-net trainings averaged per source
  # attribute -> tolerance of the learned mean's error (and of its
  # standard deviation's) against the target's: results.json's
  # attributes_within_tolerance_per_seed (spreads_within_tolerance_per_seed).
  c.success = {"attribute_tolerance": {}, "std_tolerance": {}}
  c.parallel = {"devices": 0, "starts": 1, "coordinator": "",
                "num_processes": 1, "process_id": 0}
  return c
