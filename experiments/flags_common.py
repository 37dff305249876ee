"""Flags shared by the command-line programs (absl allows one definition of
a name per process, and tests import several programs)."""

from absl import flags

OVERWRITE = flags.DEFINE_bool(
    "overwrite", False,
    "Replace what is already in the output folder. Training: start afresh "
    "in a --workdir that has checkpoints (deletes them and the TensorBoard "
    "logs). generate: replace a non-empty --output_dir, once the new data "
    "is complete.")
