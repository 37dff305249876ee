r"""Meta-Sim on 3D driving scenes and car detection (paper Table 3), rendered
through the renderer bridge.

  python -m experiments.driving --config=experiments/configs/driving.py:smoke \
      --workdir=runs/driving_smoke
"""

from absl import app

from experiments import launch

if __name__ == "__main__":
  app.run(launch.main, flags_parser=launch.parse_flags)
