"""The JSON bodies of TF Serving's :predict, read into NumPy and written back; no TensorFlow.

A request body is a JSON object holding `instances` (row format) or `inputs`
(columnar), nested lists of numbers or `{"b64": ...}` objects. `parse_body` reads it
with the standard library's `json`, except each array of whole non-negative numbers:
1,000 digits as pixels [1000, 28, 28, 1] are about 4 MB of text holding 784,000
one-element lists, whose Python objects take `json.loads` (and orjson, and msgspec),
then `np.asarray`, 700-770 ms to build, collect and walk. Such an array is instead
checked and shaped from its brackets and commas, and its numbers read by
`np.fromstring`, all in C loops over the bytes: 70-90 ms (benchmarks/README.md).
Anything else (a float, a sign, a ragged or empty list, a typo) is left to `json`,
whose errors and whose values are the reference.

`read_request` and `to_input` check the values against the signature's input as TF
Serving does, and answer a bad request with `BadRequest`, whose message goes back as
the `error`; `json_reply` writes the JSON answer.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


class BadRequest(Exception):
    """A request the server cannot answer; the message goes back as its `error`."""

    def __init__(self, message: str, status: int = 400, reason: str = "", allow: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason  # a limit's name, counted (relunet.serve.watch) where given
        self.allow = allow  # a 405's Allow header: the methods the path takes


@dataclass(frozen=True)
class InputSpec:
    """A signature's one input: its name, NumPy dtype (None: strings) and shape."""

    name: str
    dtype: np.dtype | None
    shape: tuple[int | None, ...] | None  # None: any rank


# A JSON string (skipped whole, so brackets inside one are never read as arrays), or an
# array's bracket and all the digits, commas, brackets and white space after it (the
# array is the run up to its last "]"). Bodies holding a backslash are all json's: then
# a string need not end at the next quote. Without backtracking (*+), each byte is
# looked at once: no body makes this slow.
_STRING_OR_ARRAY = re.compile(rb'"[^"]*"|\[[0-9\s,\[\]]*+')
_PLACEHOLDER = b'{"\\u0000": %d}'  # stands for an array read by NumPy; never in a request
# Each such array is read in a few passes of C over its bytes. Without its white space,
# with its brackets as "(" and ")" and each number as one "0", what is left (its
# skeleton) must be exactly the skeleton of a regular array of the shape its first
# items give, so "[[1,2],[3]]", "[1,,2]" and "[[]]" are left to json; "01" is refused
# on the way, and "1 2" by `np.fromstring`, which then reads the numbers.
_COMPACT = bytes.maketrans(b"[]123456789", b"()111111111")  # digits: "0" or "1"
_WHITE = b" \t\r\n"
_ONES_TO_ZEROS = bytes.maketrans(b"1", b"0")
_BRACKETS_TO_SPACES = bytes.maketrans(b"[]", b"  ")
_CLIPPED = np.iinfo(np.int64).max  # what np.fromstring makes of a number too long
_MAX_RANK = 32  # NumPy's arrays have at most 64 dimensions; images have 4


