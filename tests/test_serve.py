"""`relunet serve`: TF Serving's REST API over real HTTP, and the drawing page in a real browser."""

import base64
import http.client
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import free_ports

from relunet.data import to_inputs
from relunet.export import export_saved_model
from relunet.idx import read_folder
from relunet.model import load_model

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


def call(url, body=None, raw=None):
    """(status, JSON answer) of a GET, or of a POST of `body` as JSON (or `raw` bytes)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_oversized(base, size):
    """POST `size` bytes; the server may answer 413 before it has read them all."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(
            "POST",
            "/v1/models/relunet:predict",
            body=b" " * size,
            headers={"Content-Type": "application/json"},
        )
    except (BrokenPipeError, ConnectionResetError):
        pass  # it stopped reading: its answer is waiting
    response = connection.getresponse()
    return response.status, json.loads(response.read())


@pytest.fixture(scope="module")
def model(trained_run):
    return load_model(str(trained_run / "best.keras"))


@pytest.fixture(scope="module")
def digits(model, mnist_dir):
    """Two MNIST test digits the model classifies right, with their labels."""
    test = read_folder(mnist_dir).splits["test"]
    images, labels = test.images[:50], test.labels[:50]
    right = np.flatnonzero(model.predict(to_inputs(images), verbose=0).argmax(-1) == labels)
    chosen = right[[0, 1]]
    return images[chosen], labels[chosen].astype(int)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """`relunet serve` on a folder holding version 1, on a free port of 127.0.0.1."""
    folder = tmp_path_factory.mktemp("served") / "relunet"
    export_saved_model(model, folder, verbose=False)
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relunet.cli",
            "serve",
            str(folder),
            "--port",
            str(port),
            "--max-body-bytes",
            "1000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if call(f"{base}/v1/models/relunet")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    yield {"base": base, "folder": folder, "model": model}
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


def test_the_status_and_metadata_answer_as_tf_serving_does(server):
    status, answer = call(f"{server['base']}/v1/models/relunet")
    assert status == 200
    assert answer["model_version_status"][0] == {
        "version": "1",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    status, meta = call(f"{server['base']}/v1/models/relunet/metadata")
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert status == 200 and meta["model_spec"] == {
        "name": "relunet",
        "signature_name": "",
        "version": "1",
    }
    assert signatures["serving_default"]["inputs"]["images"]["dtype"] == "DT_UINT8"
    assert signatures["serving_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"


def test_pixel_arrays_in_the_row_and_columnar_formats_get_the_right_classes(server, digits):
    images, labels = digits
    url = f"{server['base']}/v1/models/relunet:predict"
    status, rows = call(url, {"instances": images.tolist()})
    assert status == 200
    assert [p["class"] for p in rows["predictions"]] == labels.tolist()
    assert all(abs(sum(p["probabilities"]) - 1) < 1e-5 for p in rows["predictions"])
    status, columns = call(url, {"inputs": {"images": images.tolist()}})
    assert status == 200 and columns["outputs"]["class"] == labels.tolist()
    status, named = call(url, {"instances": [{"images": image} for image in images.tolist()]})
    assert status == 200 and [p["class"] for p in named["predictions"]] == labels.tolist()


def test_b64_pngs_get_the_right_classes_through_the_bytes_signature(server, digits):
    images, labels = digits
    pngs = [{"b64": base64.b64encode(tf.io.encode_png(image).numpy()).decode()} for image in images]
    url = f"{server['base']}/v1/models/relunet:predict"
    status, answer = call(url, {"signature_name": "serving_bytes", "instances": pngs})
    assert status == 200 and [p["class"] for p in answer["predictions"]] == labels.tolist()
    status, answer = call(url, {"signature_name": "serving_bytes", "inputs": pngs})
    assert status == 200 and answer["outputs"]["class"] == labels.tolist()


@pytest.mark.parametrize(
    "body, status, says",
    [
        (
            {"instances": [[1, 2, 3]]},
            400,
            "must have shape [None, 28, 28, 1] (None: any number of images); received shape [1, 3]",
        ),
        ({"instances": [[["a"]]]}, 400, "must hold numbers; received strings"),
        ({"instances": [], "inputs": []}, 400, "not both"),
        ({"instances": []}, 400, "non-empty list"),
        ({"signature_name": "nope", "instances": [[0]]}, 400, '"nope" not found'),
        (
            {"signature_name": "serving_bytes", "instances": [{"b64": "***"}]},
            400,
            "not valid base64",
        ),
        (
            {"signature_name": "serving_bytes", "instances": [{"b64": "aGVsbG8="}]},
            400,
            "could not run on this input",
        ),
        ({"instances": [[[[300]] * 28] * 28]}, 400, "outside the whole numbers 0..255"),
        ({"inputs": {"pixels": [[0]]}}, 400, "The signature's input is 'images'"),
    ],
)
def test_bad_requests_get_a_400_with_a_json_error(server, body, status, says):
    got, answer = call(f"{server['base']}/v1/models/relunet:predict", body)
    assert got == status and says in answer["error"], answer


def test_unknown_models_versions_and_oversized_or_broken_bodies_are_refused(server):
    base = server["base"]
    assert call(f"{base}/v1/models/other:predict", {"instances": [[0]]})[0] == 404
    assert call(f"{base}/v1/models/relunet/versions/9")[0] == 404
    assert call(f"{base}/v1/models/relunet:predict", raw=b"{not json")[0] == 400
    status, answer = post_oversized(base, 1_000_001)
    assert status == 413 and "limit" in answer["error"]
    assert call(f"{base}/v1/models/relunet")[0] == 200  # and the server still answers


def test_a_new_version_is_served_without_a_restart(server, digits):
    images, labels = digits
    export_saved_model(server["model"], server["folder"], verbose=False)  # version 2
    status, answer = call(f"{server['base']}/v1/models/relunet")
    assert status == 200
    assert [v["version"] for v in answer["model_version_status"]] == ["2", "1"]
    url = f"{server['base']}/v1/models/relunet/versions/2:predict"
    status, answer = call(url, {"instances": images.tolist()})
    assert status == 200 and [p["class"] for p in answer["predictions"]] == labels.tolist()
    shutil.rmtree(server["folder"] / "2")


def test_it_listens_on_this_machine_only_by_default(server):
    port = server["base"].rsplit(":", 1)[1]
    listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening


@pytest.mark.slow
def test_a_digit_drawn_in_a_real_browser_is_classified(server):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        )
    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=900,700",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        browser.get(server["base"] + "/")
        canvas = browser.find_element(By.ID, "canvas")
        # A "1": one stroke down the middle of the 280x280 canvas (offsets from its centre).
        ActionChains(browser).move_to_element_with_offset(
            canvas, 0, -100
        ).click_and_hold().move_by_offset(0, 50).move_by_offset(0, 50).move_by_offset(
            0, 50
        ).move_by_offset(0, 50).release().perform()
        shown = WebDriverWait(browser, 30).until(
            lambda b: (
                b.find_element(By.ID, "class").text not in ("", "-")
                and b.find_element(By.ID, "class").text
            )
        )
        bars = browser.find_elements(By.CSS_SELECTOR, ".bar")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve_page.png"))
        assert shown == "1" and len(bars) == 10
        assert browser.find_element(By.ID, "error").text == ""
        # The winner's bar is drawn as wide as its probability (more than half the track).
        drawn, track = browser.execute_script(
            "const bar = document.getElementById('bar1');"
            "return [bar.getBoundingClientRect().width,"
            "        bar.parentElement.getBoundingClientRect().width];"
        )
        assert drawn > track / 2 > 0
    finally:
        browser.quit()
