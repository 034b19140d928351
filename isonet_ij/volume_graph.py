"""The volume model: one ONNX graph from the raw anisotropic stack to the isotropic stack.

Input ``input`` (1, 1, Z, Y, X) float32, raw intensities; output ``output``
(1, 1, Z', Y, X) float32 with ``Z' = floor((Z-1)*f)+1`` (acquired slice ``i`` at output
slice ``i*f``), the factor ``f`` baked in. Inside the graph, exactly what
:func:`isonet_ij.restoration.restore_with_info` does with ``normalization="model"``:

1. z interpolation on the grid of :mod:`isonet_ij.grid`: positions ``j/f`` in float64,
   ``floor``, the four Keys taps (a = -0.5) with mirrored indices (``Gather``) and weights
   computed in the graph, so any Z works; ``Z'`` is computed in float64 as
   ``floor((Z-1)*f + 1e-9) + 1`` (:func:`isonet_ij.grid.n_output_slices`);
2. normalization by the training volume's stored ``low``/``high`` (``config.normalization``);
3. the xz planes (Y, 1, Z', X) and the yz planes (X, 1, Z', Y), each reflect-padded by the
   border of :func:`isonet_ij.tiling.default_border` on z (top), to the next multiple of 4
   on z (bottom) and x / y (right), as :func:`isonet_ij.restoration.apply_to_planes` pads a
   whole frame; the plane network runs in an ONNX ``Loop`` over chunks of ``batch`` planes
   (memory bounded by one chunk's activations), then the frames are cropped;
4. fusion per ``config.fusion`` (mean, or geometric mean of the parts above 0);
5. denormalization; a constant input volume gives that constant (as restore does).

The plane network's nodes are inlined into each Loop body (its weights are shared
initializers of the outer graph). :class:`OnnxVolumeNet` runs the graph with onnxruntime.
Minimum sizes (:func:`min_sizes`): Z' > border + 3 (one reflection at each z end) and
Y, X >= :data:`MIN_YX`.
"""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = [
    "MIN_YX",
    "VOLUME_KIND",
    "volume_onnx_bytes",
    "is_volume_graph",
    "min_sizes",
    "check_volume_input",
    "OnnxVolumeNet",
    "compare_restorations",
]

#: Smallest Y and X of the volume model (reflect padding needs a few pixels; 16 as the
#: bioimage.io description declares).
MIN_YX = 16
#: ``metadata_props["isonet.graph"]`` of a volume model (a plane model has none).
VOLUME_KIND = "volume"
_EPS = 1e-9  # as isonet_ij.grid.n_output_slices
_A = -0.5  # Keys


def min_sizes(factor: float, border_rows: int) -> tuple[int, int]:
    """``(min_z, min_yx)``: the smallest stack the volume model restores."""
    from . import grid

    z = 2
    while grid.n_output_slices(z, factor) < border_rows + 4:
        z += 1
    return z, MIN_YX


def check_volume_input(shape, factor: float, border_rows: int, name: str = "input") -> None:
    """ValueError with what to do when a (Z, Y, X) shape is below the volume model's minimum."""
    min_z, min_yx = min_sizes(factor, border_rows)
    if len(shape) != 3:
        msg = f"`{name}` must be a 3D stack (z, y, x), got shape {tuple(shape)}"
        raise ValueError(msg)
    z, y, x = shape
    if z < min_z:
        msg = (f"`{name}` has {z} z slices; this volume model (factor {factor:g}) needs at least {min_z} "
               "(the z border is reflected once at each end)")
        raise ValueError(msg)
    if min(y, x) < min_yx:
        msg = f"`{name}` is {y}x{x} in y, x; this volume model needs at least {min_yx}x{min_yx}"
        raise ValueError(msg)


