"""The generator's training schedule: which attribute groups each stage
trains and with which objective (paper Sec. 4.3: the cars first, then
+ the camera, then + the context, with MMD; then the task loss).

``config.schedule`` is a string of ``;``-separated stages, each
``GROUPS:OBJECTIVE[:STEPS]``: GROUPS is ``all`` or group names of the
grammar (``"group"`` of its mutable attributes) joined by ``+``; OBJECTIVE
is ``mmd`` (distribution matching, ``config.mmd``) or ``task`` (the task
meta-objective, ``config.task``); STEPS overrides ``mmd.steps`` /
``task.steps`` for that stage.  Example (the driving experiment)::

  cars:mmd:60; cars+camera:mmd:80; cars+camera+context:mmd:160

The empty string is the one-stage-per-objective schedule of the MNIST and
Aerial2D experiments: every mutable attribute, MMD (``mmd.steps``, if
``mmd.weight``) then the task loss (``task.steps``, if ``task.weight``).
Every stage of an explicit schedule is evaluated (a row of the results
table); the last one is the run's "metasim" result.
"""

from __future__ import annotations

import dataclasses

from metasim_jax.grammar.spec import Grammar

OBJECTIVES = ("mmd", "task")


@dataclasses.dataclass(frozen=True)
class StageSpec:
  """One generator-training stage.

  Attributes:
    name: checkpoint / TensorBoard name ("mmd", "task" in the default
      schedule; "s1_mmd", "s2_mmd", ... in an explicit one).
    label: its row in the results ("cars", "+camera", "+task loss").
    groups: the grammar groups it trains; None for every mutable
      attribute ("all", and the default schedule).
    objective: "mmd" or "task".
    steps: its number of steps, or None for the objective's config value.
  """
  name: str
  label: str
  groups: tuple[str, ...] | None
  objective: str
  steps: int | None = None


def parse(text: str, grammar: Grammar, *, mmd: bool = True,
          task: bool = True) -> tuple[StageSpec, ...]:
  """``config.schedule`` -> stages; raises ``ValueError`` naming a bad
  stage, unknown group or objective.  ``mmd``/``task``: whether the
  default schedule has that stage (its weight and steps are non-zero)."""
  everything = grammar.groups
  if not text.strip():
    return tuple(StageSpec(o, "Meta-Sim", None, o)
                 for o, on in (("mmd", mmd), ("task", task)) if on)
  stages, previous = [], None
  for i, part in enumerate(p.strip() for p in text.split(";")):
    where = f"config.schedule stage {i + 1} ({part!r})"
    groups_text, sep, objective = part.partition(":")
    if not sep or not groups_text.strip():
      raise ValueError(f"{where}: expected GROUPS:OBJECTIVE[:STEPS], e.g. "
                       "'cars+camera:mmd' or 'cars:mmd:60'")
    objective, _, steps_text = objective.partition(":")
    objective, steps = objective.strip(), None
    if steps_text.strip():
      try:
        steps = int(steps_text)
      except ValueError:
        steps = -1
      if steps < 0:
        raise ValueError(f"{where}: STEPS {steps_text.strip()!r} is not a "
                         "count >= 0")
    if objective not in OBJECTIVES:
      raise ValueError(f"{where}: objective {objective!r} is not one of "
                       f"{OBJECTIVES}")
    names = [g.strip() for g in groups_text.split("+")]
    if names == ["all"]:
      groups = None
    else:
      if not everything:
        raise ValueError(f"{where}: the grammar's mutable attributes have "
                         "no groups; use 'all'")
      unknown = sorted(set(names) - set(everything))
      if unknown or len(set(names)) != len(names):
        raise ValueError(f"{where}: groups {names} are not distinct names "
                         f"of the grammar's groups {list(everything)}")
      groups = tuple(sorted(names))
    label = _label(previous, groups, everything, objective)
    if label in [s.label for s in stages]:
      label = f"{label} ({i + 1})"
    stages.append(StageSpec(f"s{i + 1}_{objective}", label, groups,
                            objective, steps))
    previous = dataclasses.replace(
        stages[-1], groups=groups if groups is not None else everything)
  return tuple(stages)


def _label(previous: StageSpec | None, groups, everything,
           objective: str) -> str:
  """The paper's row names: the first stage's groups ("all" for every
  mutable attribute), then what each stage adds ("+camera"), or "+task
  loss" when only the objective changes."""
  if previous is None:
    text = "all" if groups is None else "+".join(groups)
    return text if objective == "mmd" else f"{text} (task loss)"
  else:
    added = [g for g in (everything if groups is None else groups)
             if g not in previous.groups]
    text = "+" + "+".join(added) if added else ""
    if objective != previous.objective:
      text += (" " if text else "+") + ("task loss" if objective == "task"
                                        else "MMD")
  return text or "+more steps"


def learned_before(stages: tuple[StageSpec, ...],
                   grammar: Grammar) -> list[tuple[str, ...]]:
  """For each stage, the groups the stages before it trained (what it
  keeps as learned, ``Pipeline.for_groups(..., learned=...)``)."""
  out, learned = [], []
  for spec in stages:
    out.append(tuple(learned))
    learned += [g for g in (grammar.groups if spec.groups is None
                            else spec.groups) if g not in learned]
  return out
