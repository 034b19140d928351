"""The ONNX graph of a plane network: Keras -> ONNX (tf2onnx), in memory.

The graph maps normalized planes ``(N, 1, H, W)`` float32 to restored planes of the same
shape (bioimage.io axes ``batch, channel, y, x``; rows are the axial direction, already
interpolated to the isotropic grid); H and W are dynamic (IsoNet-2 needs multiples of 4).
Input ``input``, output ``output``; ``metadata_props`` hold the config
(:data:`isonet_ij.artifacts.ONNX_META_KEY`: JSON incl. the normalization), the factor, the
architecture and the size multiple. :mod:`isonet_ij.model` converts a model directory for
the ONNX backend with it, :mod:`isonet_ij.model_export` writes it to disk.
"""

from __future__ import annotations

import json

from . import __version__
from .artifacts import ONNX_META_KEY

__all__ = ["DEFAULT_OPSET", "nchw_model", "onnx_metadata", "plane_onnx_bytes"]

DEFAULT_OPSET = 17


def nchw_model(net):
    """Wrap an NHWC single-channel network as ``(N, 1, H, W) -> (N, 1, H, W)`` (Permute only)."""
    from .nets import keras_module

    keras = keras_module()
    inp = keras.Input((1, None, None), name="input")
    x = keras.layers.Permute((2, 3, 1), name="to_nhwc")(inp)
    x = net(x, training=False)
    out = keras.layers.Permute((3, 1, 2), name="output")(x)
    return keras.Model(inp, out, name=f"{net.name}_nchw")


def onnx_metadata(config) -> dict:
    from .nets import size_multiple

    cfg = config
    return {
        ONNX_META_KEY: json.dumps(cfg.to_dict()),
        "isonet.factor": f"{cfg.factor:g}",
        "isonet.normalization": json.dumps(cfg.normalization),
        "isonet.arch": cfg.arch,
        "isonet.mode": cfg.mode,
        "isonet.psf": cfg.psf,
        "isonet.size_multiple": str(size_multiple(cfg.arch)),
        "isonet.layout": "NCHW; normalized planes (x - low) / (high - low), rows axial on the isotropic grid",
        "isonet.version": __version__,
    }


def plane_onnx_bytes(net, config, *, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialized ONNX graph of a Keras plane network (see module docstring), in memory.

    Parameters
    ----------
    net : keras.Model
        NHWC single-channel network ``(N, H, W, 1) -> (N, H, W, 1)``.
    config : Config
        Written into the graph's ``metadata_props``.
    opset : int
        ONNX opset, >= 17.
    """
    import warnings

    import onnx
    import tensorflow as tf
    import tf2onnx

    if int(opset) < 17:
        msg = f"`opset` must be >= 17, got {opset!r}"
        raise ValueError(msg)
    wrapped = nchw_model(net)
    spec = [tf.TensorSpec((None, 1, None, None), tf.float32, name="input")]

    @tf.function(input_signature=spec)
    def fn(x):
        return wrapped(x, training=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=int(opset))
    # stable names: input "input", output "output"
    old = proto.graph.output[0].name
    if old != "output":
        for node in proto.graph.node:
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = "output"
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = "output"
        proto.graph.output[0].name = "output"
    if proto.graph.input[0].name != "input":
        old_in = proto.graph.input[0].name
        for node in proto.graph.node:
            for i, name in enumerate(node.input):
                if name == old_in:
                    node.input[i] = "input"
        proto.graph.input[0].name = "input"
    for dim, label in zip(proto.graph.input[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if label:
            dim.dim_param = label
    for dim, label in zip(proto.graph.output[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if label:
            dim.dim_param = label
        else:
            dim.dim_value = 1
    onnx.helper.set_model_props(proto, onnx_metadata(config))
    proto.producer_name = "isonet-ij (tf2onnx)"
    proto.doc_string = f"IsoNet ({config.arch}) plane model; see metadata_props"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