class _Builder:
    """Nodes and constants of one graph, with unique names."""

    def __init__(self, prefix: str = ""):
        self.nodes, self.inits, self.prefix, self.n = [], [], prefix, 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{self.prefix}{hint}_{self.n}"

    def const(self, value, dtype, hint="c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs, hint=None, n_out: int = 1, **attrs):
        from onnx import helper

        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs


def _z_interpolation(b: _Builder, vol: str, factor: float) -> str:
    """(Z, Y, X) -> (Z', Y, X): Keys cubic on the grid, mirror boundary, weights in-graph."""
    from onnx import TensorProto

    shape = b.op("Shape", vol)
    z = b.op("Gather", shape, b.const(0, np.int64), axis=0)  # scalar int64
    zf = b.op("Cast", z, to=TensorProto.DOUBLE)
    one = b.const(1.0, np.float64)
    span = b.op("Add", b.op("Mul", b.op("Sub", zf, one), b.const(factor, np.float64)), b.const(_EPS, np.float64))
    n_out = b.op("Cast", b.op("Add", b.op("Floor", span), one), to=TensorProto.INT64)
    j = b.op("Range", b.const(0, np.int64), n_out, b.const(1, np.int64))
    pos = b.op("Div", b.op("Cast", j, to=TensorProto.DOUBLE), b.const(factor, np.float64))
    base = b.op("Floor", pos)
    frac = b.op("Sub", pos, base)
    snap = b.op("Less", b.op("Abs", b.op("Sub", frac, b.op("Round", frac))), b.const(_EPS, np.float64))
    base = b.op("Where", snap, b.op("Round", pos), base)
    frac = b.op("Where", snap, b.const(0.0, np.float64), frac)
    base_i = b.op("Cast", base, to=TensorProto.INT64)
    z_minus = b.op("Sub", z, b.const(1, np.int64))
    period = b.op("Mul", z_minus, b.const(2, np.int64))
    acc = None
    for k in (-1, 0, 1, 2):
        idx = b.op("Mod", b.op("Add", base_i, b.const(k, np.int64)), period)  # Python-style mod
        idx = b.op("Where", b.op("Greater", idx, z_minus), b.op("Sub", period, idx), idx)
        w = b.op("Cast", _keys(b, b.op("Abs", b.op("Sub", frac, b.const(float(k), np.float64)))),
                 to=TensorProto.FLOAT)
        term = b.op("Mul", b.op("Gather", vol, idx, axis=0), b.op("Unsqueeze", w, b.const([1, 2], np.int64)))
        acc = term if acc is None else b.op("Add", acc, term)
    return acc


def _keys(b: _Builder, t: str) -> str:
    """Keys' cubic kernel (a = -0.5) of ``|t|`` (float64), as :func:`isonet_ij.grid._keys`."""
    d = np.float64
    t2 = b.op("Mul", t, t)
    t3 = b.op("Mul", t2, t)
    near = b.op("Add", b.op("Sub", b.op("Mul", b.const(_A + 2, d), t3), b.op("Mul", b.const(_A + 3, d), t2)),
                b.const(1.0, d))
    far = b.op("Sub", b.op("Add", b.op("Sub", b.op("Mul", b.const(_A, d), t3), b.op("Mul", b.const(5 * _A, d), t2)),
                           b.op("Mul", b.const(8 * _A, d), t)), b.const(4 * _A, d))
    zero = b.const(0.0, d)
    far = b.op("Where", b.op("Less", t, b.const(2.0, d)), far, zero)
    return b.op("Where", b.op("LessOrEqual", t, b.const(1.0, d)), near, far)


def _pad_frames(b: _Builder, planes: str, border: int) -> tuple[str, str, str]:
    """(N, 1, H, W) -> frames reflect-padded as apply_to_planes; returns (frames, H, W) scalars."""
    shape = b.op("Shape", planes)
    h = b.op("Gather", shape, b.const(2, np.int64), axis=0)
    w = b.op("Gather", shape, b.const(3, np.int64), axis=0)
    four = b.const(4, np.int64)

    def up4(n):  # round_up(n, 4) - n
        r = b.op("Mul", b.op("Div", b.op("Add", n, b.const(3, np.int64)), four), four)
        return b.op("Sub", r, n)

    bottom = up4(b.op("Add", h, b.const(2 * border, np.int64)))
    bottom = b.op("Add", bottom, b.const(border, np.int64))
    right = up4(w)
    z1 = b.const([0], np.int64)
    pads = b.op("Concat", z1, z1, b.const([border], np.int64), z1, z1, z1,
                b.op("Unsqueeze", bottom, z1), b.op("Unsqueeze", right, z1), axis=0)
    return b.op("Pad", planes, pads, mode="reflect"), h, w


def _plane_body(plane, b: _Builder, frames: str, batch: int, tag: str):
    """A Loop over chunks of ``batch`` frames through the plane network (nodes inlined)."""
    from onnx import TensorProto, helper

    n = b.op("Gather", b.op("Shape", frames), b.const(0, np.int64), axis=0)
    bsz = b.const(batch, np.int64)
    trips = b.op("Div", b.op("Add", n, b.const(batch - 1, np.int64)), bsz)
    extra = b.op("Sub", b.op("Mul", trips, bsz), n)
    z1 = b.const([0], np.int64)
    pads = b.op("Concat", z1, z1, z1, z1, b.op("Unsqueeze", extra, z1), z1, z1, z1, axis=0)
    padded = b.op("Pad", frames, pads, mode="constant")  # whole chunks; extra frames dropped after
    p = f"{tag}/"
    body = _Builder(prefix=p)
    it, cond = f"{p}iter", f"{p}cond_in"
    start = body.op("Mul", it, bsz)
    chunk = body.op("Slice", padded, body.op("Unsqueeze", start, z1), body.op("Unsqueeze", body.op("Add", start, bsz), z1),
                    z1)
    rename = {plane.graph.input[0].name: chunk}
    for node in plane.graph.node:
        new = helper.make_node(node.op_type, [rename.get(i, f"plane/{i}" if i else "") for i in node.input],
                               [f"{p}{o}" for o in node.output], name=f"{p}{node.name}", domain=node.domain)
        new.attribute.extend(node.attribute)
        for o in node.output:
            rename[o] = f"{p}{o}"
        body.nodes.append(new)
    cond_out = body.op("Identity", cond)
    result = body.op("Identity", rename[plane.graph.output[0].name], hint="chunk_out")
    graph = helper.make_graph(
        body.nodes, f"{tag}_body",
        [helper.make_tensor_value_info(it, TensorProto.INT64, []),
         helper.make_tensor_value_info(cond, TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
         helper.make_tensor_value_info(result, TensorProto.FLOAT, None)],
        initializer=body.inits)
    stacked = b.op("Loop", trips, "", body=graph)  # (trips, batch, 1, Fr, Fc)
    shape = b.op("Shape", padded)
    flat = b.op("Reshape", stacked, b.op("Concat", b.const([-1], np.int64),
                                         b.op("Slice", shape, b.const([1], np.int64), b.const([4], np.int64)), axis=0))
    return flat, n


def _plane_names_from_outer(plane) -> None:
    """Prefix the plane graph's initializer names with ``plane/`` (they live in the outer graph)."""
    for init in plane.graph.initializer:
        init.name = f"plane/{init.name}"


def _axial_pass(plane, b: _Builder, u: str, perm, back, border: int, batch: int, tag: str) -> str:
    """One pass: (Z', Y, X) -> planes -> network -> (Z', Y, X)."""
    planes = b.op("Unsqueeze", b.op("Transpose", u, perm=list(perm)), b.const([1], np.int64))  # (N, 1, Z', W)
    frames, h, w = _pad_frames(b, planes, border)
    out, n = _plane_body(plane, b, frames, batch, tag)
    z1 = b.const([0], np.int64)
    starts = b.op("Concat", z1, b.const([border], np.int64), z1, axis=0)
    ends = b.op("Concat", b.op("Unsqueeze", n, z1), b.op("Unsqueeze", b.op("Add", h, b.const(border, np.int64)), z1),
                b.op("Unsqueeze", w, z1), axis=0)
    crop = b.op("Slice", b.op("Squeeze", out, b.const([1], np.int64)), starts, ends, b.const([0, 1, 2], np.int64))
    return b.op("Transpose", crop, perm=list(back))


def _fusion(b: _Builder, a: str, c: str, how: str) -> str:
    if how == "mean":
        return b.op("Mul", b.op("Add", a, c), b.const(0.5, np.float32))
    zero = b.const(0.0, np.float32)
    return b.op("Sqrt", b.op("Mul", b.op("Max", a, zero), b.op("Max", c, zero)))


def _main_nodes(plane, b: _Builder, cfg, low: float, high: float, border: int, batch: int) -> str:
    """The volume graph's nodes from ``input`` to ``output``."""
    shape = b.op("Shape", "input")
    zyx = b.op("Slice", shape, b.const([2], np.int64), b.const([5], np.int64))
    vol = b.op("Reshape", "input", zyx)
    u = _z_interpolation(b, vol, float(cfg.factor))
    u = b.op("Mul", b.op("Sub", u, b.const(low, np.float32)), b.const(1.0 / (high - low), np.float32))
    xz = _axial_pass(plane, b, u, (1, 0, 2), (1, 0, 2), border, batch, "xz")
    yz = _axial_pass(plane, b, u, (2, 0, 1), (1, 2, 0), border, batch, "yz")
    fused = _fusion(b, xz, yz, cfg.fusion)
    res = b.op("Add", b.op("Mul", fused, b.const(high - low, np.float32)), b.const(low, np.float32))
    # a constant volume restores to itself (as restore_with_info)
    vmin, vmax = b.op("ReduceMin", vol, keepdims=0), b.op("ReduceMax", vol, keepdims=0)
    res = b.op("Where", b.op("Equal", vmin, vmax), b.op("Expand", vmin, b.op("Shape", res)), res)
    out_shape = b.op("Concat", b.const([1, 1], np.int64), b.op("Shape", res), axis=0)
    b.op("Reshape", res, out_shape, hint="final")
    b.nodes[-1].output[0] = "output"
    return "output"


def volume_onnx_bytes(net, config, *, plane_bytes: bytes | None = None, batch: int = 8,
                      border: int | None = None, opset: int | None = None) -> bytes:
    """The serialized volume graph (module docstring) of a Keras plane network.

    Parameters
    ----------
    net : keras.Model or None
        NHWC plane network (converted with :func:`isonet_ij.onnx_graph.plane_onnx_bytes`);
        None when ``plane_bytes`` is given.
    config : Config
        Factor, fusion and ``normalization`` (``low``/``high`` required) are baked in.
    plane_bytes : bytes, optional
        The plane graph, when already converted.
    batch : int
        Planes per network call inside the graph's Loop.
    border : int, optional
        Reflected z rows; default :func:`isonet_ij.tiling.default_border` of the factor.
    """
    import onnx
    from onnx import TensorProto, helper

    from .onnx_graph import DEFAULT_OPSET, onnx_metadata, plane_onnx_bytes
    from .tiling import default_border

    lo, hi = config.normalization.get("low"), config.normalization.get("high")
    if lo is None or hi is None or not float(hi) > float(lo):
        msg = (f"the model stores no usable normalization values (low={lo!r}, high={hi!r}); the volume "
               "model needs the training percentiles: retrain with `isonet train`")
        raise ValueError(msg)
    border = default_border(config.factor)[0] if border is None else int(border)
    if plane_bytes is None:
        plane_bytes = plane_onnx_bytes(net, config, opset=opset or DEFAULT_OPSET)
    plane = onnx.load_model_from_string(plane_bytes)
    _plane_names_from_outer(plane)
    b = _Builder()
    _main_nodes(plane, b, config, float(lo), float(hi), border, int(batch))
    graph = helper.make_graph(
        b.nodes, "isonet_volume",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "z", "y", "x"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "z_out", "y", "x"])],
        initializer=list(plane.graph.initializer) + b.inits)
    model = helper.make_model(graph, opset_imports=list(plane.opset_import), producer_name="isonet-ij volume graph")
    model.ir_version = plane.ir_version
    min_z, min_yx = min_sizes(config.factor, border)
    meta = onnx_metadata(config)
    meta.update({
        "isonet.graph": VOLUME_KIND, "isonet.border": str(border), "isonet.batch": str(int(batch)),
        "isonet.min_z": str(min_z), "isonet.min_yx": str(min_yx), "isonet.fusion": config.fusion,
        "isonet.precision": {p.key: p.value for p in plane.metadata_props}.get("isonet.precision", "fp32"),
        "isonet.layout": ("(1, 1, Z, Y, X) raw stack -> (1, 1, floor((Z-1)*f)+1, Y, X) restored stack, "
                          "normalization with the stored training percentiles"),
    })
    helper.set_model_props(model, meta)
    model.doc_string = f"IsoNet ({config.arch}) volume model, factor {config.factor:g}; see metadata_props"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def graph_metadata(data: bytes) -> dict:
    """``metadata_props`` of a serialized ONNX graph."""
    import onnx

    return {p.key: p.value for p in onnx.load_model_from_string(data).metadata_props}


