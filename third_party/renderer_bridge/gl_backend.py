"""The moderngl backend: headless OpenGL (EGL, e.g. Mesa llvmpipe).

One pass draws every node into an RGBA8 colour attachment (row 0 of the
reply is the image top) and its ``instance_id`` into an R16UI attachment,
with a depth buffer, no culling (the meshes' winding is not guaranteed)
and no multisampling (ids are exact).  Shading is flat: the face colour
(the node colour on ``tinted`` faces) times
``0.45 + 0.55 * max(0, n . L)`` with a fixed sun direction ``L``, ``n``
the face normal turned toward the camera, written sRGB-encoded.

Each object's "alone" mask (``measure.object_info``) comes from one more
pass on the extended canvas (``measure.margins``, ``camera.extended``):
objects draw without a depth test into an R32UI attachment whose logic
op is OR, object k of a group of 32 writing bit k.  A pixel's bit k is
set iff a triangle of object k covers it, so the masks equal those of one
pass per object, for 1/32 of the passes.

Per-asset vertex buffers are uploaded once; framebuffers are kept per
size.  A render draws one instanced call per asset in the scene; a
node's pose, colour and id are per-instance attributes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import moderngl
import numpy as np

from third_party.renderer_bridge import assets as assets_lib
from third_party.renderer_bridge import camera as camera_lib
from third_party.renderer_bridge import measure
from third_party.renderer_bridge.measure import camera_from_object, pixel_rects
from third_party.renderer_bridge.scene import (Node, ObjectInfo, Scene,
                                               SceneRender)

def srgb(linear: np.ndarray) -> np.ndarray:
  """Linear colours in [0, 1] -> sRGB-encoded values in [0, 1]."""
  c = np.clip(linear, 0.0, 1.0)
  return np.where(c <= 0.0031308, 12.92 * c,
                  1.055 * c ** (1 / 2.4) - 0.055)


# Unit vector toward the sun, world frame.
SUN = np.array([0.4, -0.6, 0.7]) / np.linalg.norm([0.4, -0.6, 0.7])
AMBIENT, DIFFUSE = 0.45, 0.55
_MAX_SIZES = 4  # framebuffer sizes kept
_BITS = 32  # objects per mask pass (R32UI)

# GL enums moderngl does not expose.
_GL_COLOR, _GL_DEPTH = 0x1800, 0x1801
_GL_COLOR_LOGIC_OP, _GL_OR = 0x0BF2, 0x1507

_VERTEX_SHADER = """
#version 330
in vec3 in_pos;      // object frame, metres
in vec3 in_normal;   // face normal, object frame (any sign)
in vec3 in_color;    // face colour, linear RGB
in float in_tinted;  // 1: the node colour replaces it
in vec4 i_mv0;       // rows of the [3, 4] camera-from-object transform
in vec4 i_mv1;
in vec4 i_mv2;
in vec3 i_inv_s2;    // 1 / scale^2: normals to the camera frame
in vec3 i_color;
in uint i_id;
uniform mat4 proj;       // camera frame (OpenCV axes) -> clip
uniform vec3 sun_cam;    // unit vector toward the sun, camera frame
flat out vec3 v_color;
flat out uint v_id;
void main() {
  vec4 p = vec4(in_pos, 1.0);
  vec3 pc = vec3(dot(i_mv0, p), dot(i_mv1, p), dot(i_mv2, p));
  gl_Position = proj * vec4(pc, 1.0);
  vec3 m = in_normal * i_inv_s2;
  vec3 n = vec3(dot(i_mv0.xyz, m), dot(i_mv1.xyz, m), dot(i_mv2.xyz, m));
  float len = length(n);
  n = len > 0.0 ? n / len : vec3(0.0);
  if (dot(n, pc) > 0.0) n = -n;  // two-sided: face the camera
  float shade = %(ambient)r + %(diffuse)r * max(dot(n, sun_cam), 0.0);
  v_color = mix(in_color, i_color, in_tinted) * shade;
  v_id = i_id;
}
""" % {"ambient": AMBIENT, "diffuse": DIFFUSE}

_FRAGMENT_SHADER = """
#version 330
flat in vec3 v_color;
flat in uint v_id;
layout(location = 0) out vec4 out_color;
layout(location = 1) out uint out_id;
vec3 srgb(vec3 c) {  // the sRGB transfer function (the protocol's bytes)
  return mix(12.92 * c, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055,
             step(0.0031308, c));
}
void main() {
  out_color = vec4(srgb(clamp(v_color, 0.0, 1.0)), 1.0);
  out_id = v_id;
}
"""

_MASK_FRAGMENT_SHADER = """
#version 330
flat in uint v_id;  // the object's bit
layout(location = 0) out uint out_bits;
void main() {
  out_bits = v_id;
}
"""

_VERTEX_FORMAT = ("3f 3f 3f 1f", "in_pos", "in_normal", "in_color",
                  "in_tinted")
_INSTANCE_FORMAT = ("4f 4f 4f 3f 3f 1u /i", "i_mv0", "i_mv1", "i_mv2",
                    "i_inv_s2", "i_color", "i_id")
_INSTANCE_DTYPE = np.dtype([("mv", "<f4", (3, 4)), ("inv_s2", "<f4", 3),
                            ("color", "<f4", 3), ("id", "<u4")])


def mesh_vertices(mesh: assets_lib.Mesh) -> np.ndarray:
  """[3F, 10] float32 per-vertex rows: position, face normal, face colour,
  tinted (0 or 1)."""
  rep = lambda a: np.repeat(np.asarray(a, np.float32), 3, axis=0)
  return np.concatenate([
      mesh.vertices, rep(mesh.normals), rep(mesh.colors),
      rep(mesh.tinted[:, None])], axis=1).astype(np.float32)


def instances(a: np.ndarray, t: np.ndarray, nodes: list[Node],
              ids) -> np.ndarray:
  """Per-node instance rows (``_INSTANCE_DTYPE``): the camera-from-object
  transform (``camera_from_object``), 1 / scale^2, colour and the id each
  node writes (``ids``)."""
  out = np.empty(len(nodes), _INSTANCE_DTYPE)
  out["mv"][:, :, :3] = a
  out["mv"][:, :, 3] = t
  out["inv_s2"] = 1.0 / np.array([n.scale for n in nodes]).reshape(-1, 3)**2
  out["color"] = np.array([n.color for n in nodes]).reshape(-1, 3)
  out["id"] = ids
  return out


def _gl_function(name: str, *argtypes):
  """A GL entry point moderngl does not wrap (needs a current context)."""
  lib = ctypes.CDLL(ctypes.util.find_library("EGL") or "libEGL.so.1")
  lib.eglGetProcAddress.restype = ctypes.c_void_p
  lib.eglGetProcAddress.argtypes = [ctypes.c_char_p]
  ptr = lib.eglGetProcAddress(name.encode())
  if not ptr:
    raise RuntimeError(f"EGL has no GL function {name}")
  return ctypes.CFUNCTYPE(None, *argtypes)(ptr)


class _Targets:
  """Framebuffers for one image size: the scene (RGBA8 + R16UI + depth)
  and the alone masks on the extended canvas (R32UI)."""

  def __init__(self, ctx: moderngl.Context, width: int, height: int):
    self.mx, self.my = measure.margins(width, height)
    ew, eh = width + 2 * self.mx, height + 2 * self.my
    self.scene = ctx.framebuffer(
        [ctx.renderbuffer((width, height), 4, dtype="f1"),
         ctx.renderbuffer((width, height), 1, dtype="u2")],
        ctx.depth_renderbuffer((width, height)))
    self.masks = ctx.framebuffer([ctx.renderbuffer((ew, eh), 1, dtype="u4")])

  def release(self):
    for fbo in (self.scene, self.masks):
      for a in fbo.color_attachments:
        a.release()
      if fbo.depth_attachment is not None:
        fbo.depth_attachment.release()
      fbo.release()


class _AssetDraw:
  """One catalogue mesh: its vertices (uploaded once), a per-instance
  buffer that grows as needed, and a vertex array per program."""

  def __init__(self, ctx, mesh, programs):
    self.vbo = ctx.buffer(mesh_vertices(mesh).tobytes())
    self.vertices = len(mesh.vertices)
    self.corners = measure.box_corners(mesh)  # [8, 3]
    self.capacity = 16
    self.ibo = ctx.buffer(reserve=self.capacity * _INSTANCE_DTYPE.itemsize)
    self.vaos = [ctx.vertex_array(p, [(self.vbo, *_VERTEX_FORMAT),
                                      (self.ibo, *_INSTANCE_FORMAT)],
                                  skip_errors=True) for p in programs]

  def draw(self, program_index: int, rows: np.ndarray):
    if len(rows) > self.capacity:
      self.capacity = max(len(rows), 2 * self.capacity)
      self.ibo.orphan(self.capacity * _INSTANCE_DTYPE.itemsize)
    self.ibo.write(rows.tobytes())
    self.vaos[program_index].render(moderngl.TRIANGLES,
                                    vertices=self.vertices,
                                    instances=len(rows))


class GLBackend:
  """A ``backend.Backend`` over one standalone moderngl context.

  Thread-safe: renders are serialised, and each makes the context current
  on its calling thread.  ``objects_per_pass`` (1..32) objects share one
  alone-mask pass; 1 is one pass per object (the reference the tests
  compare with).
  """

  def __init__(self, ctx: moderngl.Context, objects_per_pass: int = _BITS):
    if not 1 <= objects_per_pass <= _BITS:
      raise ValueError(f"objects_per_pass must be in 1..{_BITS}, got "
                       f"{objects_per_pass}")
    self._per_pass = objects_per_pass
    self._ctx = ctx
    self._lock = threading.Lock()
    self.name = "moderngl-egl " + ctx.info["GL_RENDERER"]
    with ctx:
      self._programs = [
          ctx.program(vertex_shader=_VERTEX_SHADER,
                      fragment_shader=_FRAGMENT_SHADER),
          ctx.program(vertex_shader=_VERTEX_SHADER,
                      fragment_shader=_MASK_FRAGMENT_SHADER)]
      self._assets = {k: _AssetDraw(ctx, m, self._programs)
                      for k, m in assets_lib.catalogue().items()}
      self._clear_uiv = _gl_function("glClearBufferuiv", ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_void_p)
      self._clear_fv = _gl_function("glClearBufferfv", ctypes.c_uint,
                                    ctypes.c_int, ctypes.c_void_p)
      self._logic_op = _gl_function("glLogicOp", ctypes.c_uint)
    self._targets: dict[tuple[int, int], _Targets] = {}

  def render(self, scene: Scene, width: int, height: int,
             image_only: bool) -> SceneRender:
    """One scene -> rgb [H, W, 3] uint8 and, unless ``image_only``,
    instance [H, W] uint16, semantic [H, W] uint8 and the objects."""
    if width < 1 or height < 1:
      raise ValueError(f"image size must be positive, got {width}x{height}")
    intr = camera_lib.intrinsics(scene.camera, width, height)
    nodes = list(scene.nodes)
    a, t = camera_from_object(scene.camera, nodes)
    rows = instances(a, t, nodes, [n.instance_id for n in nodes])
    with self._lock, self._ctx:
      target = self._target(width, height)
      rgb, instance = self._draw_scene(scene, nodes, rows, intr, target,
                                       image_only)
      if image_only:
        return SceneRender(rgb, None, None, (), intr)
      index = [i for i, n in enumerate(nodes) if n.is_object]
      objects = [nodes[i] for i in index]
      corners = np.array([self._assets[n.asset_id].corners for n in objects])
      rects = pixel_rects(a[index], t[index], corners.reshape(-1, 8, 3),
                          camera_lib.extended(intr, target.mx, target.my),
                          *target.masks.size, scene.camera.near)
      infos = self._objects(scene, objects, rows[index], rects, intr,
                            target, instance)
    lut = np.zeros(65536, np.uint8)
    lut[[n.instance_id for n in nodes]] = [n.semantic_id for n in nodes]
    return SceneRender(rgb, instance, lut.take(instance), infos, intr)

  def render_region(self, scene: Scene, width: int, height: int,
                    region: measure.Region) -> np.ndarray:
    """The image's pixels in ``region`` (x0, y0, x1, y1): [y1 - y0,
    x1 - x0, 3] uint8, equal to ``render(...).rgb`` there; only the nodes
    that can reach the region are drawn, and only inside it (scissor)."""
    x0, y0, x1, y1 = region
    intr = camera_lib.intrinsics(scene.camera, width, height)
    nodes = list(scene.nodes)
    a, t = camera_from_object(scene.camera, nodes)
    corners = np.array([self._assets[n.asset_id].corners for n in nodes])
    r = pixel_rects(a, t, corners.reshape(-1, 8, 3), intr, width, height,
                    scene.camera.near)
    keep = np.flatnonzero((r[:, 0] < x1) & (r[:, 2] > x0) & (r[:, 1] < y1)
                          & (r[:, 3] > y0))
    nodes = [nodes[i] for i in keep]
    rows = instances(a[keep], t[keep], nodes, [n.instance_id for n in nodes])
    with self._lock, self._ctx:
      fbo = self._target(width, height).scene
      fbo.use()
      gl_box = (x0, height - y1, x1 - x0, y1 - y0)  # GL: origin bottom-left
      fbo.scissor = gl_box
      try:
        self._clear_and_draw(scene, nodes, rows, intr, width, height)
        rgb = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        fbo.read_into(rgb, viewport=gl_box, components=3, attachment=0)
      finally:
        fbo.scissor = None
    return rgb[::-1].copy()

  def release(self):
    """Frees the GL objects and the context."""
    with self._lock, self._ctx:
      for t in self._targets.values():
        t.release()
      self._targets.clear()
    self._ctx.release()

  def _target(self, width: int, height: int) -> _Targets:
    key = (width, height)
    t = self._targets.pop(key, None)
    if t is None:
      t = _Targets(self._ctx, width, height)
      if len(self._targets) >= _MAX_SIZES:  # drop the least recently used
        self._targets.pop(next(iter(self._targets))).release()
    self._targets[key] = t
    return t

  def _set_camera(self, program, scene: Scene, intr, width, height):
    cam = scene.camera
    proj = camera_lib.gl_projection(intr, width, height, cam.near, cam.far)
    program["proj"].write(proj.T.astype("<f4").tobytes())  # column-major
    if program.get("sun_cam", None) is not None:  # not in the mask shader
      sun_cam = SUN @ camera_lib.world_from_camera(cam)
      program["sun_cam"].write(sun_cam.astype("<f4").tobytes())

  def _draw(self, program_index: int, nodes: list[Node], rows: np.ndarray):
    """One instanced draw per asset; ``rows[i]`` is ``nodes[i]``'s."""
    by_asset: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
      by_asset.setdefault(n.asset_id, []).append(i)
    for asset_id, index in by_asset.items():
      self._assets[asset_id].draw(program_index, rows[index])

  def _clear_and_draw(self, scene, nodes, rows, intr, width: int,
                      height: int) -> None:
    """Clears the bound scene framebuffer (sky colour, id 0, far depth;
    inside the scissor box if one is set) and draws ``nodes``."""
    sky = (ctypes.c_float * 4)(*map(float, srgb(np.asarray(scene.sky))),
                               1.0)
    self._clear_fv(_GL_COLOR, 0, sky)
    self._clear_uiv(_GL_COLOR, 1, (ctypes.c_uint * 4)())  # id 0: no node
    self._clear_fv(_GL_DEPTH, 0, (ctypes.c_float * 1)(1.0))
    self._ctx.enable_only(moderngl.DEPTH_TEST)
    if nodes:
      self._set_camera(self._programs[0], scene, intr, width, height)
      self._draw(0, nodes, rows)

  def _draw_scene(self, scene, nodes, rows, intr, t: _Targets,
                  image_only):
    """Draws every node; returns rgb [H, W, 3] and the instance layer
    [H, W] (None if ``image_only``), top row first."""
    fbo = t.scene
    width, height = fbo.size
    fbo.use()
    self._clear_and_draw(scene, nodes, rows, intr, width, height)
    rgb = np.empty((height, width, 3), np.uint8)
    fbo.read_into(rgb, components=3, attachment=0)
    rgb = rgb[::-1].copy()  # GL's rows are bottom-up
    if image_only:
      return rgb, None
    ids = np.empty((height, width), np.uint16)
    fbo.read_into(ids, components=1, attachment=1, dtype="u2")
    return rgb, ids[::-1].copy()

  def _objects(self, scene, objects: list[Node], rows: np.ndarray,
               rects: np.ndarray, intr, t: _Targets,
               instance: np.ndarray) -> tuple[ObjectInfo, ...]:
    """``measure.object_info`` of each object, from its pixels drawn alone
    on the extended canvas.  ``rows``: the objects' instance rows;
    ``rects`` (``pixel_rects``) bound where each may have pixels."""
    if not objects:
      return ()
    ctx, fbo = self._ctx, t.masks
    ew, eh = fbo.size
    ext = camera_lib.extended(intr, t.mx, t.my)
    rows = rows.copy()
    per_pass = self._per_pass
    rows["id"] = np.uint32(1) << (np.arange(len(objects)) % per_pass).astype(
        np.uint32)
    self._set_camera(self._programs[1], scene, ext, ew, eh)
    fbo.use()
    ctx.enable_only(moderngl.NOTHING)
    ctx.enable_direct(_GL_COLOR_LOGIC_OP)
    self._logic_op(_GL_OR)
    bits = np.empty((eh, ew), np.uint32)
    mask = np.zeros((eh, ew), bool)  # one object's, zero outside its rect
    infos = []
    try:
      for start in range(0, len(objects), per_pass):
        group = slice(start, start + per_pass)
        self._clear_uiv(_GL_COLOR, 0, (ctypes.c_uint * 4)())
        self._draw(1, objects[group], rows[group])
        fbo.read_into(bits, components=1, attachment=0, dtype="u4")
        top_first = bits[::-1]
        for k in range(start, min(start + per_pass, len(objects))):
          x0, y0, x1, y1 = rects[k]
          mask[y0:y1, x0:x1] = top_first[y0:y1, x0:x1] & rows["id"][k]
          infos.append(measure.object_info(
              instance, objects[k].instance_id, mask, t.mx, t.my))
          mask[y0:y1, x0:x1] = False
    finally:
      ctx.disable_direct(_GL_COLOR_LOGIC_OP)
    return tuple(infos)


def create(objects_per_pass: int = _BITS) -> GLBackend:
  """A backend on a new headless EGL context."""
  try:
    ctx = moderngl.create_standalone_context(backend="egl", require=330)
  except Exception as e:  # moderngl raises its own Error types
    raise RuntimeError(
        "cannot create a headless OpenGL 3.3 context (EGL); install Mesa's "
        f"EGL (e.g. libegl1 + libgl1-mesa-dri): {e}") from e
  return GLBackend(ctx, objects_per_pass)
