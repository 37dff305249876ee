"""Export: labelled datasets (TFDS, COCO, KITTI) sampled from a trained run.

  run = export.run.load(run_dir, seed=0)
  export.generate.generate(run, out_dir, num_scenes=N, fmt="tfds", seed=0)

Command line: ``python -m experiments.generate``.
"""
