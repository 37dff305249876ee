"""The task meta-objective by antithetic evolution strategies (``es``).

The search space is small: the transformer's per-class affine parameters
(``transformer.affine``), a shift (in units of the prior's standard
deviation) and a log-scale of the spread for every mutable continuous or
angle attribute of every class.  Each meta-step draws P directions
eps_1..P ~ N(0, I) and builds 2P datasets from the *same* prior scenes,
one per perturbation theta +- sigma * eps_i; one task network is trained on
each, all from the same initialisation and with the same minibatch and
dropout keys (common random numbers: the members of a pair differ only in
the generator), the 2P trainings vmapped in one jitted step.  Their scores
on V give the gradient estimate (Salimans et al., 2017, "Evolution
strategies as a scalable alternative to reinforcement learning")

    g = 1 / (2 P sigma) * sum_i (f(R_i+) - f(R_i-)) eps_i,

of the Gaussian-smoothed reward E_eps R(theta + sigma eps); with ``f`` the
identity (``normalise="none"``) it is unbiased for that gradient (a
quadratic reward's smoothed gradient is its gradient: tests/training/
test_es.py).  ``"rank"`` (centred ranks in [-0.5, 0.5]) and ``"std"``
(rewards divided by their spread) make the step independent of the
reward's scale and of outliers, at the cost of a biased size (the
direction is kept: the same tests).  What it assumes: the reward changes
measurably when a whole dataset moves by sigma (on MNIST rotation from
the upright prior, R(+45 degrees) - R(-45 degrees) = +0.20 +- 0.04
paired, where Algorithm 1's per-scene noise of 10 degrees moves the reward
by ~0.002), and the
attributes that matter are among the affine parameters (the GCN's weights
are not searched).

Why not Algorithm 1: its per-scene noise averages out over a dataset (the
reward sees the dataset's distribution, not any one scene), so the score
function's signal is ~1/sqrt(scenes) of its noise.  Perturbing the whole
dataset's distribution is what the reward can see.

Coarse multi-start (``make_es_step(..., coarse_starts=K)``): antithetic
pairs cannot leave a plateau that is symmetric about the start (digits
turned by +180 and -180 degrees from the upright prior are the same data,
so every pair scores the same in rotation).  Before the first step, K
candidate starts are scored once each: the generator with its angles
turned by stratified offsets around the circle (and its continuous
attributes shifted by up to ``coarse_spread``, normalised units), as the
MMD stage's multi-start draws them (``starts.start_offsets``; candidate 0
is the generator as it is; the turns go to the searched classes' shifts,
``class_offsets``, so that no other class moves), one task net trained on
each from the same initialisation on the same scenes; ``es`` starts from
the best.  It costs
K trainings once and assumes that one training's reward ranks the
candidates (their differences are large: whole turns of the data).
With ``coarse_contract`` = f < 1, candidates 1..K-1 also have the spread
of every searched angle contracted by f (``encoding.contract_angle``) before
they turn: the candidates are then K-1 concentrated headings pointing
around the circle (and the generator as it is).  That is the other
plateau: a heading that is nearly uniform (a car's on its road after
an MMD that cannot see it) scores the same when its spread moves by
e^+-log_sigma, turned or not; its direction can show only once the
headings are concentrated.  It assumes that the task needs that direction
and that one training sees it: on the Aerial2D grid world (decoys across
roads that run along the image's columns) uniform headings cost 16 car
IoU points; on the shipped world, where the image turns with the road,
one training picked the aligned one of four contracted candidates in 1 of
3 repeats (``benchmarks/aerial_heading_candidates.py``, README).
``coarse_fit="harmonic"``: one training per candidate is a noisy score,
and the best-scored of candidates 40 degrees apart can sit at the edge of
a broad peak (the Aerial2D grid world's first coarse start: headings 16
degrees below to 29 above the road's axis scored 0.37-0.38, the chosen one
29 degrees off).  Fitting a + sum_h (b_h cos h t + c_h sin h t), h = 1, 2,
to every candidate's reward over its turn t (least squares,
``harmonic_peak``) and starting at the fit's peak uses all K scores: on
those rewards the peak is 1 degree from the road's axis.  It assumes one
searched angle and a peak broader than the candidates' spacing.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metasim_jax import grammar as grammar_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax.features import MMDTarget
from metasim_jax.grammar.spec import Grammar
from metasim_jax.pipeline import Pipeline
from metasim_jax.scene_graph import encoding
from metasim_jax.training import starts as starts_lib
from metasim_jax.training import steps
from metasim_jax.types import LabeledSet, MetaSimState

NORMALISE = ("rank", "std", "none")
# The coarse start draws its scenes and offsets as this meta-step, an index
# no step of a stage reaches.
COARSE_STEP = 2**32 - 1


PARTS = ("spread", "shift")


def _split(name: str) -> tuple[str, str | None]:
  """("class.attribute", part or None) of an ``attributes`` entry,
  "class.attribute" or "class.attribute:part" (``PARTS``)."""
  attr, _, part = name.partition(":")
  if part and part not in PARTS:
    raise ValueError(f"es cannot search part {part!r} of {attr!r}: the "
                     f"parts are {PARTS} (none named: both)")
  return attr, part or None


def search_mask(grammar: Grammar,
                attributes: Sequence[str] = ()) -> np.ndarray:
  """[classes, A] bool: the (class, attribute) pairs the search moves,
  those continuous or angle attributes mutable on some slot of the
  class; with ``attributes`` ("class.attribute" names, optionally with
  ":spread" or ":shift", ``search_parts``), only those."""
  ids = np.asarray(encoding.class_ids(grammar))
  kinds = np.array([k in ("continuous", "angle") for k in grammar.attr_kinds])
  mask = np.zeros((len(grammar.classes), grammar.num_attrs), bool)
  for slot, cls in enumerate(ids):
    mask[cls] |= np.asarray(grammar.mutable[slot]) & kinds
  if not attributes:
    return mask
  names = list(grammar.classes)
  searchable = [f"{names[c]}.{grammar.attr_names[j]}"
                for c, j in zip(*np.nonzero(mask))]
  chosen = np.zeros_like(mask)
  for name in attributes:
    name, _ = _split(name)
    if name not in searchable:
      raise ValueError(f"es cannot search {name!r}: the searchable "
                       f"attributes (mutable, continuous or angle) are "
                       f"{searchable}")
    cls, attr = name.split(".", 1)
    chosen[names.index(cls), grammar.col(attr)] = True
  return chosen


def search_parts(grammar: Grammar,
                 attributes: Sequence[str] = ()) -> np.ndarray:
  """[2 M] float, 1 where the search moves a coordinate of ``searched``'s
  vector (M log-spreads, then M shifts, of ``search_mask``'s pairs), 0
  where it does not perturb it (a held coordinate moves only with the
  MMD term, if any, as the parameters es does not search do).
  "class.attribute:spread" searches only that
  attribute's log-spread, ":shift" only its shift, no suffix both.  What
  it is for: a coordinate whose paired reward difference is mostly noise
  (Aerial2D's car offset shift, mean/sd 0.6 a pair against the offset
  spread's 2.2, ``benchmarks/aerial_es_pairs.py``) is not only a random
  walk of its own: its noise enters every coordinate's estimate, since all
  share the pairs' reward differences."""
  mask = search_mask(grammar, attributes)
  cells = list(zip(*np.nonzero(mask)))
  m = len(cells)
  active = np.ones(2 * m, np.float32)
  if not attributes:
    return active
  names = list(grammar.classes)
  parts: dict[tuple[int, int], set[str]] = {}
  for name in attributes:
    attr, part = _split(name)
    cls, col = attr.split(".", 1)
    key = (names.index(cls), grammar.col(col))
    parts.setdefault(key, set()).update([part] if part else PARTS)
  for i, key in enumerate(cells):
    active[i] = "spread" in parts[key]
    active[m + i] = "shift" in parts[key]
  return active


def harmonic_peak(angles: np.ndarray, rewards: np.ndarray,
                  harmonics: int = 2) -> tuple[float, float]:
  """(angle, value) of the maximum of the least-squares fit
  a + sum_h b_h cos(h t) + c_h sin(h t), h = 1..``harmonics``, to
  ``rewards`` at ``angles`` (radians; at least 2 harmonics + 1 of them).
  The second harmonic gives a heading whose front and back look alike
  (a car's on its road) its two peaks half a turn apart."""
  angles, rewards = np.asarray(angles, np.float64), np.asarray(rewards)
  if len(angles) < 2 * harmonics + 1:
    raise ValueError(f"a fit of {harmonics} harmonics needs at least "
                     f"{2 * harmonics + 1} candidates, got {len(angles)}")

  def design(t):
    return np.stack([np.ones_like(t)]
                    + [f(h * t) for h in range(1, harmonics + 1)
                       for f in (np.cos, np.sin)], -1)

  coef = np.linalg.lstsq(design(angles), rewards, rcond=None)[0]
  grid = np.linspace(-np.pi, np.pi, 1440, endpoint=False)
  fit = design(grid) @ coef
  return float(grid[np.argmax(fit)]), float(fit.max())


def perturbed(params, delta: jax.Array, mask: np.ndarray):
  """``params`` with ``delta`` [2 M] added to the searched entries of
  ``log_spread`` (first M) and ``class_shift`` (last M)."""
  idx, m = np.nonzero(mask), int(mask.sum())
  return {**params,
          "log_spread": params["log_spread"].at[idx].add(delta[:m]),
          "class_shift": params["class_shift"].at[idx].add(delta[m:])}


def searched(params, mask: np.ndarray) -> jax.Array:
  """The searched entries [2 M] of ``params`` (log-spreads, then shifts)."""
  idx = np.nonzero(mask)
  return jnp.concatenate([params["log_spread"][idx],
                          params["class_shift"][idx]])


def with_searched(params, values: jax.Array, mask: np.ndarray):
  """``params`` with its searched entries set to ``values`` [2 M]."""
  idx, m = np.nonzero(mask), int(mask.sum())
  return {**params,
          "log_spread": params["log_spread"].at[idx].set(values[:m]),
          "class_shift": params["class_shift"].at[idx].set(values[m:])}


def perturbation_scale(params, base: jax.Array, mask: np.ndarray,
                       relative_shift: bool) -> jax.Array:
  """[2M] scale of the searched coordinates: ``base`` (log_sigma on the
  log-spreads, sigma on the shifts); with ``relative_shift``, each shift's
  times its attribute's current spread factor exp(log_spread)."""
  if not relative_shift:
    return base
  m = int(mask.sum())
  spread = jnp.exp(params["log_spread"][np.nonzero(mask)])
  return base * jnp.concatenate([jnp.ones(m), spread])


def centred_ranks(r: jax.Array) -> jax.Array:
  """Ranks of ``r`` mapped to [-0.5, 0.5] (ties broken by position)."""
  ranks = jnp.argsort(jnp.argsort(r)).astype(jnp.float32)
  return ranks / jnp.maximum(r.shape[0] - 1, 1) - 0.5


def antithetic_gradient(r_plus: jax.Array, r_minus: jax.Array,
                        eps: jax.Array, sigma: jax.Array,
                        normalise: str = "none") -> jax.Array:
  """Estimate [n] of the gradient of E R(theta + sigma eps) from rewards
  [P] at theta + sigma eps_i and theta - sigma eps_i, eps [P, n]; sigma
  [n] (or a scalar) is the perturbation scale of each coordinate."""
  if normalise not in NORMALISE:
    raise ValueError(f"unknown reward normalisation {normalise!r}; valid: "
                     f"{NORMALISE}")
  p = r_plus.shape[0]
  r = jnp.concatenate([r_plus, r_minus])
  if normalise == "rank":
    r = centred_ranks(r)
  elif normalise == "std":
    r = (r - r.mean()) / jnp.maximum(r.std(), 1e-8)
  diff = r[:p] - r[p:]
  return (diff[:, None] * eps).sum(0) / (2.0 * p * sigma)


def labelled_images(pipe: Pipeline, params, scene, pools):
  """(images, task labels) of ``scene`` under the generator ``params``."""
  drawn = pipe.transform(params, scene)
  renders = pipe.render(drawn, pools)
  return renders.image, pipe.task.targets(drawn, renders)


def population_scores(pipe: Pipeline, task_params, val: LabeledSet,
                      vmap: bool):
  """V's scores of a stacked population of task nets: vmapped, or one
  after another (``vmap=False``)."""
  score = lambda tp: pipe.score(tp, val)
  return (jax.vmap(score)(task_params) if vmap
          else jax.lax.map(score, task_params))


def step_keys(key: jax.Array, step, fixed_task_init: bool):
  """(scene, eps, task, mmd) keys of meta-step ``step`` of a stage whose
  state key is ``key``; with ``fixed_task_init`` every step's task nets
  start from one initialisation (common random numbers across steps)."""
  k_steps, k_fixed = jax.random.split(key)
  k_scene, k_eps, k_task, k_mmd = jax.random.split(
      jax.random.fold_in(k_steps, step), 4)
  if fixed_task_init:
    k_task = k_fixed
  return k_scene, k_eps, k_task, k_mmd


def decay_factor(step, decay_steps: int, decay_start: float = 0.0):
  """1 until the fraction ``decay_start`` of ``decay_steps`` meta-steps,
  then down to 0 by a cosine at ``decay_steps`` (always 1 if
  ``decay_steps`` is 0)."""
  if not decay_steps:
    return jnp.ones(())
  start = decay_start * decay_steps
  frac = jnp.clip((step - start) / (decay_steps - start), 0.0, 1.0)
  return 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def make_es_step(pipe: Pipeline, tx, task_tx, *, pairs: int, sigma: float,
                 log_sigma: float, num_scenes: int, inner_steps: int,
                 inner_batch: int, task_weight: float, mmd_weight: float,
                 reward: str, normalise: str, fixed_task_init: bool,
                 decay_steps: int = 0, sigma_floor: float = 1.0,
                 decay_start: float = 0.0, vmap: bool = True,
                 warm_steps: int = 0, coarse_starts: int = 1,
                 coarse_spread: float = 0.0, coarse_contract: float = 1.0,
                 coarse_fit: str = "best", relative_shift: bool = False,
                 attributes: Sequence[str] = ()):
  """The ``es`` estimator's meta-step: (state, pools, feat_params, target,
  val) -> (state, metrics), like ``steps.make_task_step``.

  ``sigma`` perturbs the shifts (prior standard deviations), ``log_sigma``
  the log-scales of the spread.  With ``decay_steps`` > 0 the searched
  parameters' steps shrink by a cosine to 0 over that many meta-steps (the
  search settles instead of circling the optimum at full step size),
  starting after the fraction ``decay_start`` of them (full steps until
  then: the search must first travel to the optimum), and
  the perturbations by the same cosine down to ``sigma_floor`` x their
  size (1: fixed), so that the smoothing of the reward narrows as well:
  the optimum of the reward smoothed at a large sigma is biased where the
  reward is asymmetric about its peak.
  ``warm_steps`` > 0: every member starts from one task net trained that
  many steps on the unperturbed generator's data of the same scenes (a
  fresh optimiser state on its weights) instead of from scratch, so that
  the reward measures what the data teaches a net that already does the
  task, not what a net learns first from scratch (on Aerial2D, U-Nets
  trained from scratch for 300 steps preferred *wider* car placement than
  the target's; fine-tuned ones a narrower offset spread:
  ``benchmarks/aerial_es_pairs.py``).  It costs one more training a step.
  ``relative_shift``: the shifts are perturbed and stepped in units of
  their attribute's current spread (``sigma`` x exp(log-spread) prior
  standard deviations, ``perturbation_scale``), not of the prior's: once
  a spread has shrunk (a car's heading contracted to a tenth by the coarse
  start), a shift of half the prior's spread (52 degrees for a uniform
  heading) moves the whole distribution off its peak, and each step's
  noise moves its centre by degrees.
  ``coarse_starts`` > 1: ``step.coarse_start(state, pools, val)`` picks the
  stage's start among that many candidates (module docstring; with
  ``coarse_contract`` < 1, concentrated ones); the stage calls it once,
  before its first step.  ``coarse_fit="harmonic"``: the start is not the
  best-scored candidate but the peak of a smooth curve fitted to all the
  candidates' rewards over their heading (module docstring).
  ``attributes`` ("class.attribute" names; empty: all): the search (and
  the coarse start's turns and contraction) moves only these, e.g. those
  a task needs and MMD cannot see; the others stay where the stage found
  them instead of wandering with the noise of a reward blind to them.
  A name with ":spread" or ":shift" perturbs only that part of the
  attribute (``search_parts``; the coarse start still turns and contracts
  the attribute as a whole).
  Three jitted programs: generate the 2P
  datasets, train their task networks (a host loop of the vmapped update;
  ``vmap=False``: of the single-net update, member after member, and
  scored one after another, the fast choice for a U-Net on a CPU:
  ``tasknet.PopulationTrainer``), score them on V and update the generator (plus ``mmd_weight`` x the MMD
  gradient, as in Algorithm 1's optional term).
  """
  steps.check_reward(reward)
  mask = search_mask(pipe.prior, attributes)
  active = jnp.asarray(search_parts(pipe.prior, attributes))
  m = int(mask.sum())
  if m == 0:
    raise ValueError("the es estimator needs a mutable continuous or angle "
                     "attribute")
  if pairs < 1:
    raise ValueError(f"es needs pairs >= 1, got {pairs}")
  if warm_steps < 0:
    raise ValueError(f"es needs warm_steps >= 0, got {warm_steps}")
  if coarse_starts < 1:
    raise ValueError(f"es needs coarse_starts >= 1, got {coarse_starts}")
  if not 0.0 < coarse_contract <= 1.0:
    raise ValueError(f"es needs 0 < coarse_contract <= 1, got "
                     f"{coarse_contract}")
  scale = jnp.asarray(np.concatenate([np.full(m, log_sigma, np.float32),
                                      np.full(m, sigma, np.float32)]))
  if not 0.0 < sigma_floor <= 1.0:
    raise ValueError(f"es needs 0 < sigma_floor <= 1, got {sigma_floor}")
  if not 0.0 <= decay_start < 1.0:
    raise ValueError(f"es needs 0 <= decay_start < 1, got {decay_start}")
  size = 2 * pairs

  def scale_of(params):
    """The coordinates' scale [2M] (``perturbation_scale``)."""
    return perturbation_scale(params, scale, mask, relative_shift)

  def sigma_at(step, params):
    """The perturbations' scale [2M] at meta-step ``step``."""
    return scale_of(params) * (sigma_floor + (1.0 - sigma_floor) *
                               decay_factor(step, decay_steps, decay_start))

  def keys(state: MetaSimState):
    return step_keys(state.key, state.step, fixed_task_init)

  @jax.jit
  def generate(state: MetaSimState, pools):
    """(eps [P, 2M], images [2P, S, ...], labels [2P, S, ...], task key);
    with ``warm_steps``, a last [2P + 1]-th dataset, unperturbed."""
    k_scene, k_eps, k_task, _ = keys(state)
    params = jax.tree.map(lambda x: x[0], state.params)
    eps = jax.random.normal(k_eps, (pairs, 2 * m)) * active
    deltas = jnp.concatenate([eps, -eps]) * sigma_at(state.step, params)
    if warm_steps:
      deltas = jnp.concatenate([deltas, jnp.zeros((1, 2 * m))])
    scene = grammar_lib.sample(k_scene, pipe.prior, num_scenes, pools)

    images, labels = jax.vmap(lambda d: labelled_images(
        pipe, perturbed(params, d, mask), scene, pools))(deltas)
    return eps, images, labels, k_task

  def batch_fn(k, images, labels):
    idx = jax.random.randint(k, (inner_batch,), 0, num_scenes)
    return images[idx], labels[idx]

  trainer = tasknet_lib.PopulationTrainer(pipe.tasknet, pipe.task.loss,
                                          task_tx, batch_fn, inner_steps,
                                          pipe.input_shape, vmap=vmap)
  warm = (tasknet_lib.PopulationTrainer(pipe.tasknet, pipe.task.loss,
                                        task_tx, batch_fn, warm_steps,
                                        pipe.input_shape, vmap=False)
          if warm_steps else None)

  @functools.partial(jax.jit, donate_argnums=0)
  def update(state: MetaSimState, eps, task_params, pools, feat_params,
             target: MMDTarget, val: LabeledSet):
    _, _, _, k_mmd = keys(state)
    params = jax.tree.map(lambda x: x[0], state.params)
    opt_state = jax.tree.map(lambda x: x[0], state.opt_state)
    coord = scale_of(params)
    scores = population_scores(pipe, task_params, val, vmap)
    r = steps.reward_of(scores, reward, pipe.headline)
    g = antithetic_gradient(r[:pairs], r[pairs:], eps,
                            sigma_at(state.step, params), normalise)
    if "class_shift" not in params:
      raise ValueError("the es estimator searches the transformer's affine "
                       "parameters: set config.transformer.affine=True")
    # The optimiser works in units of the perturbation, z = theta / sigma
    # on the searched coordinates (d/dz = sigma d/dtheta; theta moves by
    # sigma x z's step): one learning rate serves shifts and log-spreads.
    grads = jax.tree.map(jnp.zeros_like, params)
    mmd = jnp.zeros(())
    if mmd_weight:
      mmd, g_mmd = jax.value_and_grad(pipe.mmd_loss)(params, k_mmd, pools,
                                                     feat_params, target)
      grads = jax.tree.map(lambda c: mmd_weight * c, g_mmd)
    descent = searched(grads, mask) - task_weight * g  # ascent on R
    grads = with_searched(grads, coord * descent, mask)
    updates, opt_state = tx.update(grads, opt_state, params)
    step_size = coord * decay_factor(state.step, decay_steps, decay_start)
    updates = with_searched(updates, step_size * searched(updates, mask), mask)
    params = optax.apply_updates(params, updates)
    state = state.replace(
        params=jax.tree.map(lambda x: x[None], params),
        opt_state=jax.tree.map(lambda x: x[None], opt_state),
        step=state.step + 1)
    return state, {"reward": r.mean(), "best": r.max(), "worst": r.min(),
                   "val_score": scores[pipe.headline].mean(),
                   "val_loss": scores["loss"].mean(),
                   "grad_norm": jnp.linalg.norm(g), "mmd2": mmd}

  def step(state: MetaSimState, pools, feat_params, target: MMDTarget,
           val: LabeledSet):
    eps, images, labels, k_task = generate(state, pools)
    start = None
    if warm is not None:
      base, _ = warm.run(k_task, 1, images[size:], labels[size:])
      base = jax.tree.map(lambda a: a[0], base)
      start = (base, task_tx.init(base))
      images, labels = images[:size], labels[:size]
    task_params, _ = trainer.run(k_task, size, images, labels, start=start)
    return update(state, eps, task_params, pools, feat_params, target, val)

  # For tests and benchmarks.
  step.generate, step.trainer, step.warm = generate, trainer, warm
  step.coarse_start = (
      _coarse_start(pipe, trainer, coarse_starts, coarse_spread,
                    coarse_contract, coarse_fit, mask, num_scenes, reward,
                    fixed_task_init, vmap)
      if coarse_starts > 1 else None)
  return step


def contracted(params, mask: np.ndarray, grammar: Grammar, factor):
  """``params`` with the spread of every searched angle (``mask``'s
  (class, attribute) pairs of angle kind) times ``factor``."""
  angle = mask & np.array([k == "angle" for k in grammar.attr_kinds])[None]
  return {**params, "log_spread": params["log_spread"]
          + jnp.where(angle, jnp.log(factor), 0.0)}


COARSE_FITS = ("best", "harmonic")
# The harmonic fit's order: the first harmonic finds a heading, the second
# lets front and back look alike (two peaks half a turn apart).
HARMONICS = 2


def class_offsets(params, grammar: Grammar, offsets, columns: Sequence[int],
                  mask: np.ndarray):
  """``params`` with ``offsets`` (head units, as ``starts.start_offsets``
  draws them: normalised for continuous columns, angle / 180) added to the
  class shift of the searched classes only (``mask`` [classes, A]): the
  same turn of a car's heading as the head's bias gives
  (``transformer.with_offsets``), but the head's column is every class's,
  and a road whose heading an earlier stage learned would turn with it."""
  ids = encoding.class_ids(grammar)
  shift = params["class_shift"]
  for off, j in zip(offsets, columns):
    for c in np.flatnonzero(mask[:, j]):
      slot = int(np.flatnonzero(ids == c)[0])
      spread = float(grammar.spread[slot, j])
      if grammar.attr_kinds[j] == "angle":  # apply_head's angle units
        unit = (spread if spread > 0 else 180.0) / 180.0
      else:
        lo, hi = float(grammar.low[slot, j]), float(grammar.high[slot, j])
        unit = 2.0 * spread / (hi - lo) if spread > 0 else 1.0
      shift = shift.at[c, j].add(off / unit)
  return {**params, "class_shift": shift}


def _coarse_start(pipe: Pipeline, trainer, num: int, spread: float,
                  contract: float, fit: str, mask: np.ndarray,
                  num_scenes: int, reward: str, fixed_task_init: bool,
                  vmap: bool):
  """(state, pools, val) -> (state, rewards [K], offsets [K, C], best,
  chosen [C]): the stage's first state moved to the chosen one of K
  candidate starts (module docstring), each scored by one task net trained
  as a step's members are; ``best`` the best-scored candidate, ``chosen``
  the offsets applied (``best``'s, or with ``fit="harmonic"`` the searched
  angle at the peak of the rewards' fit)."""
  cols = [j for j in starts_lib.offset_columns(pipe.prior) if mask[:, j].any()]
  angles = [i for i, j in enumerate(cols)
            if pipe.prior.attr_kinds[j] == "angle"]
  # Candidate 0 is the generator as it is; the others contracted (or not).
  factors = np.where(np.arange(num) == 0, 1.0, contract).astype(np.float32)
  # The fit runs over the candidates alike in spread (all but candidate 0
  # when they are contracted).
  fitted = np.arange(num) >= (1 if contract < 1.0 else 0)
  if fit not in COARSE_FITS:
    raise ValueError(f"unknown coarse_fit {fit!r}; expected one of "
                     f"{COARSE_FITS}")
  if fit == "harmonic":
    if len(angles) != 1:
      raise ValueError(f"coarse_fit='harmonic' fits one searched angle, "
                       f"the candidates turn {len(angles)}: choose one "
                       f"with task.es.attributes")
    if fitted.sum() < 2 * HARMONICS + 1:
      raise ValueError(f"coarse_fit='harmonic' needs at least "
                       f"{2 * HARMONICS + 1} candidates alike in spread, got "
                       f"{int(fitted.sum())}: raise coarse_starts")

  def candidate(params, offsets, factor):
    return class_offsets(contracted(params, mask, pipe.prior, factor),
                         pipe.prior, offsets, cols, mask)

  @jax.jit
  def generate(params, offsets, key, pools):
    scene = grammar_lib.sample(key, pipe.prior, num_scenes, pools)

    return jax.vmap(lambda o, f: labelled_images(
        pipe, candidate(params, o, f), scene, pools))(offsets, factors)

  @jax.jit
  def rewards(task_params, val: LabeledSet):
    return steps.reward_of(population_scores(pipe, task_params, val, vmap),
                           reward, pipe.headline)

  def choose(state: MetaSimState, pools, val: LabeledSet):
    k_scene, k_offsets, k_task, _ = step_keys(state.key, COARSE_STEP,
                                               fixed_task_init)
    _, all_offsets = starts_lib.start_offsets(k_offsets, pipe.prior, num,
                                              spread)
    every = starts_lib.offset_columns(pipe.prior)
    offsets = all_offsets[:, [every.index(j) for j in cols]]
    params = jax.tree.map(lambda x: x[0], state.params)
    images, labels = generate(params, jnp.asarray(offsets), k_scene, pools)
    task_params, _ = trainer.run(k_task, num, images, labels)
    r = np.asarray(rewards(task_params, val))
    best = int(np.argmax(r))
    chosen, factor = offsets[best].copy(), factors[best]
    if fit == "harmonic":
      a = angles[0]
      peak, value = harmonic_peak(np.pi * offsets[fitted, a], r[fitted],
                                  HARMONICS)
      if value >= r[~fitted].max(initial=-np.inf):
        ranked = np.flatnonzero(fitted)[np.argmax(r[fitted])]
        chosen, factor = offsets[ranked].copy(), factors[ranked]
        chosen[a] = peak / np.pi
    new = candidate(params, jnp.asarray(chosen), factor)
    return (state.replace(params=jax.tree.map(lambda x: x[None], new)),
            r, offsets, best, chosen)

  return choose
