r"""Meta-Sim on MNIST (paper Table 1).

  python -m experiments.mnist --flagfile=experiments/configs/mnist_rot.flags
  python -m experiments.mnist --config=experiments/configs/mnist.py:rot_trans \
      --workdir=/tmp/rot_trans --config.seeds="(0,1,2,3,4)"
"""

from absl import app

from experiments import launch

if __name__ == "__main__":
  app.run(launch.main, flags_parser=launch.parse_flags)