def is_volume_graph(meta: dict) -> bool:
    """True for the ``metadata_props`` (:func:`graph_metadata`) of a graph written by
    :func:`volume_onnx_bytes`."""
    return meta.get("isonet.graph") == VOLUME_KIND


class OnnxVolumeNet:
    """onnxruntime on a volume graph: ``predict(volume) -> restored volume`` (float32)."""

    name = "onnx"

    def __init__(self, data: bytes, config, *, source: str = "", threads: int | None = None, meta=None):
        import onnxruntime as ort

        from .backends import onnx_session_options

        meta = graph_metadata(data) if meta is None else meta  # given by a caller that parsed the graph
        self.config, self.source = config, source
        self.border = int(meta.get("isonet.border", 8))
        self.factor = float(meta.get("isonet.factor", config.factor))
        self.fusion = meta.get("isonet.fusion", config.fusion)
        self.precision = meta.get("isonet.precision", "fp32")  # of its plane network (isonet export --precision)
        self.session = ort.InferenceSession(data, onnx_session_options(ort, threads),
                                            providers=["CPUExecutionProvider"])

    def min_sizes(self) -> tuple[int, int]:
        return min_sizes(self.factor, self.border)

    def predict(self, volume) -> np.ndarray:
        """(Z, Y, X) raw stack -> (floor((Z-1)*f)+1, Y, X) float32."""
        vol = np.ascontiguousarray(volume, dtype=np.float32)
        check_volume_input(vol.shape, self.factor, self.border, "volume")
        return self.session.run(["output"], {"input": vol[None, None]})[0][0, 0]


