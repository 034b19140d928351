"""Training: self-supervised pairs -> IsoNet, with checkpoints, logs, curves and resume.

:func:`train` normalizes the volume by robust percentiles, builds the training pairs
(:mod:`isonet_ij.pairs`), and trains the network with Adam on the negative-PSNR loss of
eq. 3 in a ``tf.function`` step of fixed shape (traced once). After every epoch it
validates on held-out slices and writes, atomically, into the model directory:
``weights_last`` (+ optimizer state and ``train_state.json``, the resume point),
``weights_best`` when validation improved, ``training_log.csv`` and
``training_curve.png``. ``time_budget`` stops at a wall-clock limit (counted from the
call, pair preparation included) after validating and checkpointing the partial epoch.

Defaults chosen by measurement (numbers in :class:`isonet_ij.config.Config`): Adam lr 1e-3
(2 dB ahead of the paper's 5e-3 after 350 steps), 64x64 patches, batch 16.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import pairs
from .model import IsoNetModel, model_from_keras
from .volume_io import as_volume3d
from .config import (
    OPTIMIZER_LAST,
    TRAIN_STATE,
    TRAINING_CURVE,
    TRAINING_LOG,
    WEIGHTS_BEST,
    WEIGHTS_LAST,
    Config,
    read_config,
    save_psf,
    write_config,
)
from .volume_io import atomic_path, write_json

__all__ = ["train", "training_kernels_for", "TrainResult", "psnr_loss", "parse_duration", "make_steps",
           "training_step_for"]

log = logging.getLogger(__name__)

LOG_FIELDS = ["epoch", "steps", "loss", "val_loss", "val_psnr", "val_psnr_input", "lr", "elapsed_s"]
_OUR_FILES = (
    "config.json",
    WEIGHTS_BEST,
    WEIGHTS_LAST,
    OPTIMIZER_LAST,
    TRAIN_STATE,
    TRAINING_LOG,
    TRAINING_CURVE,
    "psf.tif",
)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : IsoNetModel
        The network holding the best weights (by validation loss).
    history : list of dict
        One row per epoch (see ``LOG_FIELDS``).
    stop_reason : str
        ``"epochs"``, ``"time budget"`` or ``"already done"``.
    train_step : str
        ``"plain"`` or ``"xla"``: the training step this machine ran faster
        (:func:`training_step_for`).
    """

    model: IsoNetModel
    history: list = field(default_factory=list)
    stop_reason: str = "epochs"
    train_step: str = "plain"


