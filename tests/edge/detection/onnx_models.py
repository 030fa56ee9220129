"""Tiny deterministic ONNX models for the classifier tests, built with ``onnx.helper`` (nothing downloaded).

:func:`shape_model` tells wide blobs from tall ones, as the classifier's letterboxing shows them: a
wide crop, scaled to fit the square input, leaves black bars at the top and bottom while its left
and right edge columns show the scene; a tall crop leaves the bars at the sides. Its logits are
``k * (edge columns - edge rows)`` for "vehicle" and the opposite for "person", so a square crop
scores 50/50.
"""

from pathlib import Path

import numpy as np
import onnx
from numpy.typing import ArrayLike
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
LABELS = ("person", "vehicle")


def _save(
    path: Path, nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], initializers: list[onnx.TensorProto]
) -> Path:
    output = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, len(LABELS)])
    graph = helper.make_graph(nodes, "outpost-test", inputs, [output], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image(size: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])


def _constant(name: str, values: ArrayLike, dtype: type[np.generic] = np.int64) -> onnx.TensorProto:
    """A named constant tensor (a 0-d one for a single number)."""
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def shape_model(path: Path, size: int = 32, sharpness: float = 40.0) -> Path:
    """Logits (person, vehicle) from the letterboxed crop's edge columns against its edge rows."""
    last = size - 1
    nodes = [
        helper.make_node("Slice", ["image", "zero", "one", "width_axis"], ["left"]),
        helper.make_node("Slice", ["image", "last", "size", "width_axis"], ["right"]),
        helper.make_node("Slice", ["image", "zero", "one", "height_axis"], ["top"]),
        helper.make_node("Slice", ["image", "last", "size", "height_axis"], ["bottom"]),
        helper.make_node("Concat", ["left", "right"], ["columns"], axis=3),
        helper.make_node("Concat", ["top", "bottom"], ["rows"], axis=2),
        helper.make_node("GlobalAveragePool", ["columns"], ["column_mean"]),
        helper.make_node("GlobalAveragePool", ["rows"], ["row_mean"]),
        helper.make_node("Sub", ["column_mean", "row_mean"], ["wideness"]),
        helper.make_node("Flatten", ["wideness"], ["per_channel"], axis=1),
        helper.make_node("Gemm", ["per_channel", "weights", "bias"], ["scores"]),
    ]
    per_channel = sharpness / 3
    initializers = [
        _constant("zero", [0]),
        _constant("one", [1]),
        _constant("last", [last]),
        _constant("size", [size]),
        _constant("width_axis", [3]),
        _constant("height_axis", [2]),
        numpy_helper.from_array(np.asarray([[-per_channel, per_channel]] * 3, dtype=np.float32), "weights"),
        numpy_helper.from_array(np.zeros(len(LABELS), dtype=np.float32), "bias"),
    ]
    return _save(path, nodes, [_image(size)], initializers)


def failing_model(path: Path, size: int = 32) -> Path:
    """Fine on the all-zero warm-up input; on any lit input it gathers past the end of its table, and fails."""
    nodes = [
        helper.make_node("ReduceMax", ["image"], ["brightest"], keepdims=0),
        helper.make_node("Ceil", ["brightest"], ["lit"]),
        helper.make_node("Cast", ["lit"], ["lit_count"], to=TensorProto.INT64),
        helper.make_node("Mul", ["lit_count", "thousand"], ["offset"]),
        helper.make_node("Add", ["indices", "offset"], ["shifted"]),
        helper.make_node("Gather", ["table", "shifted"], ["scores"], axis=1),
    ]
    initializers = [
        _constant("thousand", 1_000),
        _constant("indices", [0, 1]),
        _constant("table", [[0.2, 0.8]], np.float32),
    ]
    return _save(path, nodes, [_image(size)], initializers)
