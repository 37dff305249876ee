"""The asset catalogue: simple meshes made in code, shared by all backends.

Every backend draws exactly these triangles, so that two renderers of one
scene graph agree on ids and boxes and differ in shading only.  Object
frame: x across, y along (the asset faces +y), z up, metres; the origin is
the centre of the asset's base.  A node's ``scale`` multiplies the x, y, z
sizes; its ``color`` replaces the colour of the faces marked ``tinted``
(car bodies, buildings), the other faces keep the asset's own colours.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

_WHEEL = (0.08, 0.08, 0.08)
_GLASS = (0.15, 0.2, 0.25)


@dataclasses.dataclass(frozen=True)
class Mesh:
  """Triangles with one colour per face.

  Attributes:
    vertices: [3 * F, 3] float32, three per face (unshared: flat shading).
    colors: [F, 3] float32 linear RGB.
    tinted: [F] bool, faces whose colour the node's colour replaces.
  """
  vertices: np.ndarray
  colors: np.ndarray
  tinted: np.ndarray

  @property
  def bounds(self) -> np.ndarray:
    """[2, 3] min and max corner of the vertices (object frame)."""
    return np.stack([self.vertices.min(0), self.vertices.max(0)])

  @property
  def normals(self) -> np.ndarray:
    """[F, 3] unit face normals (counter-clockwise faces point outward)."""
    v = self.vertices.reshape(-1, 3, 3)
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return (n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True),
                           1e-12)).astype(np.float32)


def _merge(*parts: Mesh) -> Mesh:
  return Mesh(np.concatenate([p.vertices for p in parts]).astype(np.float32),
              np.concatenate([p.colors for p in parts]).astype(np.float32),
              np.concatenate([p.tinted for p in parts]))


def _faces(quads_or_tris: list, color, tinted: bool) -> Mesh:
  tris = []
  for poly in quads_or_tris:
    for k in range(1, len(poly) - 1):  # fan
      tris.append([poly[0], poly[k], poly[k + 1]])
  tris = np.asarray(tris, np.float32)
  n = len(tris)
  return Mesh(tris.reshape(-1, 3), np.tile(np.float32(color), (n, 1)),
              np.full(n, tinted))


def box(size, centre=(0.0, 0.0, 0.0), color=(0.5, 0.5, 0.5),
        tinted=False, top=True, bottom=True) -> Mesh:
  """An axis-aligned box; ``centre`` is the centre of its base."""
  sx, sy, sz = size[0] / 2, size[1] / 2, size[2]
  cx, cy, cz = centre
  p = lambda i, j, k: (cx + i * sx, cy + j * sy, cz + k * sz)
  faces = [[p(-1, -1, 0), p(1, -1, 0), p(1, -1, 1), p(-1, -1, 1)],  # -y
           [p(1, 1, 0), p(-1, 1, 0), p(-1, 1, 1), p(1, 1, 1)],      # +y
           [p(1, -1, 0), p(1, 1, 0), p(1, 1, 1), p(1, -1, 1)],      # +x
           [p(-1, 1, 0), p(-1, -1, 0), p(-1, -1, 1), p(-1, 1, 1)]]  # -x
  if top:
    faces.append([p(-1, -1, 1), p(1, -1, 1), p(1, 1, 1), p(-1, 1, 1)])
  if bottom:
    faces.append([p(-1, 1, 0), p(1, 1, 0), p(1, -1, 0), p(-1, -1, 0)])
  return _faces(faces, color, tinted)


def frustum(r0: float, r1: float, height: float, centre=(0.0, 0.0, 0.0),
            color=(0.5, 0.5, 0.5), sides: int = 8, axis: str = "z") -> Mesh:
  """A closed cylinder (r0 == r1) or cone frustum along z (or x: wheels)."""
  a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
  ring = lambda r, h: [(r * np.cos(t), r * np.sin(t), h) for t in a]
  lo, hi = ring(r0, 0.0), ring(r1, height)
  faces = [[lo[i], lo[(i + 1) % sides], hi[(i + 1) % sides], hi[i]]
           for i in range(sides)]
  faces.append(lo[::-1])
  if r1 > 0:
    faces.append(hi)
  m = _faces(faces, color, False)
  v = m.vertices
  if axis == "x":  # lying along x, base centre at the origin
    v = np.stack([v[:, 2] - height / 2, v[:, 0], v[:, 1]], -1)
  v = v + np.float32(centre)
  return Mesh(v.astype(np.float32), m.colors, m.tinted)


def quad(size_x: float, size_y: float, z: float = 0.0,
         color=(0.5, 0.5, 0.5), tinted=False) -> Mesh:
  """A flat, upward-facing rectangle centred on the origin."""
  x, y = size_x / 2, size_y / 2
  return _faces([[(-x, -y, z), (x, -y, z), (x, y, z), (-x, y, z)]], color,
                tinted)


def _car(width, length, body_h, cabin_h, cabin_len, cabin_back) -> Mesh:
  clearance, r = 0.25, 0.33
  body = box((width, length, body_h), (0, 0, clearance), tinted=True)
  cabin = box((width * 0.88, cabin_len, cabin_h),
              (0, -cabin_back, clearance + body_h), color=_GLASS)
  wheels = [frustum(r, r, 0.24, (sx * (width / 2 - 0.1), sy * length * 0.32,
                                 r), _WHEEL, axis="x")
            for sx in (-1, 1) for sy in (-1, 1)]
  return _merge(body, cabin, *wheels)


def _pedestrian() -> Mesh:
  legs = box((0.36, 0.22, 0.85), color=(0.15, 0.15, 0.3))
  torso = box((0.46, 0.26, 0.6), (0, 0, 0.85), tinted=True)
  head = box((0.2, 0.22, 0.25), (0, 0, 1.5), color=(0.85, 0.65, 0.5))
  return _merge(legs, torso, head)


def _tree() -> Mesh:
  trunk = frustum(0.18, 0.14, 2.2, color=(0.35, 0.22, 0.1))
  crown = frustum(1.6, 0.0, 3.6, (0, 0, 1.6), color=(0.13, 0.42, 0.12),
                  sides=10)
  return _merge(trunk, crown)


def _building() -> Mesh:
  """A unit block: scale it to the building's width, depth and height."""
  return box((1.0, 1.0, 1.0), tinted=True)


