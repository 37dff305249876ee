from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Vec3(_message.Message):
    __slots__ = ("x", "y", "z")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class Color(_message.Message):
    __slots__ = ("r", "g", "b")
    R_FIELD_NUMBER: _ClassVar[int]
    G_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    r: float
    g: float
    b: float
    def __init__(self, r: _Optional[float] = ..., g: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class Camera(_message.Message):
    __slots__ = ("position", "yaw_deg", "pitch_deg", "roll_deg", "vfov_deg", "near", "far")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    PITCH_DEG_FIELD_NUMBER: _ClassVar[int]
    ROLL_DEG_FIELD_NUMBER: _ClassVar[int]
    VFOV_DEG_FIELD_NUMBER: _ClassVar[int]
    NEAR_FIELD_NUMBER: _ClassVar[int]
    FAR_FIELD_NUMBER: _ClassVar[int]
    position: Vec3
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    vfov_deg: float
    near: float
    far: float
    def __init__(self, position: _Optional[_Union[Vec3, _Mapping]] = ..., yaw_deg: _Optional[float] = ..., pitch_deg: _Optional[float] = ..., roll_deg: _Optional[float] = ..., vfov_deg: _Optional[float] = ..., near: _Optional[float] = ..., far: _Optional[float] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("instance_id", "semantic_id", "class_name", "asset_id", "position", "yaw_deg", "scale", "color", "is_object")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    IS_OBJECT_FIELD_NUMBER: _ClassVar[int]
    instance_id: int
    semantic_id: int
    class_name: str
    asset_id: str
    position: Vec3
    yaw_deg: float
    scale: Vec3
    color: Color
    is_object: bool
    def __init__(self, instance_id: _Optional[int] = ..., semantic_id: _Optional[int] = ..., class_name: _Optional[str] = ..., asset_id: _Optional[str] = ..., position: _Optional[_Union[Vec3, _Mapping]] = ..., yaw_deg: _Optional[float] = ..., scale: _Optional[_Union[Vec3, _Mapping]] = ..., color: _Optional[_Union[Color, _Mapping]] = ..., is_object: _Optional[bool] = ...) -> None: ...

class Scene(_message.Message):
    __slots__ = ("camera", "nodes", "sky")
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SKY_FIELD_NUMBER: _ClassVar[int]
    camera: Camera
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    sky: Color
    def __init__(self, camera: _Optional[_Union[Camera, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., sky: _Optional[_Union[Color, _Mapping]] = ...) -> None: ...

class RenderRequest(_message.Message):
    __slots__ = ("protocol_version", "width", "height", "scenes", "image_only", "variants")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCENES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ONLY_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    width: int
    height: int
    scenes: _containers.RepeatedCompositeFieldContainer[Scene]
    image_only: bool
    variants: _containers.RepeatedCompositeFieldContainer[Variant]
    def __init__(self, protocol_version: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., scenes: _Optional[_Iterable[_Union[Scene, _Mapping]]] = ..., image_only: _Optional[bool] = ..., variants: _Optional[_Iterable[_Union[Variant, _Mapping]]] = ...) -> None: ...

class Variant(_message.Message):
    __slots__ = ("scene", "nodes", "camera")
    SCENE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    scene: int
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    camera: Camera
    def __init__(self, scene: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., camera: _Optional[_Union[Camera, _Mapping]] = ...) -> None: ...

class Crop(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1", "rgb")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    RGB_FIELD_NUMBER: _ClassVar[int]
    x0: int
    y0: int
    x1: int
    y1: int
    rgb: bytes
    def __init__(self, x0: _Optional[int] = ..., y0: _Optional[int] = ..., x1: _Optional[int] = ..., y1: _Optional[int] = ..., rgb: _Optional[bytes] = ...) -> None: ...

class Box2D(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    x0: int
    y0: int
    x1: int
    y1: int
    def __init__(self, x0: _Optional[int] = ..., y0: _Optional[int] = ..., x1: _Optional[int] = ..., y1: _Optional[int] = ...) -> None: ...

class ObjectInfo(_message.Message):
    __slots__ = ("instance_id", "box", "visible_pixels", "alone_pixels", "extended_pixels", "occlusion", "truncation")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    ALONE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_PIXELS_FIELD_NUMBER: _ClassVar[int]
    OCCLUSION_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    instance_id: int
    box: Box2D
    visible_pixels: int
    alone_pixels: int
    extended_pixels: int
    occlusion: float
    truncation: float
    def __init__(self, instance_id: _Optional[int] = ..., box: _Optional[_Union[Box2D, _Mapping]] = ..., visible_pixels: _Optional[int] = ..., alone_pixels: _Optional[int] = ..., extended_pixels: _Optional[int] = ..., occlusion: _Optional[float] = ..., truncation: _Optional[float] = ...) -> None: ...

class Intrinsics(_message.Message):
    __slots__ = ("fx", "fy", "cx", "cy")
    FX_FIELD_NUMBER: _ClassVar[int]
    FY_FIELD_NUMBER: _ClassVar[int]
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    fx: float
    fy: float
    cx: float
    cy: float
    def __init__(self, fx: _Optional[float] = ..., fy: _Optional[float] = ..., cx: _Optional[float] = ..., cy: _Optional[float] = ...) -> None: ...

class SceneRender(_message.Message):
    __slots__ = ("rgb", "instance", "semantic", "objects", "intrinsics")
    RGB_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    rgb: bytes
    instance: bytes
    semantic: bytes
    objects: _containers.RepeatedCompositeFieldContainer[ObjectInfo]
    intrinsics: Intrinsics
    def __init__(self, rgb: _Optional[bytes] = ..., instance: _Optional[bytes] = ..., semantic: _Optional[bytes] = ..., objects: _Optional[_Iterable[_Union[ObjectInfo, _Mapping]]] = ..., intrinsics: _Optional[_Union[Intrinsics, _Mapping]] = ...) -> None: ...

class RenderReply(_message.Message):
    __slots__ = ("protocol_version", "width", "height", "renders", "renderer", "variants")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    RENDERS_FIELD_NUMBER: _ClassVar[int]
    RENDERER_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    width: int
    height: int
    renders: _containers.RepeatedCompositeFieldContainer[SceneRender]
    renderer: str
    variants: _containers.RepeatedCompositeFieldContainer[Crop]
    def __init__(self, protocol_version: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., renders: _Optional[_Iterable[_Union[SceneRender, _Mapping]]] = ..., renderer: _Optional[str] = ..., variants: _Optional[_Iterable[_Union[Crop, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("protocol_version",)
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    def __init__(self, protocol_version: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_scenes", "max_nodes", "max_width", "max_height", "max_message_bytes")
    MAX_SCENES_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_FIELD_NUMBER: _ClassVar[int]
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_scenes: int
    max_nodes: int
    max_width: int
    max_height: int
    max_message_bytes: int
    def __init__(self, max_scenes: _Optional[int] = ..., max_nodes: _Optional[int] = ..., max_width: _Optional[int] = ..., max_height: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class InfoReply(_message.Message):
    __slots__ = ("protocol_version", "renderer", "assets", "limits")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RENDERER_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    renderer: str
    assets: _containers.RepeatedScalarFieldContainer[str]
    limits: Limits
    def __init__(self, protocol_version: _Optional[int] = ..., renderer: _Optional[str] = ..., assets: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...
