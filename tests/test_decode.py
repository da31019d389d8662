"""How `relunet serve` reads a request's body (relunet.serve.decode), against json: in
this process, no server needed (tests/test_serve.py runs the server)."""

import json
import time

import numpy as np
import pytest

from relunet.serve.decode import (
    BadRequest,
    InputSpec,
    numeric_array,
    parse_body,
    read_request,
    to_input,
)

TRICKY = [
    "[0]",
    "[[1,2],[3,4]]",
    " [ [ 1 , 2 ] ,\n[3,\t4] ] ",
    "[[[1]],[[2]]]",
    "[123456789012345678]",
    "[[1,2],[3]]",  # ragged
    "[[1,2],3]",
    "[1,[2]]",
    "[[1],[2,3]]",
    "[[[1,2]],[[3],[4]]]",
    "[]",
    "[[]]",
    "[[],[]]",
    "[1,]",
    "[,1]",
    "[1,,2]",
    "[1 2]",
    "[01]",
    "[[1]]]",
    "[[1]",
    "[1234567890123456789012]",  # past int64
]


def _json_reading(text):
    """What json and NumPy make of a text: an int array, or None if it is not a
    regular, non-empty array of whole numbers >= 0 (or not JSON at all)."""
    try:
        array = np.asarray(json.loads(text))
    except ValueError:
        return None
    if array.dtype.kind not in "iu" or not array.size or array.min() < 0 or array.ndim < 1:
        return None
    return array if array.max() < 2**63 else None


@pytest.mark.parametrize("text", TRICKY)
def test_numeric_arrays_are_read_as_json_reads_them_or_left_to_json(text):
    got, expected = numeric_array(text.encode()), _json_reading(text)
    if expected is None:
        assert got is None
    else:
        assert got.shape == expected.shape and (got == expected).all()


def test_random_arrays_and_their_corruptions_read_as_json_reads_them():
    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(rng.integers(1, 4, rng.integers(1, 5)))
        text = json.dumps(rng.integers(0, 300, shape).tolist())
        if rng.random() < 0.5:  # a character removed, doubled or changed
            i, kind = rng.integers(len(text)), rng.integers(3)
            swap = "[], 0123456789"[rng.integers(14)]
            text = [
                text[:i] + text[i + 1 :],
                text[:i] + text[i] + text[i:],
                text[:i] + swap + text[i + 1 :],
            ][kind]
        got, expected = numeric_array(text.encode()), _json_reading(text)
        if expected is None:
            assert got is None, text
        else:
            assert got is not None and got.shape == expected.shape and (got == expected).all(), text


def test_a_body_is_json_with_its_numeric_arrays_read_by_numpy():
    body = (
        b'{"signature_name": "x[1]", "instances": [{"images": [[1],[2]]}, {"images": [[3],[4]]}],'
        b' "other": [1.5, -2, "[3]"], "nested": {"inputs": [[0, 255]]}}'
    )
    parsed = parse_body(body)
    reference = json.loads(body)
    assert parsed["signature_name"] == "x[1]" and parsed["other"] == [1.5, -2, "[3]"]
    for got, want in zip(parsed["instances"], reference["instances"], strict=True):
        assert isinstance(got["images"], np.ndarray) and got["images"].tolist() == want["images"]
    assert parsed["nested"]["inputs"].tolist() == [[0, 255]]
    bad = b'{"a": [1],}'
    with pytest.raises(json.JSONDecodeError) as reference_error:
        json.loads(bad)
    with pytest.raises(BadRequest) as raised:  # json's own words and place (they vary by Python)
        parse_body(bad)
    assert str(raised.value) == f"The body is not JSON: {reference_error.value}."


@pytest.mark.parametrize("name", [b"[0]", b"[[1, 2]]", b"7", b'{"a": [3]}', b"true"])
def test_a_signature_name_that_is_not_a_string_is_refused_naming_what_came(name):
    """Found by test_fuzz: `[0]` is read as an array, which json could not write back
    into the error (a 500)."""
    with pytest.raises(BadRequest) as raised:
        read_request(b'{"signature_name": ' + name + b', "instances": null}')
    assert str(raised.value) == (
        f'"signature_name" must be a string. Received: {json.dumps(json.loads(name))}.'
    )


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1_000_000 + b"x",
        b'"' + b'\\"' * 500_000,
        b'{"a": "' + b"x" * 1_000_000,
        b"[" * 100_000 + b"1" + b"]" * 100_000,
        b"[[" + b"0," * 100_000 + b"0]" + b",[0]" * 200_000 + b"]",  # a huge shape, guessed
    ],
    ids=["open brackets", "escaped quotes", "unterminated string", "too deep", "ragged"],
)
def test_no_body_of_a_megabyte_takes_long_to_read(body):
    """Each byte is looked at a bounded number of times: a quadratic reader would take
    hours here (and a shape guessed from a ragged array is never built)."""
    start = time.perf_counter()
    try:
        parse_body(body)
    except BadRequest as error:
        assert "not JSON" in str(error)
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_an_input_with_no_pixels_is_refused_naming_its_shape(dtype):
    """A row of width 0 for the reader's `serving_rows` [1, 28, w] passed the shape check
    and reached TensorFlow (its message, or a 500 from NumPy's min of nothing)."""
    rows = InputSpec("rows", np.dtype(dtype), (1, 28, None))
    with pytest.raises(BadRequest) as raised:
        to_input([[[]] * 28], rows, rows=True)
    assert str(raised.value) == "'rows' holds no pixels; received shape [1, 28, 0]."
    assert to_input([[[0]] * 28], rows, rows=True).shape == (1, 28, 1)


@pytest.mark.parametrize(
    "value, says",
    [
        (float("nan"), "holds values that are not finite (NaN or infinity)."),
        (float("inf"), "holds values that are not finite (NaN or infinity)."),
        (1e39, "holds values beyond float32's range."),
    ],
)
def test_a_value_no_model_can_read_is_refused_not_run(value, says):
    """NaN, infinity and numbers past float32 reached the finder (answered 200, with
    NumPy's overflow warnings in the server's log)."""
    rows = InputSpec("rows", np.dtype(np.float32), (1, 28, None))
    with pytest.raises(BadRequest) as raised:
        to_input([[[0.5, value]] * 28], rows, rows=True)
    assert str(raised.value) == f"'rows' {says}"


def test_a_shape_error_says_what_each_none_stands_for():
    rows = InputSpec("rows", np.dtype(np.float32), (1, 28, None))
    with pytest.raises(BadRequest, match=r"\[1, 28, None\] \(None: any width\); received"):
        to_input([[[0.5]] * 27], rows, rows=True)
    with pytest.raises(BadRequest) as raised:
        to_input([[[0.5]] * 27 + [[0.5, 0.5]]], rows, rows=True)  # ragged
    assert str(raised.value).startswith("'rows' is not a regular array: ")
    assert not str(raised.value).endswith("..")


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_base64_without_its_padding_is_read_as_tf_serving_reads_it(cut):
    """absl's Base64Unescape, which TF Serving decodes `b64` with, takes a value with no
    "=" at its end (or the right number); a wrong number is refused."""
    import base64

    images = InputSpec("image_bytes", None, (None,))
    data = bytes(range(3 * 5 + 3 - cut))  # 0, 2 or 1 "=" when encoded
    text = base64.b64encode(data).decode()
    assert to_input([{"b64": text.rstrip("=")}], images, rows=True) == [data]
    if cut:
        with pytest.raises(BadRequest, match="not valid base64"):
            to_input([{"b64": text + "="}], images, rows=True)