@functools.cache
def catalogue() -> dict[str, Mesh]:
  """Asset id -> mesh.  Sizes are real-world (a sedan is 1.8 x 4.5 m)."""
  return {
      "car/sedan": _car(1.8, 4.5, 0.75, 0.5, 2.3, 0.2),
      "car/hatchback": _car(1.75, 3.9, 0.8, 0.6, 2.2, 0.5),
      "car/van": _car(1.95, 5.0, 1.2, 0.7, 3.4, 0.6),
      "pedestrian/adult": _pedestrian(),
      "tree/conifer": _tree(),
      "building/block": _building(),
      # Flat assets, unit-sized: scale them to width x length.
      "road/asphalt": quad(1.0, 1.0, 0.0, (0.22, 0.22, 0.23)),
      "road/marking": quad(1.0, 1.0, 0.01, (0.9, 0.9, 0.85)),
      "sidewalk/slab": box((1.0, 1.0, 0.15), color=(0.6, 0.6, 0.58),
                           bottom=False),
      "ground/grass": quad(1.0, 1.0, -0.01, (0.25, 0.45, 0.18)),
  }


def world_vertices(mesh: Mesh, position, yaw_deg: float,
                   scale) -> np.ndarray:
  """The mesh's vertices [3F, 3] placed by a node's pose."""
  c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
  rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
  v = mesh.vertices * np.asarray(scale, np.float32)
  return v @ rot.T + np.asarray(position, np.float64)
