"""Training steps: the loss of eq. 3 and the ``tf.function`` steps of fixed shape, plain or XLA,
whichever runs faster on the machine at hand (used by :mod:`isonet_ij.training`)."""

from __future__ import annotations

import logging
import math
import time

import numpy as np

__all__ = ["psnr_loss", "make_steps", "jit_for", "faster_train_step", "training_step_for"]

log = logging.getLogger("isonet_ij.training")  # the step choice is a line of the training log


def psnr_loss(y_true, y_pred):
    """Negative PSNR of eq. 3, averaged over the patches of a batch (dB)."""
    import tensorflow as tf

    return -tf.reduce_mean(_psnr_per_patch(y_true, y_pred))


def _psnr_per_patch(y_true, y_pred):
    import tensorflow as tf

    mse = tf.reduce_mean(tf.square(y_true - y_pred), axis=[1, 2, 3])
    peak = tf.maximum(tf.reduce_max(y_true, axis=[1, 2, 3]), 1e-6)
    ln10 = math.log(10.0)
    return 20.0 * tf.math.log(peak) / ln10 - 10.0 * tf.math.log(mse + 1e-10) / ln10


def make_steps(net, opt, loss: str, batch: int, patch: int, *, jit_compile: bool = False):
    """Training and validation steps as ``tf.function`` of fixed shape (traced once).

    ``jit_compile`` compiles the training step with XLA. Whether that pays depends on the
    CPU: on a 2-core AVX2 machine it made IsoNet-2's step 1.35x faster (2.49 vs 1.84 steps/s,
    batch 16 of 64x64) and IsoNet-1's 5.5x slower (0.52 vs 2.85; its 9x9 convolution); on a
    2-core AVX-512 machine IsoNet-2's was 0.67x (4.2 vs 6.3 steps/s). Hence :func:`jit_for`
    (never for IsoNet-1) and :func:`training_step_for` (measured on the machine at hand).

    Returns
    -------
    train_step : callable
        ``(x, y)`` of shape ``(batch, patch, patch, 1)`` -> loss (one Adam update).
    val_step : callable
        ``(x, y)`` -> per-patch (PSNR, MSE, MAE).
    """
    import tensorflow as tf

    spec = tf.TensorSpec([int(batch), int(patch), int(patch), 1], tf.float32)
    loss_fn = _loss_fn(loss)

    @tf.function(input_signature=[spec, spec], jit_compile=bool(jit_compile))
    def train_step(x, y):
        with tf.GradientTape() as tape:
            pred = net(x, training=True)
            value = loss_fn(y, pred)
        grads = tape.gradient(value, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return value

    @tf.function(input_signature=[spec, spec])
    def val_step(x, y):
        pred = net(x, training=False)
        err = y - pred
        return (_psnr_per_patch(y, pred), tf.reduce_mean(tf.square(err), axis=[1, 2, 3]),
                tf.reduce_mean(tf.abs(err), axis=[1, 2, 3]))

    return train_step, val_step


def jit_for(arch: str) -> bool:
    """Whether an XLA-compiled training step is worth trying for ``arch`` (see make_steps)."""
    return arch == "isonet2"


def faster_train_step(candidates: dict, x, y, *, repeats: int = 3):
    """The faster of several training steps, timed on the machine at hand.

    Parameters
    ----------
    candidates : dict
        name -> ``train_step`` of :func:`make_steps` (same network and optimizer).
    x, y : ndarray, float32, shape (batch, patch, patch, 1)
        A batch of training pairs.
    repeats : int
        Timed steps per candidate, after one step that traces (and compiles) it.

    Returns
    -------
    name, train_step
        The candidate with the shortest median step time. Every call is an Adam update
        of the shared network; :func:`training_step_for` undoes them.
    """
    seconds = {}
    for name, step in candidates.items():
        float(step(x, y))  # trace / compile, not timed
        times = []
        for _ in range(int(repeats)):
            t = time.perf_counter()
            float(step(x, y))
            times.append(time.perf_counter() - t)
        seconds[name] = float(np.median(times))
    best = min(seconds, key=seconds.get)
    log.info("training step: %s (%s)", best,
             ", ".join(f"{k} {1 / v:.2f} steps/s" for k, v in seconds.items()))
    return best, candidates[best]


def training_step_for(arch: str, net, opt, loss: str, batch: int, patch: int, x, y):
    """``(name, train_step, val_step)``: plain or XLA, whichever is faster here for ``arch``.

    The timing steps leave no trace: the network's weights and the optimizer's state
    (fresh or resumed) are put back as they were, so a run's updates are its own steps.
    """
    train_plain, val_step = make_steps(net, opt, loss, batch, patch, jit_compile=False)
    if not jit_for(arch):
        return "plain", train_plain, val_step
    candidates = {"plain": train_plain,
                  "xla": make_steps(net, opt, loss, batch, patch, jit_compile=True)[0]}
    if not opt.built:
        opt.build(net.trainable_variables)
    saved = [(v, v.numpy()) for v in list(net.weights) + list(opt.variables)]
    name, step = faster_train_step(candidates, x, y)
    for var, value in saved:
        var.assign(value)
    return name, step, val_step


def _loss_fn(name):
    import tensorflow as tf

    if name == "psnr":
        return psnr_loss
    if name == "mse":
        return lambda a, b: tf.reduce_mean(tf.square(a - b))
    return lambda a, b: tf.reduce_mean(tf.abs(a - b))
