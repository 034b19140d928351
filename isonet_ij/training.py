"""Training: self-supervised pairs -> IsoNet, with checkpoints, logs, curves and resume.

:func:`train` normalizes the volume by robust percentiles, builds the training pairs
(:mod:`isonet_ij.pairs`), and trains the network with Adam on the negative-PSNR loss of
eq. 3 in a ``tf.function`` step of fixed shape (traced once). After every epoch it
validates on held-out slices and writes, atomically, into the model directory:
``weights_last`` (+ optimizer state and ``train_state.json``, the resume point),
``weights_best`` when validation improved, ``training_log.csv`` and
``training_curve.png``. ``time_budget`` stops at a wall-clock limit (counted from the
call, pair preparation included) after validating and checkpointing the partial epoch.
The model-directory files themselves are written by :mod:`isonet_ij.checkpoints`.

Defaults chosen by measurement (numbers in :class:`isonet_ij.config.Config`): Adam lr 1e-3
(2 dB ahead of the paper's 5e-3 after 350 steps), 64x64 patches, batch 16.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoints, pairs
from .config import (CONFIG_JSON, PSF_TIF, TRAINING_LOG, WEIGHTS_BEST, WEIGHTS_LAST, Config, load_psf_file, read_config,
                     save_psf, write_config)
from .fingerprints import array_fingerprint
from .locks import exclusive_output
from .model import IsoNetModel, load_model, model_from_keras
from .train_progress import parse_duration
from .train_steps import training_step_for
from .volume_io import as_volume3d

__all__ = ["train", "training_kernels_for", "TrainResult", "parse_duration", "lr_at"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : IsoNetModel
        The network holding the best weights (by validation loss).
    history : list of dict
        One row per epoch (see :data:`isonet_ij.checkpoints.LOG_FIELDS`).
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


def training_kernels_for(psf, mode: str) -> dict:
    """The 2D training kernels of a mode: ``psf.training_kernels`` or identity for none."""
    if mode == "none":
        return pairs.identity_kernels()
    if psf is None:
        msg = f"mode {mode!r} needs a PSF (--psf); mode 'none' (SRCNN) trains without one"
        raise ValueError(msg)
    from .psf import training_kernels

    return training_kernels(psf, mode)


def lr_at(config: Config, progress: float) -> float:
    """Learning rate at ``progress`` (0 at the start, 1 at the end of the run).

    ``"cosine"`` goes from ``learning_rate`` down to 1 % of it; ``"constant"`` stays.
    """
    lr = float(config.learning_rate)
    if config.lr_schedule == "constant":
        return lr
    p = min(max(float(progress), 0.0), 1.0)
    return lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * p)))


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
    pairs_from=None,
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
        ``config.epochs``, the total number of epochs to reach. A two-round run (its folder
        holds ``round1/``) continues the round it was in; its epochs count both rounds.
        A new run's ``config.rounds="auto"`` becomes 1 or 2 here (:func:`refinement.rounds_for`).
    force : bool
        Replace an existing, non-empty ``model_dir``.
    progress : bool
        Show a tqdm bar.
    threads : int, optional
        TensorFlow CPU threads (default: all cores).
    pairs_from : callable, optional
        ``pairs_from(normalized volume, config) -> sampler`` replaces the self-supervised
        pairs (the supervised oracle of :mod:`isonet_ij.oracle`); the sampler has
        ``sample(n, rng, augment=)``, ``validation`` and ``flips`` like
        :class:`isonet_ij.pairs.PairSampler`. Not with ``resume``.

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
    if pairs_from is not None and resume:
        raise ValueError("pairs_from cannot resume a run (its pairs are not stored with the model)")
    options = {"resume": resume, "force": force, "progress": progress, "threads": threads, "pairs_from": pairs_from}
    config = _with_rounds(config, psf, budget, pairs_from, quiet=resume)  # a resumed run keeps its stored rounds
    if model_dir is None:
        run = _train_in_two_rounds if _two_rounds(config, None, resume, pairs_from) else _train
        return run(vol, config, psf, None, t_start, budget, **options)
    model_dir = Path(model_dir)
    with exclusive_output(model_dir, what="model folder"):
        run = _train_in_two_rounds if _two_rounds(config, model_dir, resume, pairs_from) else _train
        return run(vol, config, psf, model_dir, t_start, budget, **options)


def _with_rounds(config: Config, psf, budget, pairs_from, *, quiet: bool) -> Config:
    """``config`` with ``rounds="auto"`` resolved to 1 or 2 (:func:`refinement.rounds_for`); what the
    model folder stores, so that a resume trains the rounds the run began with."""
    from . import refinement

    if config.rounds != "auto":
        return config
    rounds = 1 if pairs_from is not None else refinement.rounds_for(config.validate(), psf, budget)
    if rounds == 2 and not quiet:
        log.info("rounds auto: training in two rounds, as the PSF's extra axial blur (sigma %.2f voxels) is at "
                 "least %g; rounds 1 trains one", refinement.extra_axial_sigma(psf), refinement.AUTO_EXTRA_SIGMA)
    return config.replace(rounds=rounds)


def _two_rounds(config: Config, model_dir: Path | None, resume: bool, pairs_from) -> bool:
    """Whether this run trains two rounds: asked for, or a two-round run is resumed (its folder says)."""
    if pairs_from is not None:
        return False
    if not resume or model_dir is None:
        return config.rounds == 2
    if (model_dir / checkpoints.FIRST_ROUND_DIR).is_dir():
        return True
    if (model_dir / CONFIG_JSON).is_file() and read_config(model_dir).rounds == 2:
        raise ValueError(f"cannot resume {str(model_dir)!r}: its first training round was not kept (trained "
                         "by an older isonet-ij); train again into it with --force, or into a new folder")
    return False


def _train_in_two_rounds(vol, config: Config, psf, model_dir: Path | None, t_start, budget, *, pairs_from,
                         resume, **options) -> TrainResult:
    """``config.rounds == 2``: a first round on :data:`refinement.FIRST_ROUND_SHARE` of the epochs
    and of the budget (in ``model_dir/round1``, or in memory), then the second, into ``model_dir``,
    from the first's weights, on the acquired slices as the first restores them
    (:mod:`isonet_ij.refinement`); its history follows the first's.

    Resuming picks up where the run stopped: the first round from its checkpoint, or, once the
    second has checkpointed, the second (the first round's model rebuilds its targets and is
    not trained further). ``config.epochs`` counts both rounds.
    """
    from . import refinement

    first_dir = None if model_dir is None else model_dir / checkpoints.FIRST_ROUND_DIR
    if resume and model_dir is not None:  # the run's own settings, written when it began, and its PSF
        config = read_config(model_dir).replace(epochs=int(config.epochs))
        psf = load_psf_file(first_dir) if psf is None else psf
    config = config.replace(rounds=2).validate()
    if resume and model_dir is not None and checkpoints.has_checkpoint(model_dir):
        # the second round has begun: resume it; the first round's model rebuilds its targets
        first = load_model(first_dir, backend="tensorflow")
        first_history = checkpoints.read_log(first_dir / TRAINING_LOG)
        second_config = config.replace(epochs=max(1, config.epochs - read_config(first_dir).epochs))
        second = _train(vol, second_config, psf, model_dir, t_start, budget, pairs_from=None, resume=True,
                        targets=refinement.restored_acquired_slices(vol, first), stage=" (round 2 of 2)", **options)
    else:
        first = _first_round(vol, config, psf, model_dir, first_dir, t_start, budget, resume=resume, **options)
        first_history = first.history
        second = _train(vol, config.replace(epochs=max(1, config.epochs - first.model.config.epochs)), psf,
                        model_dir, t_start, budget, pairs_from=None, resume=False, prepared=True,
                        targets=refinement.restored_acquired_slices(vol, first.model),
                        init_weights=first.model.net.net.get_weights(), stage=" (round 2 of 2)", **options)
    if not second.history:  # the budget ended before round 2's first step: the model is round 1's
        log.warning("the time budget ended before the second training round could take a step: the model is "
                    "the first round's (give a longer time budget for two rounds)")
        if model_dir is not None and (first_dir / WEIGHTS_BEST).is_file():
            for name in (WEIGHTS_BEST, WEIGHTS_LAST):
                checkpoints.copy_atomic(first_dir / WEIGHTS_BEST, model_dir / name)
    second.history = checkpoints.join_rounds(first_history, second.history)
    return second


def _first_round(vol, config: Config, psf, model_dir: Path | None, first_dir: Path | None, t_start, budget, *,
                 resume, **options) -> TrainResult:
    """The first round of :func:`_train_in_two_rounds` (``config``: the whole run's) into ``first_dir``.

    A new run claims ``model_dir`` first (a busy folder is refused before an hour of training,
    not after) and writes the run's config there, which a resume of this round reads; if the
    round fails before its first checkpoint (the volume too small for a patch, ...), what this
    call wrote is removed again, so a refused run leaves no folder behind.
    """
    from . import refinement

    new_folder = model_dir is not None and not resume
    created = new_folder and not model_dir.exists()
    if new_folder:
        checkpoints.prepare_model_dir(model_dir, resume=False, force=options["force"])
        write_config(model_dir, config)
    first_epochs = max(1, int(round(config.epochs * refinement.FIRST_ROUND_SHARE)))
    first_resumes = resume and first_dir is not None and checkpoints.has_checkpoint(first_dir)
    try:
        return _train(vol, config.replace(rounds=1, epochs=first_epochs), psf, first_dir, t_start,
                      None if budget is None else budget * refinement.FIRST_ROUND_SHARE, pairs_from=None,
                      resume=first_resumes, stage=" (round 1 of 2)", **{**options, "force": True})
    except BaseException:
        if new_folder and not checkpoints.has_checkpoint(first_dir):
            checkpoints.remove_new_run(model_dir, remove_folder=created)
        raise


def _train(vol, config: Config, psf, model_dir: Path | None, t_start, budget, *, resume, force, progress,
           threads, pairs_from, init_weights=None, targets=None, prepared=False, stage="") -> TrainResult:
    """:func:`train` once ``model_dir`` (if any) is claimed; ``init_weights``: the network's start,
    ``targets``: the stack the pairs are made from (:func:`_prepare_pairs`); ``prepared``: a new
    run in a folder this call has already prepared (the second round, beside the first's folder);
    ``stage``: the progress bar's round, e.g. " (round 1 of 2)"."""
    resuming = False
    if model_dir is not None and not prepared:
        resuming = checkpoints.prepare_model_dir(model_dir, resume=resume, force=force)
    config, psf = _checked_config(config, psf, model_dir if resuming else None)
    _check_same_input(config, vol, model_dir if resuming else None)
    sampler = _prepare_pairs(vol, config, psf, resuming=resuming, pairs_from=pairs_from, targets=targets)
    net, opt = _build_network(config, threads)
    if init_weights is not None:
        net.set_weights(init_weights)
    loop = _EpochLoop(config, sampler, net, opt, model_dir, t_start=t_start, budget=budget, stage=stage)
    if resuming:
        loop.resume_from(checkpoints.restore_checkpoint(model_dir, net, opt))
    if model_dir is not None:
        write_config(model_dir, config)
        if psf is not None and not (model_dir / PSF_TIF).is_file():
            save_psf(model_dir, psf)
    loop.choose_training_step()
    stop_reason = loop.run(progress=progress)
    model = model_from_keras(net, config, psf=psf, path=model_dir, weights=loop.load_best_weights())
    log.info(
        "training stopped (%s) after %d epochs; best validation PSNR %.2f dB at epoch %s "
        "(input %.2f dB)",
        stop_reason, len(loop.history), -loop.best_val if config.loss == "psnr" else float("nan"),
        loop.best_epoch, loop.val_psnr_input,
    )
    return TrainResult(model, loop.history, stop_reason, loop.step_kind)


def _check_same_input(config: Config, vol: np.ndarray, resume_dir: Path | None) -> None:
    """Store the training volume's fingerprint; a resumed run must train on the same volume."""
    fp = array_fingerprint(vol)
    stored = config.train_fingerprint
    if resume_dir is not None and stored is not None and stored != fp:
        what = [k for k in ("shape", "dtype", "sha256") if stored.get(k) != fp[k]]
        desc = {"shape": f"shape {tuple(fp['shape'])} (was {tuple(stored.get('shape') or ())})",
                "dtype": f"dtype {fp['dtype']} (was {stored.get('dtype')})", "sha256": "voxel values"}
        msg = (f"cannot resume {str(resume_dir)!r}: it was started on another volume "
               f"({config.train_input or 'unknown input'}); this one differs in {', '.join(desc[k] for k in what)}. "
               "Train into a new model folder (another -o), or drop --resume and pass --force to start over")
        raise ValueError(msg)
    config.train_fingerprint = fp


def _checked_config(config: Config, psf, resume_dir: Path | None):
    """``(config copy, psf)`` validated; a resumed run takes both from ``resume_dir``.

    Only ``config.epochs`` (the total to reach) is taken from the caller when resuming.
    """
    if resume_dir is not None:
        stored = read_config(resume_dir)
        config = stored.replace(epochs=int(config.epochs))
        if psf is None:
            psf = load_psf_file(resume_dir)
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
    return config, psf


def _prepare_pairs(vol: np.ndarray, config: Config, psf, *, resuming: bool, pairs_from=None,
                   targets=None) -> pairs.PairSampler:
    """Normalize ``vol`` and build the training pairs; fills in ``config``'s data fields.

    ``config.normalization`` (percentile values), ``config.noise_model`` and the kernel
    shapes and flips in ``config.psf_info`` are set here; a resumed run keeps its stored
    normalization and noise model so that the data look as before. ``targets`` (``vol``'s
    shape and units; default ``vol``): the stack whose lateral slices the pairs are made
    from (the second round of ``rounds=2``); normalization and noise model stay ``vol``'s.
    """
    p_lo, p_hi = config.normalization["p_low"], config.normalization["p_high"]
    if resuming and config.normalization.get("low") is not None:
        lo, hi = config.normalization["low"], config.normalization["high"]
    else:
        lo, hi = pairs.percentiles(vol, low=p_lo, high=p_hi)
    config.normalization = {"p_low": p_lo, "p_high": p_hi, "low": lo, "high": hi}
    vol_n = pairs.normalize(vol, lo, hi)
    if pairs_from is not None:
        sampler = pairs_from(vol_n, config)
        config.psf_info = {**(config.psf_info or {}), "flips": {k: list(v) for k, v in sampler.flips.items()}}
        return sampler
    kernels = training_kernels_for(psf, config.mode)
    noise = None
    if config.noise_match:
        noise = tuple(config.noise_model) if (resuming and config.noise_model) else pairs.estimate_noise(vol_n)
        config.noise_model = [float(noise[0]), float(noise[1])]
    sampler = pairs.make_pairs(
        vol_n if targets is None else pairs.normalize(targets, lo, hi),
        kernels,
        config.factor,
        patch_size=config.patch_size,
        validation_fraction=config.validation_fraction,
        n_validation=config.n_validation,
        noise_match=config.noise_match,
        noise=noise,
        seed=config.seed,
    )
    config.psf_info = dict(config.psf_info or {})
    config.psf_info["training_kernel_shapes"] = {k: list(v.shape) for k, v in kernels.items()}
    config.psf_info["flips"] = {k: list(v) for k, v in sampler.flips.items()}
    return sampler


def _build_network(config: Config, threads: int | None):
    """``(network, Adam optimizer)``, seeded by ``config.seed`` (TensorFlow imported here)."""
    from .nets import build_model, set_threads

    set_threads(threads)
    import keras

    keras.utils.set_random_seed(int(config.seed))
    net = build_model(config.arch, dropout=config.dropout, seed=config.seed)
    opt = keras.optimizers.Adam(learning_rate=float(config.learning_rate))
    return net, opt


class _EpochLoop:
    """The epochs of one :func:`train` call: steps, validation, checkpoints, time budget.

    ``history``, ``best_val`` (validation loss), ``best_epoch`` and ``val_psnr_input``
    (validation PSNR of the bicubic input, dB) are read by :func:`train` afterwards.
    """

    def __init__(self, config: Config, sampler, net, opt, model_dir, *, t_start: float, budget, stage: str = ""):
        self.config, self.sampler, self.net, self.opt = config, sampler, net, opt
        self.model_dir = model_dir
        self.t_start, self.budget = t_start, budget  # time.monotonic() s, s or None
        self.stage = stage  # the progress bar's "(round 1 of 2)"
        self.history: list = []
        self.start_epoch = 0
        self.best_val = math.inf
        self.best_epoch = None
        self.elapsed_before = 0.0  # seconds trained by earlier (resumed) runs
        self.best_weights = None  # in-memory copy of the best weights when model_dir is None
        self.bar = None
        self.steps_done = 0
        # set by choose_training_step: the step functions and the batch-padded validation set
        self.step_kind = self.train_step = self.val_step = None
        self.xv = self.yv = None
        self.n_val = 0
        x_val, y_val = sampler.validation
        self.val_psnr_input = float(np.mean(_psnr_np(y_val, x_val)))
        self.total_steps = config.epochs * config.steps_per_epoch
        self.title = f"{config.arch} {config.mode}, factor {config.factor:g}, {config.psf or 'no PSF'}"

    def resume_from(self, state: dict) -> None:
        """Continue after :func:`isonet_ij.checkpoints.restore_checkpoint`'s ``state``."""
        self.start_epoch = state["epoch"]
        self.best_val = state["best_val_loss"]
        self.best_epoch = state["best_epoch"]
        self.elapsed_before = state["elapsed_s"]
        self.history = state["history"]

    def choose_training_step(self) -> None:
        """Pick the faster training step on a real batch and pad the validation set to batches.

        XLA helps IsoNet-2 on some CPUs and slows it on others: both are timed.
        """
        config, B, P = self.config, int(self.config.batch_size), int(self.config.patch_size)
        rng = np.random.default_rng([int(config.seed), 0, 2])
        xb, yb = self.sampler.sample(B, rng, augment=config.augment)
        self.step_kind, self.train_step, self.val_step = training_step_for(
            config.arch, self.net, self.opt, config.loss, B, P, xb[..., None], yb[..., None])
        x_val, y_val = self.sampler.validation
        self.n_val = x_val.shape[0]
        n_val_pad = int(math.ceil(self.n_val / B)) * B
        self.xv = np.zeros((n_val_pad, P, P, 1), np.float32)
        self.yv = np.zeros((n_val_pad, P, P, 1), np.float32)
        self.xv[: self.n_val, ..., 0], self.yv[: self.n_val, ..., 0] = x_val, y_val

    def run(self, *, progress: bool) -> str:
        """Train the remaining epochs; the stop reason (see :class:`TrainResult`)."""
        config = self.config
        self.steps_done = sum(int(r["steps"]) for r in self.history)
        if progress:
            from .train_progress import TrainingBar

            self.bar = TrainingBar(desc=f"train {config.arch}/{config.mode}{self.stage}", epochs=config.epochs,
                                   steps_per_epoch=config.steps_per_epoch, start_epoch=self.start_epoch,
                                   budget=self.budget, t_start=self.t_start)
        stop_reason = "already done" if self.start_epoch >= config.epochs else "epochs"
        try:
            for epoch in range(self.start_epoch, config.epochs):
                losses, lr_now, out_of_time = self._train_epoch(epoch)
                if not losses:
                    return "time budget"
                self._end_epoch(epoch, losses, lr_now, out_of_time)
                if out_of_time:
                    return "time budget"
        finally:
            if self.bar is not None:
                self.bar.close()
        return stop_reason

    def _out_of_time(self) -> bool:
        return self.budget is not None and time.monotonic() - self.t_start >= self.budget

    def _progress_now(self) -> float:
        """Fraction of the run done: of the steps, or of the time budget if further."""
        done = self.steps_done / max(self.total_steps, 1)
        if self.budget is not None:
            done = max(done, (time.monotonic() - self.t_start) / self.budget)
        return done

    def _train_epoch(self, epoch: int) -> tuple[list, float | None, bool]:
        """``(step losses, last learning rate, out of time)`` of one epoch's steps."""
        config, B = self.config, int(self.config.batch_size)
        rng = np.random.default_rng([int(config.seed), epoch, 1])
        losses, lr_now = [], None
        for _ in range(config.steps_per_epoch):
            if self._out_of_time():
                return losses, lr_now, True
            xb, yb = self.sampler.sample(B, rng, augment=config.augment)
            lr_now = lr_at(config, self._progress_now())
            self.opt.learning_rate.assign(lr_now)
            losses.append(float(self.train_step(xb[..., None], yb[..., None])))
            self.steps_done += 1
            if self.bar is not None:
                self.bar.step(losses[-1])
        return losses, lr_now, False

    def _validate(self) -> tuple[float, float]:
        """``(validation loss, mean validation PSNR in dB)`` on the fixed validation set."""
        B = int(self.config.batch_size)
        ps, ms, ma = [], [], []
        for i in range(0, self.xv.shape[0], B):
            p, m, a = self.val_step(self.xv[i : i + B], self.yv[i : i + B])
            ps.append(p.numpy()), ms.append(m.numpy()), ma.append(a.numpy())
        ps, ms, ma = (np.concatenate(v)[: self.n_val] for v in (ps, ms, ma))
        val_psnr = float(np.mean(ps))
        val_loss = {"psnr": -val_psnr, "mse": float(np.mean(ms)), "mae": float(np.mean(ma))}[self.config.loss]
        return val_loss, val_psnr

    def _end_epoch(self, epoch: int, losses: list, lr_now: float, out_of_time: bool) -> None:
        """Validate, log the epoch and keep the best weights (on disk or in memory)."""
        val_loss, val_psnr = self._validate()
        elapsed = self.elapsed_before + time.monotonic() - self.t_start
        row = {
            "epoch": epoch + 1,
            "steps": len(losses),
            "loss": float(np.mean(losses)),
            "val_loss": val_loss,
            "val_psnr": val_psnr,
            "val_psnr_input": self.val_psnr_input,
            "lr": float(lr_now),
            "elapsed_s": round(elapsed, 2),
        }
        self.history.append(row)
        improved = val_loss < self.best_val
        if improved:
            self.best_val, self.best_epoch = val_loss, epoch + 1
        if self.bar is not None:
            self.bar.validated(epoch + 1, val_psnr, self.val_psnr_input)
        if self.model_dir is not None:
            state = {"epoch": epoch + 1, "best_val_loss": self.best_val, "best_epoch": self.best_epoch,
                     "elapsed_s": elapsed, "partial_epoch": out_of_time}
            checkpoints.write_checkpoint(self.model_dir, self.net, self.opt, self.history, state,
                                         improved=improved, title=self.title, loss=self.config.loss)
        elif improved:
            self.best_weights = [w.numpy().copy() for w in self.net.weights]
        log.debug("epoch %d: loss %.4f val_psnr %.3f (input %.3f)", epoch + 1, row["loss"], val_psnr,
                  self.val_psnr_input)

    def load_best_weights(self) -> str:
        """Put the best weights into the network; which weights it holds (for the IsoNetModel)."""
        weights = "last"
        if self.model_dir is not None and (self.model_dir / WEIGHTS_BEST).is_file():
            self.net.load_weights(self.model_dir / WEIGHTS_BEST)
            weights = "best"
        elif self.best_weights is not None:
            for w, v in zip(self.net.weights, self.best_weights):
                w.assign(v)
            weights = "best"
        return weights if self.model_dir else "memory"


def _psnr_np(y, x) -> np.ndarray:
    mse = np.mean((y - x) ** 2, axis=(1, 2)) + 1e-10
    peak = np.maximum(y.max(axis=(1, 2)), 1e-6)
    return 20 * np.log10(peak) - 10 * np.log10(mse)

