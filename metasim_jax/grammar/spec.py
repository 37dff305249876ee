"""Declarative probabilistic scene grammar: parsing, validation, static tables.

A grammar is plain data (a dict, e.g. from a config file)::

    {
      "root": "scene",
      "classes": {
        "scene": {"children": [["background", 1], ["digit", 1]]},
        "background": {"render": "fill", "color": [0.0]},
        "digit": {
          "render": "texture", "pool": "digits", "semantic": "digit",
          "attributes": {
            "class": {"kind": "categorical", "num": 10,
                      "dist": {"type": "categorical"}},
            "texture": {"kind": "index", "dist": {"type": "pool"}},
            "x": {"kind": "continuous", "range": [0, 32], "mutable": True,
                  "dist": {"type": "gaussian", "mean": 16, "std": 1}},
            "yaw": {"kind": "angle", "mutable": True,
                    "dist": {"type": "gaussian", "mean": 0, "std": 10}},
          },
        },
      },
    }

Children are ``[class, count]`` with ``count`` an int or ``[min, max]`` (the
number of instances is then uniform in that range; slots up to ``max`` exist
and carry a mask).  Attributes of a child (``x``, ``y``, ``yaw``, ``scale``)
are relative to its parent's frame; the renderer composes them.

Render kinds: ``none``, ``fill`` (a background colour), ``texture`` (a
sprite from a texture pool; the 2D rasterizer), and for 3D worlds drawn by
an external renderer (``metasim_jax/render/bridge.py``): ``mesh`` (one of
the class's ``assets``; ``"object": true`` measures its box, truncation and
occlusion) and ``camera``.

``compile_grammar`` expands the class tree into a fixed list of *slots*
(pre-order, so every parent precedes its children) and builds the static
tables used by the sampler, the encoder and the renderer.  Errors name the
offending field, e.g. ``classes.digit.attributes.x.range``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import numpy as np

ATTR_KINDS = ("continuous", "angle", "categorical", "index")
DIST_TYPES = ("deterministic", "gaussian", "uniform", "categorical", "pool")
RENDER_KINDS = ("none", "fill", "texture", "mesh", "camera")
# Distribution codes used in the sampler's tables.
DET, GAUSS, UNIF, CAT, POOL = range(5)
# Attributes the renderer understands, with the value used where absent.
GEOMETRY_DEFAULTS = {"x": 0.0, "y": 0.0, "yaw": 0.0, "scale": 1.0}


class GrammarError(ValueError):
  """A grammar is malformed; the message names the offending field."""


@dataclasses.dataclass(frozen=True)
class AttrDef:
  """One attribute of one node class."""
  name: str
  kind: str
  dist: str
  params: tuple[float, ...]  # (value,), (mean, std), (low, high) or probs
  low: float
  high: float
  num: int  # number of categories (categorical only)
  mutable: bool
  fd_step: float  # finite-difference step in natural units
  group: str | None = None  # training stage group, e.g. "cars" (mutable only)


@dataclasses.dataclass(frozen=True)
class ClassDef:
  name: str
  render: str
  pool: str | None
  semantic: str | None
  color: tuple[float, ...]
  attrs: tuple[AttrDef, ...]
  children: tuple[tuple[str, int, int], ...]  # (class, min_count, max_count)
  # "mesh" nodes (3D, drawn by an external renderer): the renderer's asset
  # ids this class chooses from (attribute "model" indexes them), and
  # whether its nodes are objects (boxes, truncation, occlusion measured).
  assets: tuple[str, ...] = ()
  object: bool = False


@dataclasses.dataclass(frozen=True)
class Slot:
  """One node position in the fixed-capacity scene graph."""
  path: str       # e.g. "scene/road[0]/car[1]"
  cls: str
  parent: int     # -1 for the root
  group: int      # slots sharing one count draw share a group id
  rank: int       # index within its group
  min_count: int
  max_count: int


@dataclasses.dataclass(frozen=True, eq=False)
class Grammar:
  """A compiled grammar: slots plus static [num_slots, num_attrs] tables.

  Hashing is by identity, so a Grammar can be a static jit argument.

  Attributes:
    classes: class name -> ClassDef.
    slots: pre-order tuple of Slot.
    attr_names: global attribute columns (union over classes).
    attr_kinds: kind of each column (the same for every class).
    has_attr: [N, A] bool, slot n has attribute a.
    mutable: [N, A] bool, the transformer may change it.
    low, high: [N, A] float32 ranges (continuous; angles use -180..180).
    dist: [N, A] int32 distribution code; p0, p1: [N, A] float32 params.
    cat_probs: [N, A, K] float32 categorical probabilities.
    num_cats: [A] int32 categories per categorical column (0 otherwise).
    fd_step: [N, A] float32 finite-difference steps (0 = not perturbed).
    depth: depth of the slot tree (root = 0).
  """
  raw: Mapping[str, Any]
  classes: Mapping[str, ClassDef]
  slots: tuple[Slot, ...]
  attr_names: tuple[str, ...]
  attr_kinds: tuple[str, ...]
  has_attr: np.ndarray
  mutable: np.ndarray
  low: np.ndarray
  high: np.ndarray
  dist: np.ndarray
  p0: np.ndarray
  p1: np.ndarray
  cat_probs: np.ndarray
  num_cats: np.ndarray
  fd_step: np.ndarray
  depth: int

  @property
  def num_slots(self) -> int:
    return len(self.slots)

  @property
  def num_attrs(self) -> int:
    return len(self.attr_names)

  @property
  def parents(self) -> np.ndarray:
    return np.array([s.parent for s in self.slots], np.int32)

  @property
  def edges(self) -> tuple[np.ndarray, np.ndarray]:
    """(senders, receivers) of the parent->child edges."""
    kids = [i for i, s in enumerate(self.slots) if s.parent >= 0]
    return (np.array([self.slots[i].parent for i in kids], np.int32),
            np.array(kids, np.int32))

  @functools.cached_property
  def centre(self) -> np.ndarray:
    """[N, A] float32 centre of each attribute's prior distribution: the
    mean (gaussian), the midpoint (uniform), the value (deterministic); 0
    for categorical and pool attributes."""
    mid = np.select([self.dist == GAUSS, self.dist == UNIF,
                     self.dist == DET],
                    [self.p0, 0.5 * (self.p0 + self.p1), self.p0], 0.0)
    return mid.astype(np.float32)

  @functools.cached_property
  def spread(self) -> np.ndarray:
    """[N, A] float32 standard deviation of each attribute's prior
    distribution: the std (gaussian), width / sqrt(12) (uniform); 0 for
    deterministic, categorical and pool attributes."""
    std = np.select([self.dist == GAUSS, self.dist == UNIF],
                    [self.p1, (self.p1 - self.p0) / np.sqrt(12.0)], 0.0)
    return std.astype(np.float32)

  def col(self, name: str) -> int:
    """Column of attribute ``name``; raises KeyError naming valid ones."""
    try:
      return self.attr_names.index(name)
    except ValueError:
      raise KeyError(f"unknown attribute {name!r}; grammar has "
                     f"{list(self.attr_names)}") from None

  def slots_of(self, cls: str) -> np.ndarray:
    return np.array([i for i, s in enumerate(self.slots) if s.cls == cls],
                    np.int32)

  def slot(self, path: str) -> int:
    for i, s in enumerate(self.slots):
      if s.path == path:
        return i
    raise KeyError(f"unknown slot {path!r}; slots are "
                   f"{[s.path for s in self.slots]}")

  @property
  def groups(self) -> tuple[str, ...]:
    """Training groups of the mutable attributes, sorted (e.g. the driving
    grammar's "camera", "cars", "context")."""
    return tuple(sorted({a.group for c in self.classes.values()
                         for a in c.attrs if a.group}))

  def with_mutable_groups(self, groups) -> "Grammar":
    """A grammar whose mutable attributes are those of ``groups`` only (a
    training stage: e.g. the cars first, then the camera); the others keep
    their distributions and become fixed.  Raises GrammarError naming an
    unknown group, or an attribute that is mutable without a group."""
    groups = set(groups)
    unknown = sorted(groups - set(self.groups))
    _need(not unknown, "groups", f"unknown groups {unknown}; the grammar has "
          f"{list(self.groups)}")
    raw = _deep_copy(self.raw)
    for name, c in raw["classes"].items():
      for a, d in c.get("attributes", {}).items():
        if d.get("mutable"):
          _need("group" in d, f"classes.{name}.attributes.{a}.group",
                "a grammar trained in stages needs a group on every "
                "mutable attribute")
          d["mutable"] = d["group"] in groups
          if not d["mutable"]:
            del d["group"]
    return compile_grammar(raw)

  def pool_of(self, cls: str, pools: Mapping[str, Any]):
    """The texture pool that class ``cls`` draws from, out of ``pools``;
    raises KeyError naming the pool and the pools given."""
    name = self.classes[cls].pool
    if name not in pools:
      raise KeyError(f"class {cls!r} draws from texture pool {name!r}, "
                     f"which was not given; pools: {sorted(pools)}")
    return pools[name]

  def replace_params(self, overrides: Mapping[str, Any]) -> "Grammar":
    """A new grammar with some fields changed, e.g. a target's parameters.

    ``overrides`` maps dotted paths to values, e.g.
    ``{"classes.digit.attributes.yaw.dist.mean": 90.0}``.
    """
    raw = _deep_copy(self.raw)
    for path, value in overrides.items():
      node = raw
      keys = path.split(".")
      for k in keys[:-1]:
        if not isinstance(node, dict) or k not in node:
          raise GrammarError(f"override {path!r}: no field {k!r}")
        node = node[k]
      node[keys[-1]] = value
    return compile_grammar(raw)


def _deep_copy(x):
  if isinstance(x, Mapping):
    return {k: _deep_copy(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_deep_copy(v) for v in x]
  return x


def _need(cond: bool, where: str, msg: str):
  if not cond:
    raise GrammarError(f"{where}: {msg}")


def _number(x, where: str) -> float:
  _need(isinstance(x, (int, float)) and not isinstance(x, bool)
        and np.isfinite(x), where, f"expected a finite number, got {x!r}")
  return float(x)


_ATTR_KEYS = {"kind", "dist", "range", "num", "mutable", "fd_step", "group"}
_CLASS_KEYS = {"render", "pool", "semantic", "color", "attributes", "children",
               "assets", "object"}


def _parse_attr(name: str, d: Mapping[str, Any], where: str) -> AttrDef:
  _need(isinstance(d, Mapping), where, "expected a mapping")
  extra = set(d) - _ATTR_KEYS
  _need(not extra, f"{where}.{sorted(extra)[0]}" if extra else where,
        f"unknown field; valid fields are {sorted(_ATTR_KEYS)}")
  kind = d.get("kind")
  _need(kind in ATTR_KINDS, f"{where}.kind",
        f"{kind!r} is not one of {ATTR_KINDS}")
  num = 0
  if kind == "categorical":
    num = d.get("num")
    _need(isinstance(num, int) and num >= 2, f"{where}.num",
          f"categorical needs an int num >= 2, got {num!r}")
  if kind == "continuous":
    rng = d.get("range")
    _need(isinstance(rng, (list, tuple)) and len(rng) == 2, f"{where}.range",
          f"continuous needs range [low, high], got {rng!r}")
    low, high = (_number(v, f"{where}.range") for v in rng)
    _need(low < high, f"{where}.range", f"low {low} must be < high {high}")
  elif kind == "angle":
    low, high = -180.0, 180.0
  else:
    low, high = 0.0, float(max(num, 1))
  dist = d.get("dist")
  _need(isinstance(dist, Mapping), f"{where}.dist",
        "expected a mapping with a 'type'")
  dtype = dist.get("type")
  _need(dtype in DIST_TYPES, f"{where}.dist.type",
        f"{dtype!r} is not one of {DIST_TYPES}")
  w = f"{where}.dist"
  if dtype == "deterministic":
    params = (_number(dist.get("value"), f"{w}.value"),)
  elif dtype == "gaussian":
    std = _number(dist.get("std"), f"{w}.std")
    _need(std >= 0, f"{w}.std", f"must be >= 0, got {std}")
    params = (_number(dist.get("mean"), f"{w}.mean"), std)
  elif dtype == "uniform":
    lo, hi = _number(dist.get("low"), f"{w}.low"), _number(
        dist.get("high"), f"{w}.high")
    _need(lo <= hi, f"{w}.low", f"low {lo} must be <= high {hi}")
    params = (lo, hi)
  elif dtype == "categorical":
    _need(kind == "categorical", f"{w}.type",
          f"a categorical distribution needs kind 'categorical', not {kind!r}")
    probs = dist.get("probs", [1.0 / num] * num)
    _need(isinstance(probs, (list, tuple)) and len(probs) == num,
          f"{w}.probs", f"expected {num} probabilities")
    probs = tuple(_number(p, f"{w}.probs") for p in probs)
    _need(min(probs) >= 0 and abs(sum(probs) - 1) < 1e-6, f"{w}.probs",
          f"must be >= 0 and sum to 1, got {probs}")
    params = probs
  else:  # pool
    _need(kind == "index", f"{w}.type",
          f"a pool distribution needs kind 'index', not {kind!r}")
    params = ()
  if kind in ("categorical", "index"):
    _need(dtype in ("categorical", "pool", "deterministic"), f"{w}.type",
          f"{dtype!r} cannot sample a {kind} attribute")
  if kind == "continuous" and dtype != "deterministic":
    mean = params[0] if dtype == "gaussian" else None
    if mean is not None:
      _need(low <= mean <= high, f"{w}.mean",
            f"{mean} lies outside range [{low}, {high}]")
  mutable = d.get("mutable", False)
  _need(isinstance(mutable, bool), f"{where}.mutable", "expected a bool")
  _need(not (mutable and kind == "index"), f"{where}.mutable",
        "index attributes cannot be mutable")
  if name == "scale":
    _need(low > 0, f"{where}.range", "scale must stay > 0")
  # 1 % of the range (continuous) or 2 degrees (angles) unless given.
  default_step = {"continuous": 0.01 * (high - low),
                  "angle": 2.0}.get(kind, 0.0)
  fd_step = _number(d.get("fd_step", default_step), f"{where}.fd_step")
  _need(fd_step >= 0, f"{where}.fd_step", "must be >= 0")
  group = d.get("group")
  _need(group is None or (isinstance(group, str) and group), f"{where}.group",
        f"expected a group name, got {group!r}")
  _need(group is None or mutable, f"{where}.group",
        "only mutable attributes belong to a training group")
  return AttrDef(name, kind, dtype, params, low, high, num, mutable, fd_step,
                 group)


def _parse_class(name: str, d: Mapping[str, Any], names) -> ClassDef:
  where = f"classes.{name}"
  _need(isinstance(d, Mapping), where, "expected a mapping")
  extra = set(d) - _CLASS_KEYS
  _need(not extra, f"{where}.{sorted(extra)[0]}" if extra else where,
        f"unknown field; valid fields are {sorted(_CLASS_KEYS)}")
  render = d.get("render", "none")
  _need(render in RENDER_KINDS, f"{where}.render",
        f"{render!r} is not one of {RENDER_KINDS}")
  pool = d.get("pool")
  if render == "texture":
    _need(isinstance(pool, str), f"{where}.pool",
          "a texture node needs the name of its texture pool")
  assets = d.get("assets", [])
  _need(isinstance(assets, (list, tuple))
        and all(isinstance(a, str) and a for a in assets), f"{where}.assets",
        f"expected a list of asset ids, got {assets!r}")
  _need(render != "mesh" or assets, f"{where}.assets",
        "a mesh node needs the asset ids it chooses from")
  is_object = d.get("object", False)
  _need(isinstance(is_object, bool), f"{where}.object", "expected a bool")
  attrs_raw = d.get("attributes", {})
  _need(isinstance(attrs_raw, Mapping), f"{where}.attributes",
        "expected a mapping")
  attrs = tuple(_parse_attr(a, v, f"{where}.attributes.{a}")
                for a, v in attrs_raw.items())
  if render == "texture":
    _need("texture" in attrs_raw, f"{where}.attributes.texture",
          "a texture node needs an index attribute 'texture'")
  for a in attrs:
    if a.name in GEOMETRY_DEFAULTS:
      _need(a.kind == ("angle" if a.name == "yaw" else "continuous"),
            f"{where}.attributes.{a.name}.kind",
            f"the renderer reads {a.name!r}; it must be "
            f"{'angle' if a.name == 'yaw' else 'continuous'}")
  color = d.get("color", (0.0,))
  _need(isinstance(color, (list, tuple)) and color, f"{where}.color",
        f"expected a list of channel values, got {color!r}")
  color = tuple(_number(c, f"{where}.color") for c in color)
  semantic = d.get("semantic")
  _need(semantic is None or isinstance(semantic, str), f"{where}.semantic",
        f"expected a name, got {semantic!r}")
  children_raw = d.get("children", [])
  _need(isinstance(children_raw, (list, tuple)), f"{where}.children",
        "expected a list of [class, count]")
  children = []
  for i, ch in enumerate(children_raw):
    w = f"{where}.children[{i}]"
    _need(isinstance(ch, (list, tuple)) and len(ch) == 2, w,
          "expected [class, count]")
    cls, count = ch
    _need(cls in names, w, f"unknown class {cls!r}; classes are {sorted(names)}")
    if isinstance(count, int) and not isinstance(count, bool):
      lo = hi = count
    else:
      _need(isinstance(count, (list, tuple)) and len(count) == 2
            and all(isinstance(c, int) for c in count), w,
            f"count must be an int or [min, max], got {count!r}")
      lo, hi = count
    _need(0 <= lo <= hi and hi >= 1, w, f"bad count {count!r}")
    children.append((cls, lo, hi))
  model = next((a for a in attrs if a.name == "model"), None)
  if render == "mesh" and model is not None:
    _need(model.kind == "categorical" and model.num == len(assets),
          f"{where}.attributes.model",
          f"'model' picks one of the {len(assets)} assets: it must be "
          f"categorical with num {len(assets)}")
  return ClassDef(name, render, pool, semantic, color, attrs,
                  tuple(children), tuple(assets), is_object)


def compile_grammar(raw: Mapping[str, Any]) -> Grammar:
  """Validates a grammar dict and builds its static tables."""
  _need(isinstance(raw, Mapping), "grammar", "expected a mapping")
  extra = set(raw) - {"root", "classes", "description"}
  _need(not extra, f"{sorted(extra)[0]}" if extra else "grammar",
        "unknown top-level field; valid fields are ['classes', "
        "'description', 'root']")
  classes_raw = raw.get("classes")
  _need(isinstance(classes_raw, Mapping) and classes_raw, "classes",
        "expected a non-empty mapping of class name -> definition")
  names = set(classes_raw)
  classes = {n: _parse_class(n, d, names) for n, d in classes_raw.items()}
  root = raw.get("root")
  _need(root in classes, "root", f"{root!r} is not a class; classes are "
        f"{sorted(names)}")

  # Expand the class tree into pre-order slots.
  slots: list[Slot] = []
  groups = [0]

  def expand(cls: str, parent: int, path: str, group: int, rank: int,
             lo: int, hi: int, stack: tuple[str, ...]):
    _need(cls not in stack, f"classes.{cls}.children",
          f"recursive grammar: {' -> '.join(stack + (cls,))}")
    _need(len(slots) < 4096, "classes", "grammar expands to > 4096 slots")
    me = len(slots)
    slots.append(Slot(path, cls, parent, group, rank, lo, hi))
    for child, clo, chi in classes[cls].children:
      groups[0] += 1
      g = groups[0]
      for k in range(chi):
        expand(child, me, f"{path}/{child}[{k}]", g, k, clo, chi,
               stack + (cls,))

  expand(root, -1, root, 0, 0, 1, 1, ())
  reached = {s.cls for s in slots}
  for name in classes:
    _need(name in reached, f"classes.{name}",
          f"not reachable from root {root!r}")

  # Global attribute columns; a name has one kind across classes.
  names_kinds: dict[str, str] = {}
  for c in classes.values():
    for a in c.attrs:
      prev = names_kinds.setdefault(a.name, a.kind)
      _need(prev == a.kind, f"classes.{c.name}.attributes.{a.name}.kind",
            f"{a.kind!r} conflicts with kind {prev!r} used by another class")
  attr_names = tuple(names_kinds)
  attr_kinds = tuple(names_kinds.values())
  n, a = len(slots), len(attr_names)
  kmax = max([ad.num for c in classes.values() for ad in c.attrs] + [1])
  has_attr = np.zeros((n, a), bool)
  mutable = np.zeros((n, a), bool)
  low = np.zeros((n, a), np.float32)
  high = np.ones((n, a), np.float32)
  dist = np.zeros((n, a), np.int32)
  p0 = np.zeros((n, a), np.float32)
  p1 = np.zeros((n, a), np.float32)
  cat_probs = np.zeros((n, a, kmax), np.float32)
  cat_probs[..., 0] = 1.0
  num_cats = np.zeros((a,), np.int32)
  fd_step = np.zeros((n, a), np.float32)
  for i, s in enumerate(slots):
    for ad in classes[s.cls].attrs:
      j = attr_names.index(ad.name)
      if ad.kind == "categorical":
        _need(num_cats[j] in (0, ad.num),
              f"classes.{s.cls}.attributes.{ad.name}.num",
              f"{ad.num} conflicts with {num_cats[j]} used by another class")
        num_cats[j] = ad.num
      has_attr[i, j] = True
      mutable[i, j] = ad.mutable
      low[i, j], high[i, j] = ad.low, ad.high
      dist[i, j] = DIST_TYPES.index(ad.dist)
      if ad.dist == "categorical":
        cat_probs[i, j] = 0.0
        cat_probs[i, j, :ad.num] = ad.params
      elif ad.params:
        p0[i, j] = ad.params[0]
        p1[i, j] = ad.params[1] if len(ad.params) > 1 else 0.0
      fd_step[i, j] = ad.fd_step if ad.mutable and ad.kind in (
          "continuous", "angle") else 0.0
  depth = 0
  for s in slots:
    d, p = 0, s.parent
    while p >= 0:
      d, p = d + 1, slots[p].parent
    depth = max(depth, d)
  return Grammar(raw=_deep_copy(raw), classes=classes, slots=tuple(slots),
                 attr_names=attr_names, attr_kinds=attr_kinds,
                 has_attr=has_attr, mutable=mutable, low=low, high=high,
                 dist=dist, p0=p0, p1=p1, cat_probs=cat_probs,
                 num_cats=num_cats, fd_step=fd_step, depth=depth)
