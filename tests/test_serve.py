"""`relunet serve`: TF Serving's REST API over real HTTP, and the drawing page in a real browser.

A real server process on an export of a trained model: the full suite's, not the quick
tier's (30-40 s before the first answer), and run on every Python .ci/run tries."""

import base64
import http.client
import io
import json
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import call, serving

from relunet.data import to_inputs
from relunet.data.idx import read_folder
from relunet.inference.export import export_saved_model
from relunet.training.model import load_model

pytestmark = [pytest.mark.slow, pytest.mark.pythons]


def b64_png(image):
    return {"b64": base64.b64encode(tf.io.encode_png(image).numpy()).decode()}


def at_once(requests):
    """Send (url, body) requests from one thread each, released together; their
    (status, answer, headers) in order."""
    start, answers = threading.Barrier(len(requests)), [None] * len(requests)

    def send(i, url, body):
        start.wait()
        answers[i] = call(url, body, headers=True)

    threads = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


# -- a live server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(trained_run):
    return load_model(str(trained_run / "best.keras"))


@pytest.fixture(scope="module")
def digits(model, mnist_dir):
    """Two MNIST test digits the model classifies right (and does not reject), with their
    labels."""
    test = read_folder(mnist_dir).splits["test"]
    images, labels = test.images[:50], test.labels[:50]
    probabilities = model.probabilities(to_inputs(images)).numpy()
    read = (probabilities.argmax(-1) == labels) & (probabilities.max(-1) >= model.reject_below)
    right = np.flatnonzero(read)
    chosen = right[[0, 1]]
    return images[chosen], labels[chosen].astype(int)


@pytest.fixture(scope="module")
def many(mnist_dir):
    """The first 300 MNIST test digits [300, 28, 28, 1] and their labels."""
    test = read_folder(mnist_dir).splits["test"]
    return test.images[:300], test.labels[:300]


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """`relunet serve` on a folder holding versions 1 and 2 (labelled stable and canary),
    on a free port of 127.0.0.1; batches wait up to 50 ms for concurrent requests."""
    folder = tmp_path_factory.mktemp("served") / "relunet"
    first = export_saved_model(model, folder, verbose=False)
    shutil.copytree(first, folder / "2")  # a second version, as an operator copies one in
    flags = ["--max-body-bytes", "1000000", "--label", "stable=1", "--label", "canary=2"]
    with serving(folder, *flags, "--batch-timeout-micros", "50000") as served:
        yield {"base": served["base"], "folder": folder, "model": model}


def dims(*sizes):
    return {"dim": [{"size": str(n), "name": ""} for n in sizes], "unknown_rank": False}


# TF Serving's metadata answer, in the shape of its own test data
# (tensorflow_serving/servables/tensorflow/testdata/
# saved_model_half_plus_two_2_versions_metadata.json), written out for relunet's
# serving_default: the proto field names, sizes and versions as strings, a `name` in
# each dim, `unknown_rank`, `method_name` and `defaults`. Output tensor names are
# whatever the export's graph calls them ("StatefulPartitionedCall_1:0").
SERVING_DEFAULT = {
    "inputs": {
        "images": {
            "dtype": "DT_UINT8",
            "tensor_shape": dims(-1, 28, 28, 1),
            "name": "serving_default_images:0",
        }
    },
    "outputs": {
        "class": {"dtype": "DT_INT64", "tensor_shape": dims(-1), "name": "OUTPUT"},
        "probabilities": {"dtype": "DT_FLOAT", "tensor_shape": dims(-1, 10), "name": "OUTPUT"},
        "not_a_digit": {"dtype": "DT_BOOL", "tensor_shape": dims(-1), "name": "OUTPUT"},
    },
    "method_name": "tensorflow/serving/predict",
    "defaults": {},
}
# serving_bytes' outputs: serving_default's, and the number read
# (relunet.inference.answers).
SERVING_BYTES_OUTPUTS = {
    **SERVING_DEFAULT["outputs"],
    "digit_found": {"dtype": "DT_BOOL", "tensor_shape": dims(-1), "name": "OUTPUT"},
    "number": {"dtype": "DT_STRING", "tensor_shape": dims(-1), "name": "OUTPUT"},
    "digits": {"dtype": "DT_INT64", "tensor_shape": dims(-1, 8), "name": "OUTPUT"},
    "digit_count": {"dtype": "DT_INT32", "tensor_shape": dims(-1), "name": "OUTPUT"},
    "digit_probabilities": {"dtype": "DT_FLOAT", "tensor_shape": dims(-1, 8), "name": "OUTPUT"},
    "digit_boxes": {"dtype": "DT_INT32", "tensor_shape": dims(-1, 8, 4), "name": "OUTPUT"},
}