def parse_duration(text) -> float:
    """Seconds from ``"15m"``, ``"90s"``, ``"1.5h"``, ``"2m30s"`` or a plain number (s)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        import re

        s = str(text).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", s)
        if not s or parts is None or not any(parts.groups()):
            msg = f"duration must look like 15m, 90s, 1.5h or 2m30s, got {text!r}"
            raise ValueError(msg)
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        value = 3600 * h + 60 * m + sec
    if not math.isfinite(value) or value <= 0:
        msg = f"duration must be positive, got {text!r}"
        raise ValueError(msg)
    return value


def training_kernels_for(psf, mode: str) -> dict:
    """The 2D training kernels of a mode: ``psf.training_kernels`` or identity for none."""
    if mode == "none":
        return pairs.identity_kernels()
    if psf is None:
        msg = f"mode {mode!r} needs a PSF (--psf); mode 'none' (SRCNN) trains without one"
        raise ValueError(msg)
    from .psf import training_kernels

    return training_kernels(psf, mode)


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


def lr_at(config: Config, progress: float) -> float:
    """Learning rate at ``progress`` (0 at the start, 1 at the end of the run).

    ``"cosine"`` goes from ``learning_rate`` down to 1 % of it; ``"constant"`` stays.
    """
    lr = float(config.learning_rate)
    if config.lr_schedule == "constant":
        return lr
    p = min(max(float(progress), 0.0), 1.0)
    return lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * p)))


def _loss_fn(name):
    import tensorflow as tf

    if name == "psnr":
        return psnr_loss
    if name == "mse":
        return lambda a, b: tf.reduce_mean(tf.square(a - b))
    return lambda a, b: tf.reduce_mean(tf.abs(a - b))


# --------------------------------------------------------------------------- model dir IO


def _save_weights_atomic(net, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        net.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst, force=True) as tmp:
        shutil.copyfile(src, tmp)


def _save_optimizer(opt, path: Path) -> None:
    arrays = {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(opt.variables)}
    with atomic_path(path, force=True) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _load_optimizer(opt, net, path: Path) -> bool:
    if not path.is_file():
        return False
    opt.build(net.trainable_variables)
    with np.load(path) as data:
        values = [data[k] for k in sorted(data.files)]
    if len(values) != len(opt.variables):
        log.warning("optimizer state in %s does not match; starting Adam afresh", path)
        return False
    for var, val in zip(opt.variables, values):
        var.assign(val)
    return True


def _write_log(path: Path, history: list) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    w.writeheader()
    for row in history:
        w.writerow({k: row.get(k, "") for k in LOG_FIELDS})
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(buf.getvalue())


def _read_log(path: Path) -> list:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        out.append({k: (float(v) if k != "epoch" and v not in ("", None) else v) for k, v in r.items()})
        out[-1]["epoch"] = int(r["epoch"])
    return out


def _write_curve(path: Path, history: list, title: str, *, loss: str = "psnr") -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ep = [r["epoch"] for r in history]
    if loss == "psnr" and history and history[0].get("loss") not in ("", None):
        ax.plot(ep, [-float(r["loss"]) if r.get("loss") not in ("", None) else np.nan for r in history],
                label="training (-loss)")
    ax.plot(ep, [float(r["val_psnr"]) for r in history], label="validation PSNR")
    if history:
        ax.axhline(float(history[-1]["val_psnr_input"]), color="gray", ls="--",
                   label="validation, input (bicubic)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("PSNR per patch (dB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png")


def _prepare_dir(model_dir: Path, *, resume: bool, force: bool) -> bool:
    """Return True when resuming from an existing checkpoint."""
    if model_dir.exists() and not model_dir.is_dir():
        msg = f"model directory {str(model_dir)!r} is a file; choose a directory path"
        raise FileExistsError(msg)
    has_ckpt = (model_dir / TRAIN_STATE).is_file() and (model_dir / WEIGHTS_LAST).is_file()
    if resume:
        if not has_ckpt:
            msg = (
                f"cannot resume: {str(model_dir)!r} holds no checkpoint "
                f"({TRAIN_STATE} + {WEIGHTS_LAST}); train without --resume"
            )
            raise FileNotFoundError(msg)
        return True
    if model_dir.is_dir() and any(model_dir.iterdir()):
        if not force:
            msg = (
                f"model directory {str(model_dir)!r} is not empty; pass --resume to continue "
                "its training, --force to replace it, or choose another -o"
            )
            raise FileExistsError(msg)
        for name in _OUR_FILES:
            p = model_dir / name
            if p.is_file():
                p.unlink()
    return False


# --------------------------------------------------------------------------- training


def train(
    volume,
    config: Config,
    *,
    psf=None,
    model_dir=None,
    time_budget=None,
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
    threads: int | None = None,
) -> TrainResult:
    """Train IsoNet on a single anisotropic volume (self-supervised, eq. 2-3).

    Parameters
    ----------
    volume : (Z, Y, X) ndarray
        Acquired anisotropic volume, any real dtype; z spacing = ``config.factor`` x xy.
    config : Config
        Architecture, mode, factor, PSF spec and training options (validated).
        ``normalization`` and ``noise_model`` are filled in from ``volume``.
    psf : (z, y, x) ndarray, optional
        3D PSF on the isotropic grid (required unless ``config.mode == "none"``).
    model_dir : str or Path, optional
        Where checkpoints, logs and the curve go; ``None`` trains in memory only.
    time_budget : float or str, optional
        Wall-clock limit (seconds, or ``"15m"``) for the whole call.
    resume : bool
        Continue from ``model_dir``'s last checkpoint: its stored config is used, except
        ``config.epochs``, the total number of epochs to reach.
    force : bool
        Replace an existing, non-empty ``model_dir``.
    progress : bool
        Show a tqdm bar.
    threads : int, optional
        TensorFlow CPU threads (default: all cores).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Invalid config, a 2D or too small volume, a bad PSF.
    FileExistsError
        ``model_dir`` not empty without ``resume``/``force``.
    """
    t_start = time.monotonic()
    budget = parse_duration(time_budget) if time_budget is not None else None
    vol = as_volume3d(volume, hint_2d="a 2D image has no axial planes")
    model_dir = Path(model_dir) if model_dir is not None else None
    resuming = False
    if model_dir is not None:
        resuming = _prepare_dir(model_dir, resume=resume, force=force)
    if resuming:
        stored = read_config(model_dir)
        config = stored.replace(epochs=int(config.epochs))
        if psf is None:
            from .config import load_psf_file

            psf = load_psf_file(model_dir)
    config = config.replace()  # a copy we may fill in
    config.validate()
    if config.mode != "none":
        from .psf import validate_psf

        if psf is None:
            msg = f"mode {config.mode!r} needs a PSF; pass --psf or use mode 'none' (SRCNN)"
            raise ValueError(msg)
        psf = validate_psf(psf)
    if config.arch == "isonet2" and config.patch_size % 4:
        msg = f"IsoNet-2 needs a patch size divisible by 4, got {config.patch_size}"
        raise ValueError(msg)

    # ---- data
    p_lo, p_hi = config.normalization["p_low"], config.normalization["p_high"]
    if resuming and config.normalization.get("low") is not None:
        lo, hi = config.normalization["low"], config.normalization["high"]
    else:
        lo, hi = pairs.percentiles(vol, low=p_lo, high=p_hi)
    config.normalization = {"p_low": p_lo, "p_high": p_hi, "low": lo, "high": hi}
    vol_n = pairs.normalize(vol, lo, hi)
    kernels = training_kernels_for(psf, config.mode)
    noise = None
    if config.noise_match:
        noise = tuple(config.noise_model) if (resuming and config.noise_model) else pairs.estimate_noise(vol_n)
        config.noise_model = [float(noise[0]), float(noise[1])]
    sampler = pairs.make_pairs(
        vol_n,
        kernels,
        config.factor,
        patch_size=config.patch_size,
        validation_fraction=config.validation_fraction,
        n_validation=config.n_validation,
        noise_match=config.noise_match,
        noise=noise,
        seed=config.seed,
    )
    x_val, y_val = sampler.validation
    val_psnr_input = float(np.mean(_psnr_np(y_val, x_val)))
    config.psf_info = dict(config.psf_info or {})
    config.psf_info["training_kernel_shapes"] = {k: list(v.shape) for k, v in kernels.items()}
    config.psf_info["flips"] = {k: list(v) for k, v in sampler.flips.items()}

    # ---- network
    from .nets import build_model, set_threads

    set_threads(threads)
    import keras

    keras.utils.set_random_seed(int(config.seed))
    net = build_model(config.arch, dropout=config.dropout, seed=config.seed)
    opt = keras.optimizers.Adam(learning_rate=float(config.learning_rate))
    history: list = []
    start_epoch = 0
    best_val = math.inf
    best_epoch = None
    elapsed_before = 0.0
    if resuming:
        net.load_weights(model_dir / WEIGHTS_LAST)
        _load_optimizer(opt, net, model_dir / OPTIMIZER_LAST)
        state = json.loads((model_dir / TRAIN_STATE).read_text())
        start_epoch = int(state["epoch"])
        best_val = float(state.get("best_val_loss", math.inf))
        best_epoch = state.get("best_epoch")
        elapsed_before = float(state.get("elapsed_s", 0.0))
        history = [r for r in _read_log(model_dir / TRAINING_LOG) if r["epoch"] <= start_epoch]
    if model_dir is not None:
        write_config(model_dir, config)
        if psf is not None and not (model_dir / "psf.tif").is_file():
            save_psf(model_dir, psf)

    B, P = int(config.batch_size), int(config.patch_size)
    # XLA helps IsoNet-2 on some CPUs and slows it on others: time both on a real batch.
    xb, yb = sampler.sample(B, np.random.default_rng([int(config.seed), 0, 2]), augment=config.augment)
    step_kind, train_step, val_step = training_step_for(
        config.arch, net, opt, config.loss, B, P, xb[..., None], yb[..., None])

    n_val = x_val.shape[0]
    n_val_pad = int(math.ceil(n_val / B)) * B
    xv = np.zeros((n_val_pad, P, P, 1), np.float32)
    yv = np.zeros((n_val_pad, P, P, 1), np.float32)
    xv[:n_val, ..., 0], yv[:n_val, ..., 0] = x_val, y_val

    def validate():
        ps, ms, ma = [], [], []
        for i in range(0, n_val_pad, B):
            p, m, a = val_step(xv[i : i + B], yv[i : i + B])
            ps.append(p.numpy()), ms.append(m.numpy()), ma.append(a.numpy())
        ps, ms, ma = (np.concatenate(v)[:n_val] for v in (ps, ms, ma))
        val_psnr = float(np.mean(ps))
        val_loss = {"psnr": -val_psnr, "mse": float(np.mean(ms)), "mae": float(np.mean(ma))}[config.loss]
        return val_loss, val_psnr

    best_weights = None  # in-memory copy when model_dir is None
    stop_reason = "epochs"
    total_steps = config.epochs * config.steps_per_epoch
    if start_epoch >= config.epochs:
        stop_reason = "already done"
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=start_epoch * config.steps_per_epoch, unit="step",
                   desc=f"train {config.arch}/{config.mode}", dynamic_ncols=True)
    title = f"{config.arch} {config.mode}, factor {config.factor:g}, {config.psf or 'no PSF'}"
    steps_done = sum(int(r["steps"]) for r in history)

    def progress_now() -> float:
        """Fraction of the run done: of the steps, or of the time budget if further."""
        done = steps_done / max(total_steps, 1)
        if budget is not None:
            done = max(done, (time.monotonic() - t_start) / budget)
        return done

    try:
        for epoch in range(start_epoch, config.epochs):
            rng = np.random.default_rng([int(config.seed), epoch, 1])
            losses = []
            out_of_time = False
            for _ in range(config.steps_per_epoch):
                if budget is not None and time.monotonic() - t_start >= budget:
                    out_of_time = True
                    break
                xb, yb = sampler.sample(B, rng, augment=config.augment)
                lr_now = lr_at(config, progress_now())
                opt.learning_rate.assign(lr_now)
                losses.append(float(train_step(xb[..., None], yb[..., None])))
                steps_done += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3g}", refresh=False)
            if not losses:
                stop_reason = "time budget"
                break
            val_loss, val_psnr = validate()
            elapsed = elapsed_before + time.monotonic() - t_start
            row = {
                "epoch": epoch + 1,
                "steps": len(losses),
                "loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "val_psnr": val_psnr,
                "val_psnr_input": val_psnr_input,
                "lr": float(lr_now),
                "elapsed_s": round(elapsed, 2),
            }
            history.append(row)
            improved = val_loss < best_val
            if improved:
                best_val, best_epoch = val_loss, epoch + 1
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss']:.3g}", val_psnr=f"{val_psnr:.2f}",
                                input=f"{val_psnr_input:.2f}", refresh=True)
            if model_dir is not None:
                _save_weights_atomic(net, model_dir / WEIGHTS_LAST)
                _save_optimizer(opt, model_dir / OPTIMIZER_LAST)
                if improved:
                    _copy_atomic(model_dir / WEIGHTS_LAST, model_dir / WEIGHTS_BEST)
                write_json(model_dir / TRAIN_STATE, {
                    "epoch": epoch + 1, "best_val_loss": best_val, "best_epoch": best_epoch,
                    "elapsed_s": elapsed, "partial_epoch": out_of_time,
                }, force=True)
                _write_log(model_dir / TRAINING_LOG, history)
                _write_curve(model_dir / TRAINING_CURVE, history, title, loss=config.loss)
            elif improved:
                best_weights = [w.numpy().copy() for w in net.weights]
            log.debug("epoch %d: loss %.4f val_psnr %.3f (input %.3f)", epoch + 1, row["loss"], val_psnr, val_psnr_input)
            if out_of_time:
                stop_reason = "time budget"
                break
    finally:
        if bar is not None:
            bar.close()

    # ---- best weights into the returned network
    weights = "last"
    if model_dir is not None and (model_dir / WEIGHTS_BEST).is_file():
        net.load_weights(model_dir / WEIGHTS_BEST)
        weights = "best"
    elif best_weights is not None:
        for w, v in zip(net.weights, best_weights):
            w.assign(v)
        weights = "best"
    model = model_from_keras(net, config, psf=psf, path=model_dir, weights=weights if model_dir else "memory")
    log.info(
        "training stopped (%s) after %d epochs; best validation PSNR %.2f dB at epoch %s "
        "(input %.2f dB)",
        stop_reason, len(history), -best_val if config.loss == "psnr" else float("nan"),
        best_epoch, val_psnr_input,
    )
    return TrainResult(model, history, stop_reason, step_kind)


def _psnr_np(y, x) -> np.ndarray:
    mse = np.mean((y - x) ** 2, axis=(1, 2)) + 1e-10
    peak = np.maximum(y.max(axis=(1, 2)), 1e-6)
    return 20 * np.log10(peak) - 10 * np.log10(mse)

