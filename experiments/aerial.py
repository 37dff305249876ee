r"""Meta-Sim on Aerial2D semantic segmentation (paper Table 2).

  python -m experiments.aerial --flagfile=experiments/configs/aerial.flags
  python -m experiments.aerial --flagfile=experiments/configs/aerial.flags \
      --config.target_file=my_target.json --workdir=runs/my_target
"""

from absl import app

from experiments import launch

if __name__ == "__main__":
  app.run(launch.main, flags_parser=launch.parse_flags)