def compare_restorations(result, reference, bicubic, *, rtol: float = 1e-4, min_std_ratio: float = 0.05) -> dict:
    """Prove a volume model's output: equal to ``reference`` and not trivial.

    ``max_abs_diff / range(reference) <= rtol`` over the whole volume, and both outputs
    vary (std >= ``min_std_ratio`` x the std of ``bicubic``, the z-interpolated input): a
    model whose output is constant fails even when both sides agree.

    Raises
    ------
    ValueError
        With the numbers.
    """
    a, r, c = (np.asarray(v, np.float64) for v in (result, reference, bicubic))
    if a.shape != r.shape:
        msg = f"shapes differ: {a.shape} vs reference {r.shape}"
        raise ValueError(msg)
    rng = float(np.ptp(r))
    diff = float(np.max(np.abs(a - r)))
    rel = diff / rng if rng > 0 else math.inf
    ratio = min(float(np.std(a)), float(np.std(r))) / max(float(np.std(c)), 1e-30)
    report = {"max_abs_diff": diff, "output_range": rng, "relative": rel, "std_ratio": ratio}
    if not ratio >= min_std_ratio:
        msg = (f"the restored volume is (nearly) constant (std ratio {ratio:.3g} < {min_std_ratio}): "
               f"the model learned nothing; {json.dumps(report)}")
        raise ValueError(msg)
    if not rel <= rtol:
        msg = f"volume model differs from restore by {rel:.3g} of the output range (> {rtol:g}): {json.dumps(report)}"
        raise ValueError(msg)
    return report