def parse_body(body: bytes) -> Any:
    """The request's JSON, with each regular array of whole numbers >= 0 as an int64
    ndarray (or nested lists, where it is anything else)."""
    arrays: list[np.ndarray] = []

    def swap(match: re.Match) -> bytes:
        text = match.group()
        end = text.rfind(b"]") + 1
        array = None if text[:1] == b'"' or not end else numeric_array(text[:end])
        if array is None:
            return text
        arrays.append(array)
        return _PLACEHOLDER % (len(arrays) - 1) + text[end:]

    fast = b"\\" not in body
    try:
        value = json.loads(_STRING_OR_ARRAY.sub(swap, body) if fast else body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        try:  # the error as json words it for the body itself
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(f"The body is not JSON: {error}.") from None
        except RecursionError:
            raise BadRequest("The body is not JSON this server reads: nested too deep.") from None
    return _restore(value, arrays) if arrays else value


def _restore(value: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "\0" in value:
            return arrays[value["\0"]]
        return {k: _restore(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, arrays) for v in value]
    return value


def numeric_array(text: bytes) -> np.ndarray | None:
    """A JSON array of whole numbers >= 0 (nested lists of one shape, none empty) as an
    int64 ndarray of that shape; None for any other text of digits, commas, brackets
    and white space."""
    compact = text.translate(_COMPACT, _WHITE)
    chars = np.frombuffer(compact, np.uint8)
    digit = chars >= ord("0")
    first = digit.copy()
    first[1:] &= ~digit[:-1]  # the first digit of each number
    if (first[:-1] & (chars[:-1] == ord("0")) & digit[1:]).any():  # "01" is not JSON
        return None
    skeleton = chars[~digit | first].tobytes().translate(_ONES_TO_ZEROS)  # "((0,0),(0,0))"
    shape = _shape_of_first_items(skeleton)
    if shape is None or _skeleton_length(shape) != len(skeleton) or skeleton != _skeleton(shape):
        return None
    try:
        values = np.fromstring(text.translate(_BRACKETS_TO_SPACES), dtype=np.int64, sep=",")
    except ValueError:  # "1 2"
        return None
    if values.size != np.prod(shape) or values.max() == _CLIPPED:
        return None
    return values.reshape(shape)


def _shape_of_first_items(skeleton: bytes) -> list[int] | None:
    """The shape a regular array with this skeleton has, read from its first list at
    each depth (any array that is not regular will not match the shape's skeleton)."""
    rank = len(skeleton) - len(skeleton.lstrip(b"("))
    if rank > _MAX_RANK:
        return None
    shape = []
    for depth in range(1, rank + 1):
        inner = rank - depth  # how deep the items of a list at this depth go
        end = skeleton.find(b")" * (inner + 1), depth - 1)
        if end < 0:
            return None
        shape.append(skeleton.count(b")" * inner + b",", depth - 1, end) + 1)
    return shape or None


def _skeleton_length(shape: list[int]) -> int:
    """len(_skeleton(shape)), without making it (a wrong guess could be huge)."""
    length = 1
    for size in reversed(shape):
        length = 2 + size * length + size - 1
    return length


def _skeleton(shape: list[int]) -> bytes:
    item = b"0"
    for size in reversed(shape):
        item = b"(" + b",".join([item] * size) + b")"
    return item


def _kind_of(request: Any) -> str:
    """What a body holds instead of a request, in a client's words."""
    if isinstance(request, dict):
        return "an object with neither"
    if isinstance(request, np.ndarray):  # parse_body's form of a list of numbers
        return "a list"
    return {list: "a list", str: "a string", type(None): "null", bool: "true or false"}.get(
        type(request), "a number"
    )


def read_request(body: bytes) -> tuple[str | None, bool, Any]:
    """A :predict body's signature name (None: the default), whether it is in the row
    format (`instances`) or the columnar one (`inputs`), and its values."""
    request = parse_body(body)
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        said = (
            "not both"
            if isinstance(request, dict) and "instances" in request
            else f"received {_kind_of(request)}"
        )
        raise BadRequest(
            'The body must be a JSON object with "instances" (row format) or '
            f'"inputs" (columnar format): {said}.'
        )
    rows = "instances" in request
    name = request.get("signature_name")
    if name is not None and not isinstance(name, str):
        shown = json.dumps(name, default=np.ndarray.tolist)  # [0] was read as an array
        raise BadRequest(f'"signature_name" must be a string. Received: {shown[:100]}.')
    return name or None, rows, request["instances" if rows else "inputs"]


def to_input(values: Any, spec: InputSpec, rows: bool) -> np.ndarray | list[bytes]:
    """The request's values as the signature's input: a NumPy array of its dtype and
    shape, or the bytes of each `{"b64": ...}` for a string input."""
    if not rows and _named(values):  # {"inputs": {"images": [...]}}
        values = _input(values, spec.name)
    if rows and isinstance(values, list):  # [{"images": ...}, ...] or [value, ...]
        values = [_input(v, spec.name) if _named(v) else v for v in values]
    if not isinstance(values, (list, np.ndarray)) or not len(values):
        raise BadRequest(f"'{spec.name}' must be a non-empty list, one entry per image.")
    if spec.dtype is None:
        return [_b64(v, spec.name) for v in values]
    try:
        array = np.asarray(values)
    except ValueError as error:
        raise BadRequest(
            f"'{spec.name}' is not a regular array: {str(error).rstrip('.')}."
        ) from None
    if array.dtype.kind not in "iuf":
        what = {"U": "strings", "b": "true/false values"}.get(array.dtype.kind, "mixed values")
        raise BadRequest(f"'{spec.name}' must hold numbers; received {what}.")
    if spec.shape is not None and (
        len(array.shape) != len(spec.shape)
        or any(
            want is not None and want != got
            for want, got in zip(spec.shape, array.shape, strict=True)
        )
    ):
        raise BadRequest(
            f"'{spec.name}' must have shape {list(spec.shape)} ({_nones(spec.shape)}); "
            f"received shape {list(array.shape)}."
        )
    if not array.size:  # a row of width 0: nothing for the model to read
        raise BadRequest(f"'{spec.name}' holds no pixels; received shape {list(array.shape)}.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadRequest(f"'{spec.name}' holds values that are not finite (NaN or infinity).")
    fractions = array.dtype.kind == "f" and np.any(array % 1)
    if spec.dtype == np.uint8 and (array.min() < 0 or array.max() > 255 or fractions):
        raise BadRequest(f"'{spec.name}' holds values outside the whole numbers 0..255.")
    with np.errstate(over="ignore"):  # past float32's range: infinity, refused below
        converted = array.astype(spec.dtype, copy=False)
    if converted.dtype.kind == "f" and not np.isfinite(converted).all():
        raise BadRequest(f"'{spec.name}' holds values beyond {spec.dtype}'s range.")
    return converted


def _nones(shape: tuple[int | None, ...]) -> str:
    """What each None of an input's shape stands for: the images of a batch come first,
    the width of a row (serving_rows [1, 28, None]) last."""
    said = [
        "any number of images" if i == 0 else "any width" if i == len(shape) - 1 else "any"
        for i, size in enumerate(shape)
        if size is None
    ]
    return "None: " + ", ".join(said) if said else "every size fixed"


def json_reply(outputs: dict[str, np.ndarray], rows: bool) -> bytes:
    """The JSON answer to one request: `predictions`, one object per image (row
    format), or `outputs`, one list per output (columnar); outputs by name, as TF
    Serving writes them."""
    columns = {name: _listed(outputs[name]) for name in sorted(outputs)}
    if rows:
        count = len(next(iter(columns.values())))
        body = {"predictions": [{k: v[i] for k, v in columns.items()} for i in range(count)]}
    else:
        body = {"outputs": columns}
    return json.dumps(body, separators=(",", ":")).encode()


def _listed(array: np.ndarray) -> list:
    """An output as JSON lists; strings (the number read) as UTF-8 text, as TF Serving
    writes an output whose name does not end in _bytes."""
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode(), otypes=[object])(array).tolist()
    return array.tolist()


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise BadRequest(f'\'{name}\' takes encoded images as {{"b64": "..."}} objects.')
    text = value["b64"]
    if "=" not in text:  # TF Serving's decoder (absl's) takes base64 without its padding
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise BadRequest(f"A b64 value of '{name}' is not valid base64.") from None


def _named(value: Any) -> bool:
    """Whether a value names its input ({"images": ...}), unlike a bare {"b64": ...}."""
    return isinstance(value, dict) and "b64" not in value


def _input(named: dict, name: str) -> Any:
    if set(named) != {name}:
        raise BadRequest(
            f"The signature's input is '{name}'; the request named "
            f"{', '.join(map(repr, named)) or 'none'}."
        )
    return named[name]
