"""Config blocks shared by the experiments: distribution matching (MMD^2,
multi-start) and the task meta-objective (Algorithm 1, REINFORCE)."""

import ml_collections


def mmd(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0
  c.steps = 300
  c.batch_size = 50
  c.lr = 1e-2
  c.bandwidths = (0.5, 1.0, 2.0, 4.0)  # x median real-real distance
  c.grad = "finite_diff"  # or "autodiff"
  c.num_starts = 4
  c.start_spread = 0.0
  c.select_batch = 500
  c.lr_decay = False  # cosine decay of the MMD learning rate to 0
  c.update(overrides)
  return c


def task(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 0.0
  c.steps = 0
  c.with_mmd = True
  c.num_scenes = 1000
  c.inner_steps = 60
  c.inner_batch = 50
  c.lr = 2e-3
  c.gen_lr = 3e-3
  c.sigma = {"x": 1.0, "y": 1.0, "yaw": 10.0}
  c.baseline_decay = 0.9
  c.reward = "score"  # the task's headline metric on V; or "neg_loss"
  c.fixed_init = True
  c.noise = "per_scene"  # Algorithm 1; "per_dataset" is ours
  c.update(overrides)
  return c