def test_the_status_and_metadata_answer_as_tf_serving_does(server):
    status, answer = call(f"{server['base']}/v1/models/relunet")
    versions = [v["version"] for v in answer["model_version_status"]]
    assert status == 200 and versions[-2:] == ["2", "1"]  # newest first
    assert answer["model_version_status"][-1] == {
        "version": "1",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    status, meta = call(f"{server['base']}/v1/models/relunet/versions/1/metadata")
    assert status == 200 and set(meta) == {"model_spec", "metadata"}
    assert meta["model_spec"] == {"name": "relunet", "signature_name": "", "version": "1"}
    assert set(meta["metadata"]) == {"signature_def"}
    assert set(meta["metadata"]["signature_def"]) == {"signature_def"}
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "serving_bytes"}
    for signature in signatures.values():  # every field, as TF Serving writes them
        assert set(signature) == {"inputs", "outputs", "method_name", "defaults"}
        for info in [*signature["inputs"].values(), *signature["outputs"].values()]:
            assert set(info) == {"dtype", "tensor_shape", "name"}
            assert set(info["tensor_shape"]) == {"dim", "unknown_rank"}
            assert all(set(d) == {"size", "name"} for d in info["tensor_shape"]["dim"])
            assert all(isinstance(d["size"], str) for d in info["tensor_shape"]["dim"])
    for signature in signatures.values():
        for output in signature["outputs"].values():
            assert output["name"].startswith("StatefulPartitionedCall") and ":" in output["name"]
            output["name"] = "OUTPUT"
    assert signatures["serving_default"] == SERVING_DEFAULT
    assert signatures["serving_bytes"]["outputs"] == SERVING_BYTES_OUTPUTS
    assert signatures["serving_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert signatures["serving_bytes"]["inputs"]["image_bytes"]["tensor_shape"] == dims(-1)


def test_paths_match_in_any_case_but_the_model_name(server):
    base = server["base"]
    assert call(f"{base}/V1/MODELS/relunet")[0] == 200
    status, meta = call(f"{base}/v1/Models/relunet/VERSIONS/1/MetaData")
    assert status == 200 and meta["model_spec"]["version"] == "1"
    assert call(f"{base}/V1/models/relunet:PREDICT", {"instances": [[[[0]] * 28] * 28]})[0] == 200
    status, answer = call(f"{base}/v1/models/RELUNET")
    assert status == 404 and "RELUNET" in answer["error"]


def test_version_labels_name_versions_and_an_unknown_label_is_a_400(server, digits):
    images, labels = digits
    base = f"{server['base']}/v1/models/relunet"
    status, answer = call(f"{base}/labels/stable")
    assert status == 200 and [v["version"] for v in answer["model_version_status"]] == ["1"]
    status, meta = call(f"{base}/labels/canary/metadata")
    assert status == 200 and meta["model_spec"]["version"] == "2"
    status, answer = call(f"{base}/labels/canary:predict", {"instances": images.tolist()})
    assert status == 200 and [p["class"] for p in answer["predictions"]] == labels.tolist()
    for path in ("/labels/beta", "/labels/beta/metadata", "/labels/beta:predict"):
        status, answer = call(base + path, {"instances": [[0]]} if ":" in path else None)
        assert status == 400 and answer["error"] == "Unrecognized servable version label: beta"
    assert call(f"{base}/labels/STABLE")[0] == 400  # labels match exactly


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
    status, floats = call(url, {"instances": images.astype(float).tolist()})  # 7.0: json's
    assert status == 200 and floats == rows


def test_a_large_pixel_request_gets_the_models_own_answer(server, many):
    """200 digits, about 840 KB of JSON lists, read by NumPy (relunet.serve.decode)."""
    images = many[0][:200]
    url = f"{server['base']}/v1/models/relunet:predict"
    status, answer = call(url, {"instances": images.tolist()})
    model = server["model"]
    probabilities = model.probabilities(to_inputs(images)).numpy()
    rejected = probabilities.max(-1) < model.reject_below
    assert status == 200 and len(answer["predictions"]) == len(images)
    assert [p["not_a_digit"] for p in answer["predictions"]] == rejected.tolist()
    classes = np.where(rejected, -1, probabilities.argmax(-1))
    assert [p["class"] for p in answer["predictions"]] == classes.tolist()
    got = np.array([p["probabilities"] for p in answer["predictions"]])
    assert np.allclose(got, probabilities, atol=1e-5)


def test_b64_pngs_get_the_right_classes_through_the_bytes_signature(server, digits):
    images, labels = digits
    pngs = [b64_png(image) for image in images]
    url = f"{server['base']}/v1/models/relunet:predict"
    status, answer = call(url, {"signature_name": "serving_bytes", "instances": pngs})
    assert status == 200 and [p["class"] for p in answer["predictions"]] == labels.tolist()
    status, answer = call(url, {"signature_name": "serving_bytes", "inputs": pngs})
    assert status == 200 and answer["outputs"]["class"] == labels.tolist()
    assert answer["outputs"]["digit_found"] == [True, True]


def test_a_blank_page_posted_as_b64_is_answered_as_no_digit(server, digits):
    """A blank 100x50 PNG, and paper with only its noise: digit_found false, class -1."""
    blank = np.full((50, 100, 1), 255, np.uint8)
    noisy = np.random.default_rng(0).normal(235, 6, (120, 90, 1)).clip(0, 255).astype(np.uint8)
    pngs = [b64_png(blank), b64_png(noisy), b64_png(digits[0][0])]
    url = f"{server['base']}/v1/models/relunet:predict"
    status, answer = call(url, {"signature_name": "serving_bytes", "instances": pngs})
    assert status == 200, answer
    found = [(p["digit_found"], p["class"]) for p in answer["predictions"]]
    assert found == [(False, -1), (False, -1), (True, int(digits[1][0]))]


def _batch(headers):
    """X-Relunet-Batch: requests=3, images=3, thread=1 as a dict of numbers."""
    return {k: int(v) for k, v in (p.split("=") for p in headers["X-Relunet-Batch"].split(", "))}


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, digits):
    images, labels = digits
    url = f"{server['base']}/v1/models/relunet:predict"
    requests = []
    for i in range(12):  # both digits, both signatures, both formats
        image = images[i % 2]
        if i % 4 < 2:
            requests.append({"signature_name": "serving_bytes", "instances": [b64_png(image)]})
        else:
            requests.append({"inputs": {"images": [image.tolist()]}})
    answers = at_once([(url, body) for body in requests])
    for i, (status, answer, _) in enumerate(answers):
        assert status == 200, answer
        got = answer["predictions"][0] if "predictions" in answer else answer["outputs"]
        assert got["class"] in (labels[i % 2], [labels[i % 2]])
    batches = [_batch(headers) for _, _, headers in answers]
    assert max(b["requests"] for b in batches) > 1, batches  # run together
    assert all(b["images"] == b["requests"] <= 6 for b in batches)  # one signature a batch


