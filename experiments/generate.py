r"""Generate a labelled dataset from a trained Meta-Sim run.

  python -m experiments.generate --run_dir=runs/aerial --num_scenes=2000 \
      --format=tfds --output_dir=/tmp/aerial_tfds
  python -m experiments.generate --run_dir=runs/aerial --num_scenes=2000 \
      --format=coco --output_dir=/tmp/aerial_coco --seed=1
  python -m experiments.generate --run_dir=runs/mnist_rot --run_seed=2 \
      --num_scenes=10000 --format=tfds --output_dir=/tmp/mnist_tfds

Scenes come from the run's prior grammar, transformed by its trained
Distribution Transformer (``transformer_seed{run_seed}.msgpack``), and are
rendered and written shard by shard (``metasim_jax/export``).  Bad input
(missing or corrupt run files, an unknown or inapplicable format, N <= 0, a
non-empty output dir without --overwrite) ends with one ``error:`` line and
writes nothing.
"""

import os
import sys

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tfds imports TF

from experiments import flags_common
from metasim_jax.export import generate as generate_lib
from metasim_jax.export import run as run_lib
from metasim_jax.export.errors import ExportError

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Trained run directory "
                               "(the --workdir of experiments.mnist/aerial).")
_NUM = flags.DEFINE_integer("num_scenes", None, "Number of scenes N.")
_FORMAT = flags.DEFINE_string("format", "tfds", "One of: " + ", ".join(
    generate_lib.FORMATS))
_OUT = flags.DEFINE_string("output_dir", None, "Output directory.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_RUN_SEED = flags.DEFINE_integer("run_seed", 0, "Which trained seed of the "
                                 "run: transformer_seed{run_seed}.msgpack.")
_SHARD = flags.DEFINE_integer("shard_size", generate_lib.DEFAULT_SHARD_SIZE,
                              "Scenes per jitted batch and per file shard.")
_OVERWRITE = flags_common.OVERWRITE
_FILE_FORMAT = flags.DEFINE_enum(
    "tfds_file_format", "array_record", list(generate_lib.TFDS_FILE_FORMATS),
    "TFDS files: array_record (as_data_source) or tfrecord (as_dataset).")
_STUFF = flags.DEFINE_list("stuff", None, "Semantic classes that are not "
                           "objects (no boxes / KITTI rows); default: "
                           "background, grass, road.")
flags.mark_flags_as_required(["run_dir", "num_scenes", "output_dir"])


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  try:
    generate_lib.check_request(_NUM.value, _FORMAT.value, _SHARD.value,
                               _FILE_FORMAT.value)
    generate_lib.check_output(_OUT.value, _OVERWRITE.value,
                              protect=(_RUN_DIR.value,))
    run = run_lib.load(_RUN_DIR.value, _RUN_SEED.value)
    generate_lib.check_format(run, _FORMAT.value)
    logging.info("run %s (%s, seed %d): %d scenes as %s into %s",
                 run.run_dir, run.config.name, run.seed, _NUM.value,
                 _FORMAT.value, _OUT.value)
    generate_lib.generate(run, _OUT.value, num_scenes=_NUM.value,
                          fmt=_FORMAT.value, seed=_SEED.value,
                          shard_size=_SHARD.value,
                          overwrite=_OVERWRITE.value, stuff=_STUFF.value,
                          file_format=_FILE_FORMAT.value)
  except ExportError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
