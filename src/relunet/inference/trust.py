"""Which SavedModels relunet runs without being told to trust them.

A SavedModel is a program: its serving function may hold any TensorFlow op, reading
and writing files (`WriteFile`, `SaveV2`), running Python (`PyFunc`) or reaching
the network. `relunet predict` and `evaluate` read `saved_model.pb` first, collect
every op the serving signature can run (following function calls into the function
library), and run the model only if all of them are on the allow-list below: the math,
array and image-decoding ops that a relunet export uses. Anything else is refused
with one line naming the ops, unless the user says `--trust-model`. Loading the
model's variables (`RestoreV2`) is TensorFlow's own step and is not part of the
signature. `.keras` files are loaded with Keras's `safe_mode`, which refuses code.
"""

from __future__ import annotations

from pathlib import Path

from relunet.base.errors import RelunetError

# Ops a relunet export runs in its signatures (collected from exports of every
# activation, all signatures, with and without a finder), plus their close pure
# relatives. The finder's windows are convolutions (Conv2D, and SpaceToBatchND and
# BatchToSpaceND where they are dilated); a JPEG's Exif is read with StringLength and
# SplitV (tf.signal.frame).
ALLOWED_OPS = frozenset(
    """
    Placeholder Const Identity IdentityN NoOp StatefulPartitionedCall PartitionedCall
    ReadVariableOp VarHandleOp StopGradient Shape Size Rank Pack Unpack Reshape ExpandDims
    Squeeze StridedSlice Slice ConcatV2 Fill ZerosLike OnesLike Range GatherV2 Tile
    Transpose BroadcastTo BroadcastArgs Where Select SelectV2 Cast Bitcast Pad PadV2
    If StatelessIf Case StatelessCase While StatelessWhile Assert Equal NotEqual Less LessEqual
    Greater GreaterEqual LogicalAnd LogicalOr LogicalNot All Any EnsureShape Merge Switch
    TensorListFromTensor TensorListGetItem TensorListReserve TensorListSetItem TensorListStack
    MatMul BatchMatMulV2 BiasAdd Add AddV2 AddN Sub Mul RealDiv Div DivNoNan FloorDiv FloorMod
    Neg Maximum Minimum Square Sqrt Rsqrt Exp Log Log1p Abs Sign Round Floor Ceil Pow Sum
    Mean Max Min Prod ArgMax ArgMin ClipByValue
    Relu Relu6 LeakyRelu Elu Selu Sigmoid Tanh Softplus Softsign Softmax LogSoftmax
    DecodeImage DecodePng DecodeJpeg DecodeGif DecodeBmp DecodeRaw ExtractJpegShape LeftShift
    ResizeBilinear ResizeArea
    ResizeBicubic ResizeNearestNeighbor ScaleAndTranslate
    MaxPool MaxPoolV2 Cumsum Bincount DenseBincount HistogramFixedWidth TopKV2 UnsortedSegmentSum
    UnsortedSegmentMax MirrorPad
    UnsortedSegmentMin Unique ScatterNd AsString ReduceJoin Substr
    Conv2D SpaceToBatchND BatchToSpaceND CropAndResize OneHot StringJoin
    StringLength SplitV
""".split()
)


def signature_ops(saved_model_dir: str | Path, signature: str) -> set[str]:
    """Every op the model's serving signatures can run (it must have `signature`; a
    client of relunet serve may call any of them), read from saved_model.pb without
    loading the model."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    except Exception as error:  # the protobuf DecodeError has no stable import path
        raise RelunetError(
            f"{saved_model_dir}/saved_model.pb cannot be parsed ({type(error).__name__})."
        ) from None
    graphs = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags]
    if not graphs or signature not in graphs[0].signature_def:
        raise RelunetError(
            f"The SavedModel {saved_model_dir} has no {signature} signature for serving."
        )
    graph = graphs[0]
    functions = {f.signature.name: f for f in graph.graph_def.library.function}
    nodes = {node.name: node for node in graph.graph_def.node}
    pending = [
        info.name.split(":")[0]
        for key, sig in graph.signature_def.items()
        if not key.startswith("__")
        for info in sig.outputs.values()
    ]
    ops: set[str] = set()
    seen_nodes: set[str] = set()
    seen_functions: set[str] = set()

    def visit_function(name: str) -> None:
        if name in seen_functions or name not in functions:
            return
        seen_functions.add(name)
        for node in functions[name].node_def:
            ops.add(node.op)
            for called in _called_functions(node):
                visit_function(called)

    while pending:  # walk the graph back from the signature's outputs
        name = pending.pop().lstrip("^")
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        ops.add(node.op)
        for called in _called_functions(node):
            visit_function(called)
        pending.extend(i.split(":")[0] for i in node.input)
    return ops


def check_trusted(saved_model_dir: str | Path, signature: str) -> None:
    """Refuse a SavedModel whose signatures run ops outside ALLOWED_OPS."""
    unknown = sorted(signature_ops(saved_model_dir, signature) - ALLOWED_OPS)
    if unknown:
        shown = ", ".join(unknown[:8]) + (
            f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        )
        raise RelunetError(
            f"The SavedModel {saved_model_dir} runs ops that relunet's exports never do "
            f"({shown}); a SavedModel is a program, so run it only if you trust where it "
            "came from, with --trust-model."
        )


def _called_functions(node) -> list[str]:
    """Names of the functions a node calls (f, then_branch, body, ...)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    return names
