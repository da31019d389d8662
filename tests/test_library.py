"""relunet as a library: importing it defines names and nothing else (the import
system, TensorFlow's logging and stderr stay the importer's), and a saved model loads
through the one documented function whatever was imported first."""

import json
import subprocess
import sys

import pytest

from relunet.config import ModelConfig
from relunet.training.model import build_model

# What a process looks like after importing TensorFlow and Keras: the import system's
# finders and hooks, the loaders that ran the two packages, their logging levels and
# the variables TensorFlow reads.
STATE = """
import json, logging, os, sys
stderr = os.fstat(2).st_ino
{first}
import tensorflow, keras, absl.logging
print(json.dumps({{
    "meta_path": [repr(f) if isinstance(f, type) else type(f).__name__ for f in sys.meta_path],
    "path_hooks": [getattr(h, "__qualname__", type(h).__name__) for h in sys.path_hooks],
    "loaders": [type(m.__spec__.loader).__name__ for m in (tensorflow, keras)],
    "exec_module": [m.__spec__.loader.exec_module.__qualname__ for m in (tensorflow, keras)],
    "absl": absl.logging.get_verbosity(),
    "tf_logger": logging.getLogger("tensorflow").level,
    "env": {{k: v for k, v in os.environ.items() if k.startswith(("TF_", "RELUNET"))}},
    "stderr_kept": os.fstat(2).st_ino == stderr,
}}))
"""


def _state(first: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", STATE.format(first=first)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


# A fresh interpreter that imports TensorFlow: the full suite's, and each Python's.
@pytest.mark.slow
@pytest.mark.pythons
def test_importing_relunet_leaves_the_import_system_and_tensorflow_as_they_were():
    without = _state("")
    with_relunet = _state("import relunet, relunet.training.model")
    assert with_relunet == without
    assert not any("relunet" in f or "After" in f for f in with_relunet["meta_path"])


@pytest.mark.slow
@pytest.mark.pythons
def test_a_notebook_that_imports_keras_first_loads_a_saved_relunet(tmp_path):
    path = tmp_path / "m.keras"
    build_model(ModelConfig(width=8)).save(path)
    code = (
        "import keras\nimport relunet\n"
        f"model = relunet.load_model({str(path)!r})\n"
        "print(type(model).__name__, model.config.width)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.stdout.split() == ["ReluNet", "8"], result.stderr[-2000:]


def test_every_public_name_is_found_where_the_front_says():
    import relunet
    from relunet import data

    for module in (relunet, data):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
        assert set(module.__all__) <= set(dir(module))
    assert relunet.train.__module__ == "relunet.training.train"  # the function, not a module


def test_relunet_its_data_front_and_the_idx_reader_import_no_tensorflow():
    code = (
        "import sys, relunet, relunet.data, relunet.data.idx, relunet.preflight; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_python_api_refuses_a_config_without_its_model_or_with_one_path_as_inputs(
    tmp_path,
):
    """What the command line cannot be given, a Python caller can: a config with no model,
    one path where a list of paths goes (once read a character at a time, its first '.'
    named as a missing input), bytes among the inputs. Each is a RelunetError saying so,
    before anything is loaded; a list of Paths is taken as a list of names."""
    from pathlib import Path

    from relunet import ModelConfig, PredictConfig, RelunetError, build_model, predict

    model = str(tmp_path / "model.keras")
    build_model(ModelConfig(width=8)).save(model)
    with pytest.raises(RelunetError, match=r"inputs is one path \('digit.png'\)"):
        predict(PredictConfig(inputs="digit.png", model=model))
    with pytest.raises(RelunetError, match="No model was given"):
        predict(PredictConfig(inputs=("digit.png",), model=None))
    with pytest.raises(RelunetError, match="inputs must be paths"):
        predict(PredictConfig(inputs=(b"digit.png",), model=model))
    with pytest.raises(RelunetError, match=r"The input .*gone.png does not exist"):
        predict(PredictConfig(inputs=[Path(tmp_path / "gone.png")], model=model))