def test_a_bad_request_among_concurrent_ones_fails_alone(server, digits):
    images, labels = digits
    url = f"{server['base']}/v1/models/relunet:predict"
    good = {"signature_name": "serving_bytes", "instances": [b64_png(images[0])]}
    bad = {"signature_name": "serving_bytes", "instances": [{"b64": "aGVsbG8="}]}  # not an image
    answers = at_once([(url, bad if i == 3 else good) for i in range(6)])
    assert answers[3][0] == 400 and "could not run on this input" in answers[3][1]["error"]
    for i, (status, answer, _) in enumerate(answers):
        if i != 3:
            assert status == 200 and answer["predictions"][0]["class"] == labels[0]


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
        ({"signature_name": "serving_default"}, 400, "received an object with neither"),
        ([], 400, "received a list"),
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
        ({"signature_name": ["serving_bytes"], "instances": [[0]]}, 400, "must be a string"),
        ({"signature_name": {"a": 1}, "instances": [[0]]}, 400, "must be a string"),
    ],
)
def test_bad_requests_get_a_400_with_a_json_error(server, body, status, says):
    got, answer = call(f"{server['base']}/v1/models/relunet:predict", body)
    assert got == status and says in answer["error"], answer


def test_unknown_models_versions_and_broken_bodies_are_refused(server):
    base = server["base"]
    assert call(f"{base}/v1/models/other:predict", {"instances": [[0]]})[0] == 404
    assert call(f"{base}/v1/models/relunet/versions/9")[0] == 404
    assert call(f"{base}/v1/models/relunet/versions/one")[0] == 400
    status, answer = call(f"{base}/v1/models/relunet:predict", raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = call(f"{base}/v1/models/relunet:predict", raw=b"null")
    assert status == 400 and "received null" in answer["error"]
    assert call(f"{base}/v1/models/relunet:classify", {"instances": [[0]]})[0] == 404
    assert call(f"{base}/v1/models/relunet:")[0] == 404  # an empty verb: not the status
    status, answer = call(f"{base}/v1/models/relunet/metadata:predict")
    assert status == 404 and "Unknown path" in answer["error"]
    assert call(f"{base}/v2/models/relunet")[0] == 404


def test_methods_versions_and_waiting_clients_are_answered_as_tf_serving_does(server):
    """PUT, a GET of :predict, a POST of the status or of /healthz, and TRACE are 405s
    with a JSON error and the methods the path takes; a version in other digits than
    ASCII's is not a number; a client that waits for "100 Continue" before sending a body
    over the limit gets the 413 at once, and no 100."""
    host, port = server["base"].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    for method, path, allow in [
        ("PUT", "/v1/models/relunet:predict", "POST"),
        ("GET", "/v1/models/relunet:predict", "POST"),
        ("POST", "/v1/models/relunet/metadata", "GET, HEAD"),
        ("TRACE", "/v1/models/relunet", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
    ]:
        connection.request(method, path, body=b"{}")
        response = connection.getresponse()
        assert response.status == 405 and method in json.loads(response.read())["error"]
        assert response.getheader("Allow") == allow
    status, answer = call(f"{server['base']}/v1/models/relunet/versions/%D9%A1")  # Arabic 1
    assert status == 400 and "is not a number" in answer["error"]
    with socket.create_connection((host, int(port)), timeout=10) as waiting:
        waiting.sendall(
            b"POST /v1/models/relunet:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"
        )
        first = waiting.recv(100)
    assert first.startswith(b"HTTP/1.1 413"), first


def test_a_body_over_the_limit_gets_a_413_the_client_can_read(server, many):
    """243 digits as JSON lists are about 1.02 MB, over this server's 1,000,000 bytes: the
    server reads the body to its end, so a plain client (which sends all of it before it
    reads) gets the 413, not a reset, and can go on using its connection."""
    body = json.dumps({"instances": many[0][:243].tolist()}).encode()
    assert len(body) > 1_000_000
    host, port = server["base"].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("POST", "/v1/models/relunet:predict", body=body)
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 413 and answer["error"] == (
        f"The request is {len(body):,} bytes; the limit is 1,000,000 bytes."
    )
    connection.request("GET", "/v1/models/relunet")  # the same connection
    assert connection.getresponse().status == 200
    connection.close()
    status, answer = call(f"{server['base']}/v1/models/relunet:predict", raw=body)  # urllib
    assert status == 413 and "limit" in answer["error"]


def test_a_new_version_is_served_without_a_restart(server, digits):
    images, labels = digits
    export_saved_model(server["model"], server["folder"], verbose=False)  # version 3
    status, answer = call(f"{server['base']}/v1/models/relunet")
    assert status == 200
    assert [v["version"] for v in answer["model_version_status"]] == ["3", "2", "1"]
    url = f"{server['base']}/v1/models/relunet/versions/3:predict"
    status, answer = call(url, {"instances": images.tolist()})
    assert status == 200 and [p["class"] for p in answer["predictions"]] == labels.tolist()
    shutil.rmtree(server["folder"] / "3")


def test_a_version_copied_in_is_served_once_whole_and_the_others_keep_serving(server, digits):
    """A user's `cp -r` of a new export into the served folder, as it happens: the new
    version's folder with half its saved_model.pb, then its variables missing, then whole.
    Until it is whole, every request to the other versions is answered and the status
    says version 3 is not loaded and why; then it serves."""
    images, labels = digits
    base, folder = f"{server['base']}/v1/models/relunet", server["folder"]
    source = folder.parent / "export-to-copy"
    export_saved_model(server["model"], source, verbose=False)  # source/1, copied as 3
    pb = (source / "1" / "saved_model.pb").read_bytes()
    copy = folder / "3"
    copy.mkdir()
    (copy / "saved_model.pb").write_bytes(pb[: len(pb) // 2])

    def still_serving(expected_newest):
        for path in ("", "/versions/1", "/labels/stable"):
            status, answer = call(f"{base}{path}:predict", {"instances": images.tolist()})
            assert status == 200, answer
            assert [p["class"] for p in answer["predictions"]] == labels.tolist()
        status, answer = call(base)
        states = {v["version"]: v for v in answer["model_version_status"]}
        assert status == 200 and states["2"]["state"] == "AVAILABLE"
        assert max(v for v, s in states.items() if s["state"] == "AVAILABLE") == expected_newest
        return states

    def version_3_once(holds):  # its status, once `holds` says yes to it
        deadline = time.monotonic() + 60  # the folder is looked at again every second
        while time.monotonic() < deadline:
            states = {v["version"]: v for v in call(base)[1]["model_version_status"]}
            if holds(states["3"]):
                return states["3"]
            time.sleep(0.1)
        raise AssertionError(f"version 3 never came to pass: {states['3']}")

    states = still_serving("2")
    half = states["3"]["status"]
    assert states["3"]["state"] == "END" and half["error_message"]
    status, answer = call(f"{base}/versions/3:predict", {"instances": images.tolist()})
    assert status == 404 and "could not be loaded" in answer["error"]
    (copy / "saved_model.pb").write_bytes(pb)  # the graph whole, the variables not yet
    # A version that failed is looked at again once its files change: another reason.
    assert version_3_once(lambda v: v["status"] != half)["state"] == "END"
    assert still_serving("2")["3"]["state"] == "END"
    shutil.copytree(source / "1" / "variables", copy / "variables")
    for rest in (p for p in (source / "1").iterdir() if not (copy / p.name).exists()):
        (shutil.copytree if rest.is_dir() else shutil.copy)(rest, copy / rest.name)
    ok = {"error_code": "OK", "error_message": ""}
    assert version_3_once(lambda v: v["state"] == "AVAILABLE")["status"] == ok
    assert still_serving("3")["3"]["status"] == ok
    status, answer = call(f"{base}/versions/3:predict", {"instances": images.tolist()})
    assert status == 200 and [p["class"] for p in answer["predictions"]] == labels.tolist()
    shutil.rmtree(copy)


def test_a_bomb_among_concurrent_requests_is_refused_before_it_is_batched(server, digits):
    """An image whose header declares 20000x20000 pixels gets a 400 naming the limit
    at once, and the good requests sent with it are answered as quickly as without it."""
    images, labels = digits
    png = tf.io.encode_png(np.zeros((10, 10, 1), np.uint8)).numpy()
    bomb = png[:16] + (20000).to_bytes(4, "big") * 2 + png[24:]
    url = f"{server['base']}/v1/models/relunet:predict"
    good = {"signature_name": "serving_bytes", "instances": [b64_png(images[0])]}
    bomb = {"b64": base64.b64encode(bomb).decode()}
    bad = {"signature_name": "serving_bytes", "instances": [bomb]}
    start = time.monotonic()
    answers = at_once([(url, good)] * 4 + [(url, bad)])
    assert time.monotonic() - start < 5  # decoding the bomb takes minutes and gigabytes
    assert [status for status, _, _ in answers] == [200] * 4 + [400]
    assert all(answer["predictions"][0]["class"] == labels[0] for _, answer, _ in answers[:4])
    assert "declares 20000x20000 pixels" in answers[4][1]["error"]
    assert "50,000,000" in answers[4][1]["error"]


def test_it_listens_on_this_machine_only_by_default(server):
    port = server["base"].rsplit(":", 1)[1]
    listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening


def test_the_listening_socket_names_tcp_so_answers_are_not_held_back():
    """asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections whose socket
    names TCP as its protocol; relunet's listening socket does, so an answer's body never
    waits for the client's delayed ACK."""
    import asyncio

    from relunet.serve.listen import listening_socket

    listener = listening_socket("127.0.0.1", 0)
    seen = {}

    async def main():
        async def answer(reader, writer):
            accepted = writer.get_extra_info("socket")
            seen["nodelay"] = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        server = await asyncio.start_server(answer, sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen["nodelay"] == 1


def _raw(base: str, request: bytes) -> tuple[int, dict]:
    """(status, JSON answer) of raw request bytes, sent whole before the answer is read."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)


def test_a_request_head_over_the_limit_is_refused_in_json(server):
    """A 100 KB header is 431 and a 10 MB request line 414, each with a JSON `error`, the
    connection closed (relunet.serve.heads; both parsers: tests/test_heads.py)."""
    base = server["base"]
    header = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n"
    status, answer = _raw(base, header)
    assert status == 431 and "request head is longer than 32,768 bytes" in answer["error"]
    line = b"GET /" + b"l" * 10_000_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    status, answer = _raw(base, line)
    assert status == 414 and "request line is longer than 32,768 bytes" in answer["error"]
    assert call(f"{base}/healthz")[0] == 200  # and the server serves on


def test_a_108_megapixel_jpeg_is_read_by_the_export_and_a_60_megapixel_png_is_400(server):
    """The exported serving_bytes graph reads a phone's 12000x9000 JPEG (decoded at an
    eighth); the server refuses a PNG that declares 60 megapixels, as it is decoded
    whole (relunet.reading.image_headers)."""
    from PIL import Image, ImageDraw

    page = Image.new("L", (12000, 9000), 225)
    ImageDraw.Draw(page).line([(4500, 2500), (7500, 2500), (5500, 7000)], fill=30, width=500)
    jpeg = io.BytesIO()
    page.save(jpeg, "JPEG", quality=80)
    export = tf.saved_model.load(str(server["folder"] / "1"))
    read = export.signatures["serving_bytes"](image_bytes=tf.constant([jpeg.getvalue()]))
    assert read["digit_count"].numpy().tolist() == [1] and read["digit_found"].numpy()[0]
    png = tf.io.encode_png(np.zeros((10, 10, 1), np.uint8)).numpy()
    sixty = png[:16] + (10000).to_bytes(4, "big") + (6000).to_bytes(4, "big") + png[24:]
    body = {
        "signature_name": "serving_bytes",
        "instances": [{"b64": base64.b64encode(sixty).decode()}],
    }
    status, answer = call(f"{server['base']}/v1/models/relunet:predict", body)
    assert status == 400 and answer["error"].startswith(
        "Image 0 declares 10000x6000 pixels, more than the 50,000,000 pixels relunet reads of "
        "a PNG, GIF, BMP or WebP"
    )
