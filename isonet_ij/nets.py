"""IsoNet-1 and IsoNet-2 (Keras 3 on TensorFlow), on single-channel 2D planes of any size.

Layer notation of the paper: ``C_{n,w,h}`` convolution with n filters of size w x h,
``M_{2,2}`` max pooling, ``U_{2,2}`` (nearest) upsampling. All convolutions use "same"
padding, so a network maps an (H, W) plane to an (H, W) plane.

* IsoNet-1 (SRCNN, Dong et al.): C64,9x9 - C32,5x5 - C1,5x5 - C1,1x1 with ReLU after the
  first two layers. **The two single-channel output layers are linear**, unlike the
  paper's "ReLU after each layer" (and like SRCNN, whose last layer is linear): a ReLU on a
  single channel dies -- after the final 1x1 it starts dead for most seeds, and after the
  C1,5x5 it died during training in our measurement (nuclei 128^3, split, lr 1e-3: a
  constant output, 13.3 dB validation PSNR for 1149 steps, vs 21.0 dB for the input).
  57,283 parameters.
* IsoNet-2 (U-Net like): C16,7x7 - M2 - C32,7x7 - M2 - C64,7x7 - U2 - C32,7x7 - U2 -
  C16,7x7 - C1,1x1 with symmetric skip connections (concatenation) and a linear output
  added to the input (the network learns the residual). 314,561 parameters. H and W must
  be multiples of 4 (restoration pads).

Dropout (rate ``dropout``; the paper's 20 %, default 0: measured faster to train, see
:class:`isonet_ij.config.Config`) follows every hidden ReLU convolution when the rate is
above 0; it is active only in training.

No TensorFlow import at module import time: the builders import Keras when called.
"""

from __future__ import annotations

__all__ = [
    "ARCHS",
    "quiet_tensorflow",
    "build_model",
    "isonet1",
    "isonet2",
    "receptive_field",
    "size_multiple",
    "param_count",
    "flops_per_pixel",
    "set_threads",
    "keras_module",
]

ARCHS = ("isonet1", "isonet2")

#: Expected parameter counts (asserted by the tests).
PARAM_COUNTS = {"isonet1": 57_283, "isonet2": 314_561}


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ log quiet and Keras on TensorFlow (before importing either),
    unless the user chose otherwise."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def keras_module():
    """The ``keras`` module, imported on first use with the TensorFlow backend.

    Sets ``KERAS_BACKEND=tensorflow`` and quiets TensorFlow's C++ logging unless the user
    chose otherwise; the import is here so that importing :mod:`isonet_ij` never loads
    TensorFlow.
    """
    quiet_tensorflow()
    import keras

    return keras


def set_threads(n: int | None) -> None:
    """Limit TensorFlow's CPU threads (intra- and inter-op) to ``n``; ``None``: default.

    Must be called before TensorFlow runs its first operation; later calls are ignored.
    The default (``None``) uses all cores of the machine.
    """
    if not n:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(n))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(int(n), 2)))
    except RuntimeError:  # TF already initialized
        pass


def isonet1(*, dropout: float = 0.0, final_activation: str = "linear", seed=None):
    """IsoNet-1: C64,9x9 - C32,5x5 - C1,5x5 - C1,1x1 (ReLU, ReLU, linear, linear).

    Parameters
    ----------
    dropout : float
        Dropout rate after the two hidden ReLU layers (default 0; paper: 0.2).
    final_activation : str
        Activation of the two single-channel layers (C1,5x5 and C1,1x1): ``"linear"``
        (default; see module docstring) or ``"relu"`` (the paper as written).
    seed : int, optional
        Seed of the weight initializers.

    Returns
    -------
    keras.Model
        ``(None, None, None, 1) -> (None, None, None, 1)`` float32.
    """
    keras = keras_module()
    L = keras.layers
    init = _init(keras, seed)
    inp = keras.Input((None, None, 1), name="input")
    x = L.Conv2D(64, 9, padding="same", activation="relu", kernel_initializer=init(0), name="c64_9x9")(inp)
    x = _dropout(L, x, dropout, seed, 0)
    x = L.Conv2D(32, 5, padding="same", activation="relu", kernel_initializer=init(1), name="c32_5x5")(x)
    x = _dropout(L, x, dropout, seed, 1)
    x = L.Conv2D(1, 5, padding="same", activation=final_activation, kernel_initializer=init(2), name="c1_5x5")(x)
    out = L.Conv2D(1, 1, padding="same", activation=final_activation, kernel_initializer=init(3), name="c1_1x1")(x)
    return keras.Model(inp, out, name="isonet1")


