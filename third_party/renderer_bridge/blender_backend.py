"""The Blender backend: the catalogue's triangles rendered by ``bpy``.

Blender runs in process as a Python module (``pip install bpy``), so its
scene is global: a backend clears it at every call and serialises calls.

* RGB: Workbench (outdoor studio light, shadows, cavity, FXAA) or Cycles
  on the CPU (``create("cycles")``: sun + sky, few samples, fixed seed);
  linear colours out through the ``Standard`` view, i.e. sRGB bytes.
* Ids: a second Workbench render, flat lighting, no anti-aliasing, ``Raw``
  view transform, each object coloured by its instance id (high byte in R,
  low byte in G), decoded exactly from an 8-bit PNG.
* Objects: each object alone on the canvas grown by ``measure.margins``
  (same focal length, principal point at the centre); objects whose
  projections cannot touch share one pass.

The camera matches ``camera.py``: Blender cameras look down their local -z
with +y up, i.e. the OpenCV camera frame with y and z flipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref

import bpy
import mathutils
import numpy as np
from PIL import Image

from third_party.renderer_bridge import assets
from third_party.renderer_bridge import camera as cam_lib
from third_party.renderer_bridge import measure
from third_party.renderer_bridge.scene import Scene, SceneRender

_LOCK = threading.Lock()  # bpy's scene is process-global
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> Blender's
_SENSOR_MM = 36.0
_PAD_PX = 2  # safety margin between boxes of objects sharing a pass
RGB_ENGINES = ("workbench", "cycles")


def _decode_ids(rgb: np.ndarray) -> np.ndarray:
  """[H, W, 3] uint8 id colours -> [H, W] int64 ids (R * 256 + G)."""
  return rgb[..., 0].astype(np.int64) * 256 + rgb[..., 1]


def _id_color(instance_id: int) -> tuple[float, float, float, float]:
  """Linear RGBA whose Raw 8-bit encoding is (id >> 8, id & 255, 0)."""
  return ((instance_id >> 8) / 255.0, (instance_id & 255) / 255.0, 0.0, 1.0)


def _node_tree(block):
  """A world's or material's node tree (Blender 5 makes one by default)."""
  if block.node_tree is None:
    block.use_nodes = True  # Blender 4
  return block.node_tree


def _world_matrix(cam) -> mathutils.Matrix:
  """[4, 4] Blender camera object matrix for a scene camera."""
  m = np.eye(4)
  m[:3, :3] = cam_lib.world_from_camera(cam) @ _FLIP_YZ
  m[:3, 3] = cam.position
  return mathutils.Matrix(m.tolist())  # rows (a plain list reads as columns)


class BlenderBackend:
  """Renders scenes with bpy (see the module docstring)."""

  def __init__(self, rgb_engine: str = "workbench", samples: int = 8):
    if rgb_engine not in RGB_ENGINES:
      raise ValueError(f"unknown rgb_engine {rgb_engine!r}; valid: "
                       f"{list(RGB_ENGINES)}")
    self.rgb_engine = rgb_engine
    self.samples = int(samples)
    engine = "workbench" if rgb_engine == "workbench" else "cycles-cpu"
    self.name = f"blender-{bpy.app.version_string} {engine}"
    self._tmp = tempfile.mkdtemp(prefix="metasim_blender_")
    self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmp,
                                       ignore_errors=True)
    with _LOCK:
      bpy.ops.wm.read_factory_settings(use_empty=True)

  # -- scene building -------------------------------------------------------

  def _reset(self) -> bpy.types.Scene:
    """Empties bpy's data and returns the scene, configured for rendering."""
    for coll in (bpy.data.objects, bpy.data.meshes, bpy.data.cameras,
                 bpy.data.lights, bpy.data.materials, bpy.data.worlds,
                 bpy.data.images):
      if len(coll):
        bpy.data.batch_remove(list(coll))
    sc = bpy.context.scene
    r = sc.render
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.use_border = False
    r.film_transparent = False
    r.use_compositing = False
    r.use_sequencer = False
    r.dither_intensity = 0.0
    r.use_persistent_data = False
    r.use_file_extension = True
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 0
    sc.view_settings.look = "None"
    sc.view_settings.exposure = 0.0
    sc.view_settings.gamma = 1.0
    sc.view_settings.use_curve_mapping = False
    return sc

  def _build(self, sc, scene: Scene) -> list:
    """One mesh object per node (world-space triangles), in node order."""
    cat = assets.catalogue()
    objs = []
    for node in scene.nodes:
      mesh = cat[node.asset_id]
      verts = assets.world_vertices(mesh, node.position, node.yaw_deg,
                                    node.scale).astype(np.float32)
      n_tri = len(mesh.colors)
      colors = np.where(mesh.tinted[:, None],
                        np.asarray(node.color, np.float32)[None],
                        mesh.colors)
      me = bpy.data.meshes.new(f"node{node.instance_id}")
      me.vertices.add(len(verts))
      me.vertices.foreach_set("co", verts.ravel())
      me.loops.add(len(verts))
      me.loops.foreach_set("vertex_index",
                           np.arange(len(verts), dtype=np.int32))
      me.polygons.add(n_tri)
      me.polygons.foreach_set("loop_start",
                              np.arange(0, len(verts), 3, dtype=np.int32))
      me.polygons.foreach_set("use_smooth", np.zeros(n_tri, bool))
      # Vertices are unshared, so a point attribute is a per-face colour.
      rgba = np.concatenate([colors, np.ones((n_tri, 1), np.float32)], 1)
      attr = me.color_attributes.new("face_color", "FLOAT_COLOR", "POINT")
      attr.data.foreach_set("color", np.repeat(rgba, 3, 0).ravel())
      me.color_attributes.active_color = attr
      me.color_attributes.render_color_index = 0
      me.update(calc_edges=True)
      ob = bpy.data.objects.new(f"node{node.instance_id}", me)
      ob.color = _id_color(node.instance_id)
      sc.collection.objects.link(ob)
      objs.append(ob)
    return objs

  def _camera(self, sc, scene: Scene) -> bpy.types.Object:
    c = scene.camera
    data = bpy.data.cameras.new("camera")
    data.type = "PERSP"
    data.sensor_fit = "VERTICAL"
    data.sensor_height = data.sensor_width = _SENSOR_MM
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = c.near, c.far
    ob = bpy.data.objects.new("camera", data)
    ob.matrix_world = _world_matrix(c)
    sc.collection.objects.link(ob)
    sc.camera = ob
    return ob

  @staticmethod
  def _set_canvas(sc, cam_ob, fy: float, width: int, height: int):
    """Resolution and lens so that the focal length is ``fy`` pixels."""
    sc.render.resolution_x, sc.render.resolution_y = width, height
    cam_ob.data.lens = fy * _SENSOR_MM / height

  # -- passes ---------------------------------------------------------------

  def _render(self, sc, name: str) -> np.ndarray:
    """Renders the scene to a PNG; returns [H, W, 3] uint8."""
    path = os.path.join(self._tmp, name + ".png")
    bpy.ops.render.render()
    # Saving here rather than with write_still keeps the log quiet.
    bpy.data.images["Render Result"].save_render(path, scene=sc)
    with Image.open(path) as im:
      out = np.asarray(im.convert("RGB"))
    h, w = sc.render.resolution_y, sc.render.resolution_x
    if out.shape != (h, w, 3):
      raise RuntimeError(f"Blender wrote a {out.shape} image, expected "
                         f"{(h, w, 3)}")
    return out

  def _setup_workbench(self, sc, ids: bool):
    sc.render.engine = "BLENDER_WORKBENCH"
    s = sc.display.shading
    s.show_xray = s.use_dof = s.show_object_outline = False
    s.show_backface_culling = False
    if ids:
      sc.display.render_aa = "OFF"
      s.light = "FLAT"
      s.color_type = "OBJECT"
      s.show_shadows = s.show_cavity = s.show_specular_highlight = False
      sc.view_settings.view_transform = "Raw"
      sc.world.color = (0.0, 0.0, 0.0)
    else:
      sc.display.render_aa = "FXAA"  # 5-8 samples cost 4-6x the time
      s.light = "STUDIO"
      s.studio_light = "outdoor.sl"
      s.use_world_space_lighting = True  # lit from the sky, not the camera
      s.studiolight_rotate_z = 0.0
      s.color_type = "VERTEX"  # the "face_color" attribute
      s.show_specular_highlight = True
      s.show_shadows = True
      s.shadow_intensity = 0.5
      sc.display.light_direction = (-0.4, 0.3, -0.85)  # shadows: sun to ground
      s.show_cavity = True
      s.cavity_type = "WORLD"
      sc.view_settings.view_transform = "Standard"

  def _setup_cycles(self, sc, scene: Scene):
    sc.render.engine = "CYCLES"
    cy = sc.cycles
    cy.device = "CPU"
    cy.samples = self.samples
    cy.use_adaptive_sampling = False
    cy.use_denoising = False
    cy.seed = 0
    cy.use_animated_seed = False
    cy.max_bounces = 3
    cy.diffuse_bounces = cy.glossy_bounces = 2
    cy.transmission_bounces = cy.volume_bounces = cy.transparent_max_bounces = 0
    sc.view_settings.view_transform = "Standard"
    # The camera sees the sky colour; the sky lights the scene more softly.
    tree = _node_tree(sc.world)
    seen = tree.nodes["Background"]
    seen.inputs["Color"].default_value = (*scene.sky, 1.0)
    light = tree.nodes.new("ShaderNodeBackground")
    light.inputs["Color"].default_value = (*scene.sky, 1.0)
    light.inputs["Strength"].default_value = 0.4
    path = tree.nodes.new("ShaderNodeLightPath")
    mix = tree.nodes.new("ShaderNodeMixShader")
    tree.links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    tree.links.new(light.outputs["Background"], mix.inputs[1])
    tree.links.new(seen.outputs["Background"], mix.inputs[2])
    tree.links.new(mix.outputs["Shader"],
                   tree.nodes["World Output"].inputs["Surface"])
    mat = bpy.data.materials.new("faces")
    nodes = _node_tree(mat).nodes
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.6
    attr = nodes.new("ShaderNodeAttribute")
    attr.attribute_name = "face_color"
    mat.node_tree.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    for ob in sc.collection.objects:
      if ob.type == "MESH":
        ob.data.materials.append(mat)
    sun = bpy.data.lights.new("sun", "SUN")
    sun.energy = 4.0
    sun.angle = np.radians(3.0)
    sun_ob = bpy.data.objects.new("sun", sun)
    sun_ob.rotation_euler = (np.radians(40.0), 0.0, np.radians(30.0))
    sc.collection.objects.link(sun_ob)

  def _alone_masks(self, sc, cam_ob, scene: Scene, objs, width: int,
                   height: int, fy: float) -> dict[int, np.ndarray]:
    """instance id -> [H + 2 my, W + 2 mx] bool, each object alone."""
    mx, my = measure.margins(width, height)
    ew, eh = width + 2 * mx, height + 2 * my
    intr = cam_lib.extended(cam_lib.intrinsics(scene.camera, width, height),
                            mx, my)
    cat = assets.catalogue()
    masks, boxes = {}, {}
    for node in scene.nodes:
      if not node.is_object:
        continue
      v = assets.world_vertices(cat[node.asset_id], node.position,
                                node.yaw_deg, node.scale)
      p = cam_lib.to_camera(scene.camera, v)
      z = p[:, 2]
      if (z <= scene.camera.near).all() or (z >= scene.camera.far).all():
        masks[node.instance_id] = np.zeros((eh, ew), bool)  # never drawn
        continue
      if (z <= scene.camera.near).any():
        boxes[node.instance_id] = None  # crosses the near plane: own pass
        continue
      uv = cam_lib.project(intr, p)
      b = (uv[:, 0].min() - _PAD_PX, uv[:, 1].min() - _PAD_PX,
           uv[:, 0].max() + _PAD_PX, uv[:, 1].max() + _PAD_PX)
      if b[2] < 0 or b[3] < 0 or b[0] > ew or b[1] > eh:
        masks[node.instance_id] = np.zeros((eh, ew), bool)  # off canvas
        continue
      boxes[node.instance_id] = b
    # Greedy packing: a pass holds objects whose boxes do not intersect.
    passes: list[list[int]] = []
    for iid, b in boxes.items():
      for group in passes:
        if b is not None and all(
            boxes[o] is not None and (b[2] < boxes[o][0] or
                                      boxes[o][2] < b[0] or
                                      b[3] < boxes[o][1] or
                                      boxes[o][3] < b[1]) for o in group):
          group.append(iid)
          break
      else:
        passes.append([iid])
    if not passes:
      return masks
    self._set_canvas(sc, cam_ob, fy, ew, eh)
    by_id = {n.instance_id: ob for n, ob in zip(scene.nodes, objs)}
    for k, group in enumerate(passes):
      shown = set(group)
      for iid, ob in by_id.items():
        ob.hide_render = iid not in shown
      ids = _decode_ids(self._render(sc, f"alone{k}"))
      self._check_ids(ids, shown)
      for iid in group:
        masks[iid] = ids == iid
    for ob in objs:
      ob.hide_render = False
    return masks

  @staticmethod
  def _check_ids(ids: np.ndarray, valid) -> None:
    unknown = sorted(set(np.unique(ids).tolist()) - set(valid) - {0})
    if unknown:
      raise RuntimeError(
          f"Blender's id pass holds unknown ids {unknown[:10]}: anti-aliasing "
          "or colour management altered the id colours")

  # -- the protocol ---------------------------------------------------------

  def render(self, scene: Scene, width: int, height: int,
             image_only: bool) -> SceneRender:
    """One scene -> SceneRender (rgb [H, W, 3] uint8; ids [H, W])."""
    intr = cam_lib.intrinsics(scene.camera, width, height)
    with _LOCK:
      sc = self._reset()
      sc.world = bpy.data.worlds.new("sky")  # with a Background node
      sc.world.color = scene.sky  # Workbench's background
      objs = self._build(sc, scene)
      cam_ob = self._camera(sc, scene)
      self._set_canvas(sc, cam_ob, intr.fy, width, height)
      if self.rgb_engine == "cycles":
        self._setup_cycles(sc, scene)
      else:
        self._setup_workbench(sc, ids=False)
      rgb = self._render(sc, "rgb")
      if image_only:
        return SceneRender(rgb=rgb, instance=None, semantic=None, objects=(),
                           intrinsics=intr)
      self._setup_workbench(sc, ids=True)
      ids = _decode_ids(self._render(sc, "ids"))
      self._check_ids(ids, [n.instance_id for n in scene.nodes])
      alone = self._alone_masks(sc, cam_ob, scene, objs, width, height,
                                intr.fy)
    instance = ids.astype(np.uint16)
    table = np.zeros(65536, np.uint8)
    for n in scene.nodes:
      table[n.instance_id] = n.semantic_id
    semantic = table[instance]
    mx, my = measure.margins(width, height)
    objects = tuple(
        measure.object_info(instance, n.instance_id, alone[n.instance_id],
                            mx, my) for n in scene.nodes if n.is_object)
    return SceneRender(rgb=rgb, instance=instance, semantic=semantic,
                       objects=objects, intrinsics=intr)


def create(rgb_engine: str = "workbench", samples: int = 8) -> BlenderBackend:
  """The backend; ``rgb_engine`` "workbench" (fast) or "cycles" (CPU)."""
  return BlenderBackend(rgb_engine, samples)
