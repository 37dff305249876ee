#!/usr/bin/env bash
# The 3D renderers behind third_party/renderer_bridge, for a fresh machine:
# * system packages: Mesa's EGL and software OpenGL (llvmpipe) for the
#   moderngl server, and the X/Wayland client libraries that Blender's
#   Python module loads (apt; skipped when already installed);
# * Blender as a Python module (bpy 5.0.1, Python 3.11) into the active
#   venv.  bpy's wheel pins numpy < 2, which JAX cannot use, so it is
#   installed without its dependencies (it runs with numpy 2) plus the two
#   it needs.  Skip it with NO_BLENDER=1 (its tests are then skipped).
set -euo pipefail
PACKAGES=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgbm1
          libx11-6 libx11-xcb1 libxext6 libxfixes3 libxi6 libxrender1
          libxkbcommon0 libsm6 libice6 libwayland-client0)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "install_renderers.sh: missing apt packages ${missing[*]};" \
           "install them as root (apt-get install ${missing[*]})" >&2
      exit 1
    fi
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"
fi
if [ "${NO_BLENDER:-0}" != 1 ]; then
  python -c "import sys; assert sys.version_info[:2] == (3, 11), \
'bpy 5.0 needs Python 3.11 (set NO_BLENDER=1 to skip Blender)'"
  pip install --quiet --no-deps "bpy==5.0.1"
  pip install --quiet zstandard requests
fi
