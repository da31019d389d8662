"""relunet: the ReLU-vs-Sigmoid MNIST lab as a resumable, exportable Keras trainer."""

from setuptools import find_packages, setup

setup(
    name="relunet",
    version="0.1.0",
    description="ReLU vs Sigmoid on MNIST: a Keras 3 trainer with the lab's own train_step, "
    "offline tfds data, resumable fit, keras-tuner search and SavedModel export.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10",
        "tensorflow-datasets>=4.9.9",
        "keras-tuner[bayesian]>=1.4.7",  # the extra brings scipy and scikit-learn for --tuner bayesian
        "tensorboard>=2.21,<2.22",  # the TensorBoard callback; tensorflow 2.21 no longer pulls it in
        "importlib_resources",  # needed by tensorflow-datasets to prepare datasets
        "matplotlib>=3.8",  # relunet compare's plots
    ],
    extras_require={
        # the test suite, including executing the notebooks
        "dev": ["pytest>=8", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],
    },
    entry_points={"console_scripts": ["relunet=relunet.cli:main"]},
)