def isonet2(*, dropout: float = 0.0, residual: bool = True, seed=None):
    """IsoNet-2: U-Net C16-M2-C32-M2-C64-U2-C32-U2-C16-C1 (7x7), skips, residual output.

    Parameters
    ----------
    dropout : float
        Dropout rate after each hidden 7x7 ReLU convolution (default 0; paper: 0.2).
    residual : bool
        Add the input to the (linear) output (paper: the network learns the residual).
    seed : int, optional
        Seed of the weight initializers.

    Returns
    -------
    keras.Model
        ``(None, H, W, 1) -> (None, H, W, 1)`` float32 with H, W multiples of 4.
    """
    keras = keras_module()
    L = keras.layers
    init = _init(keras, seed)

    def conv(x, n, i, name):
        x = L.Conv2D(n, 7, padding="same", activation="relu", kernel_initializer=init(i), name=name)(x)
        return _dropout(L, x, dropout, seed, i)

    inp = keras.Input((None, None, 1), name="input")
    d0 = conv(inp, 16, 0, "c16_7x7_down")
    x = L.MaxPooling2D(2, name="m2_0")(d0)
    d1 = conv(x, 32, 1, "c32_7x7_down")
    x = L.MaxPooling2D(2, name="m2_1")(d1)
    x = conv(x, 64, 2, "c64_7x7")
    x = L.UpSampling2D(2, name="u2_1")(x)
    x = L.Concatenate(name="skip_1")([x, d1])
    x = conv(x, 32, 3, "c32_7x7_up")
    x = L.UpSampling2D(2, name="u2_0")(x)
    x = L.Concatenate(name="skip_0")([x, d0])
    x = conv(x, 16, 4, "c16_7x7_up")
    x = L.Conv2D(1, 1, padding="same", activation="linear", kernel_initializer=init(5), name="c1_1x1")(x)
    out = L.Add(name="residual")([x, inp]) if residual else x
    return keras.Model(inp, out, name="isonet2")


def _init(keras, seed):
    def make(i):
        return keras.initializers.GlorotUniform(seed=None if seed is None else int(seed) * 101 + i)

    return make


def _dropout(L, x, rate, seed, i):
    if not rate:
        return x
    return L.Dropout(rate, seed=None if seed is None else int(seed) * 103 + i)(x)


def build_model(arch: str, *, dropout: float = 0.0, seed=None):
    """Build ``"isonet1"`` or ``"isonet2"`` (see the module docstring)."""
    if arch == "isonet1":
        return isonet1(dropout=dropout, seed=seed)
    if arch == "isonet2":
        return isonet2(dropout=dropout, seed=seed)
    msg = f"`arch` must be one of {ARCHS}, got {arch!r}"
    raise ValueError(msg)


def receptive_field(arch: str) -> int:
    """Radius (pixels) of the receptive field: outputs depend on inputs within it.

    IsoNet-1: 4 + 2 + 2 = 8. IsoNet-2: 3 (level 0) + 2*3 (level 1, incl. pooling) +
    4*3 + 2*3 + 3 plus pooling alignment, bounded by 34.
    """
    if arch == "isonet1":
        return 8
    if arch == "isonet2":
        # 7x7 convs: radius 3 at level 0 (x2: down and up), 6 at level 1 (x2), 12 at
        # level 2; each pooling window adds at most 1 (level 0) / 2 (level 1) pixels.
        return 3 + 1 + 6 + 2 + 12 + 6 + 3 + 1
    msg = f"`arch` must be one of {ARCHS}, got {arch!r}"
    raise ValueError(msg)


def size_multiple(arch: str) -> int:
    """Plane sizes must be multiples of this (4 for the two poolings of IsoNet-2)."""
    return 4 if arch == "isonet2" else 1


def param_count(model) -> int:
    return int(sum(int(w.numpy().size) for w in model.weights))


def flops_per_pixel(arch: str) -> float:
    """Multiply-adds x 2 of one forward pass per output pixel (convolutions only)."""
    if arch == "isonet1":
        macs = 81 * 1 * 64 + 25 * 64 * 32 + 25 * 32 * 1 + 1
    elif arch == "isonet2":
        macs = (
            49 * 1 * 16
            + 49 * 16 * 32 / 4
            + 49 * 32 * 64 / 16
            + 49 * 96 * 32 / 4
            + 49 * 48 * 16
            + 16
        )
    else:
        msg = f"`arch` must be one of {ARCHS}, got {arch!r}"
        raise ValueError(msg)
    return 2.0 * macs
