"""relunet: the ReLU-vs-Sigmoid MNIST lab as a resumable, exportable Keras trainer."""

import re
from pathlib import Path

from setuptools import find_packages, setup

# One version, in the package itself (relunet --version prints it).
VERSION = re.search(r'__version__ = "(.+)"', Path("src/relunet/__init__.py").read_text())[1]

setup(
    name="relunet",
    version=VERSION,
    description="ReLU vs Sigmoid on MNIST: a Keras 3 trainer with the lab's own train_step, "
    "offline tfds data, resumable fit, keras-tuner search and SavedModel export.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    # scipy 1.17 (keras-tuner's Bayesian search) installs on Python 3.11 and newer;
    # CI runs the tests on 3.11 and the quick tier on 3.12 and 3.13.
    python_requires=">=3.11",
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"relunet.serve": ["static/*.html"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10",
        "tensorflow-datasets>=4.9.9",
        # the extra brings scipy and scikit-learn for --tuner bayesian
        "keras-tuner[bayesian]>=1.4.7",
        # the TensorBoard callback; tensorflow 2.21 no longer pulls it in
        "tensorboard>=2.21,<2.22",
        "importlib_resources",  # needed by tensorflow-datasets to prepare datasets
        "matplotlib>=3.8",  # relunet compare's plots and evaluate's report
        "Hershey-Fonts>=2.1",  # letters as pen strokes, for what is not a digit
        "prometheus_client>=0.20",  # relunet serve's /monitoring/prometheus/metrics
        "starlette>=0.40",  # relunet serve
        "uvicorn>=0.30",
        "httptools>=0.6",  # uvicorn's C HTTP parser and event loop, when installed
        "uvloop>=0.19",
    ],
    extras_require={
        # the test suite (with the notebooks and a real browser), and the linter CI runs
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.8",  # --no-loadscope-reorder; a worker a core and one more
            "hypothesis>=6.100",  # property-based tests of what clients send
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "ruff==0.17.6",
            "selenium>=4.20",
        ],
    },
    entry_points={"console_scripts": ["relunet=relunet.cli:entry"]},
)
