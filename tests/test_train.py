"""Training loop, model directory, checkpoints, resume, time budget, config validation."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from isonet_ij import config as cfgmod  # noqa: E402
from isonet_ij.config import Config, ModelDirError  # noqa: E402
from isonet_ij.model import load_model  # noqa: E402
from isonet_ij.training import parse_duration, train  # noqa: E402


def tiny_volume(z=6, y=32, x=32, seed=0):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    v = gaussian_filter(rng.random((z * 3, y, x)), 2)[::3]
    return (100 + 1000 * (v - v.min()) / np.ptp(v)).astype(np.float32)


def tiny_config(**kw):
    base = dict(factor=2, arch="isonet1", mode="none", patch_size=16, batch_size=4, epochs=2,
                steps_per_epoch=3, n_validation=4, seed=0)
    base.update(kw)
    return Config(**base)


def test_training_writes_a_complete_model_dir_and_resume_continues(tmp_path):
    vol = tiny_volume()
    d = tmp_path / "model"
    res = train(vol, tiny_config(), model_dir=d)
    names = {p.name for p in d.iterdir()}
    assert {"config.json", "weights_best.weights.h5", "weights_last.weights.h5", "training_log.csv",
            "training_curve.png", "train_state.json", "optimizer_last.npz"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left
    assert [r["epoch"] for r in res.history] == [1, 2] and res.stop_reason == "epochs"
    assert res.train_step == "plain"  # IsoNet-1: XLA is never tried (9x9 convolution)
    cfg = cfgmod.read_config(d)
    lo, hi = np.percentile(vol, [1, 99.8])
    assert cfg.normalization["low"] == pytest.approx(lo) and cfg.normalization["high"] == pytest.approx(hi)
    assert cfg.versions["isonet_ij"] and cfg.format_version == cfgmod.FORMAT_VERSION
    tm = load_model(d)
    x = np.random.default_rng(0).random((1, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(tm.net.predict_batch(x), res.model.net.predict_batch(x), atol=1e-6)

    res2 = train(vol, tiny_config(epochs=3), model_dir=d, resume=True)
    assert [r["epoch"] for r in res2.history] == [1, 2, 3]
    log = (d / "training_log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,steps,loss,val_loss,val_psnr") and len(log) == 4
    assert json.loads((d / "train_state.json").read_text())["epoch"] == 3


def test_non_empty_model_dir_needs_resume_or_force(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_volume(), tiny_config(), model_dir=d)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_volume(), tiny_config(), model_dir=d, resume=True)


def test_time_budget_stops_training_and_keeps_the_best_weights(tmp_path):
    d = tmp_path / "m"
    res = train(tiny_volume(), tiny_config(epochs=100_000, steps_per_epoch=5), model_dir=d,
                time_budget=6.0)
    assert res.stop_reason == "time budget"
    # the budget stopped a 100000-epoch run; the bound only rules out "never stopped" (a
    # loaded machine may overrun the 6 s by an epoch or a slow checkpoint, not by minutes)
    assert res.history and len(res.history) < 100_000 and res.history[-1]["elapsed_s"] < 6.0 + 120.0
    assert (d / "weights_best.weights.h5").is_file()


def test_checkpoint_write_failure_leaves_the_previous_file_intact(tmp_path):
    from isonet_ij.checkpoints import save_weights_atomic

    class Boom:
        def save_weights(self, path):
            with open(path, "wb") as fh:
                fh.write(b"partial")
            raise RuntimeError("killed mid-write")

    target = tmp_path / "weights_last.weights.h5"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        save_weights_atomic(Boom(), target)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["weights_last.weights.h5"]


def spheres(shape, n=30, seed=0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[tuple(slice(0, s) for s in shape)]
    v = np.zeros(shape)
    for _ in range(n):
        c = rng.random(3) * shape
        r = rng.uniform(2.5, 5)
        v[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r] = rng.uniform(0.5, 1)
    return v


def test_training_improves_over_the_input_on_a_learnable_degradation():
    # mode none (SRCNN pairs): sharp spheres subsampled by 3; 120 steps of IsoNet-2
    from scipy.ndimage import gaussian_filter

    vol = (100 + 1000 * gaussian_filter(spheres((24, 40, 40)), 0.7)[::3]).astype(np.float32)
    res = train(vol, tiny_config(arch="isonet2", factor=3, epochs=6, steps_per_epoch=20, patch_size=24))
    h = res.history
    assert max(r["val_psnr"] for r in h) > h[0]["val_psnr_input"] + 0.3


def test_cosine_schedule_decays_to_one_percent_and_resume_continues_the_decay(tmp_path):
    from isonet_ij.training import lr_at

    c = tiny_config(learning_rate=1e-3, lr_schedule="cosine")
    assert [lr_at(c, p) for p in (0, 0.5, 1, 2)] == pytest.approx([1e-3, 0.505e-3, 1e-5, 1e-5])
    assert lr_at(tiny_config(), 0.9) == pytest.approx(1e-3)  # constant (default)
    d = tmp_path / "m"
    h1 = train(tiny_volume(), c.replace(epochs=2), model_dir=d).history
    h2 = train(tiny_volume(), c.replace(epochs=4), model_dir=d, resume=True).history
    # a row logs its last step's lr, at progress (steps before it) / (epochs x steps_per_epoch);
    # the resumed run spreads the schedule over its 4 epochs from where the first stopped
    expected = [lr_at(c, 2 / 6), lr_at(c, 5 / 6), lr_at(c, 8 / 12), lr_at(c, 11 / 12)]
    assert [r["lr"] for r in h1] == pytest.approx(expected[:2], rel=1e-5)
    assert [r["lr"] for r in h2] == pytest.approx(expected, rel=1e-5)


def test_psnr_loss_is_eq3_averaged_over_patches():
    import tensorflow as tf

    from isonet_ij.train_steps import psnr_loss

    rng = np.random.default_rng(0)
    y = rng.random((3, 8, 8, 1)).astype(np.float32)
    p = y + 0.1 * rng.standard_normal(y.shape).astype(np.float32)
    ref = -np.mean([20 * math.log10(y[i].max()) - 10 * math.log10(np.mean((y[i] - p[i]) ** 2))
                    for i in range(3)])
    assert float(psnr_loss(tf.constant(y), tf.constant(p))) == pytest.approx(ref, rel=1e-4)


def test_config_validate_names_every_bad_field():
    c = Config(factor=0.5, arch="unet", mode="split", psf="", patch_size=30, learning_rate=-1,
               lr_schedule="step")
    with pytest.raises(ValueError) as exc:
        c.validate()
    msg = str(exc.value)
    for name in ("`factor`", "`arch`", "`psf`", "`patch_size`", "`learning_rate`", "`lr_schedule`"):
        assert name in msg


def test_config_rejects_unknown_keys_and_other_format_versions():
    d = tiny_config().to_dict()
    with pytest.raises(ModelDirError, match="unknown config keys"):
        Config.from_dict(dict(d, colour="red"))
    with pytest.raises(ModelDirError, match="format version 0"):
        Config.from_dict(dict(d, format_version=0))
    assert Config.from_dict(d) == tiny_config()


def test_parse_duration():
    assert parse_duration("15m") == 900
    assert parse_duration("1.5h") == 5400
    assert parse_duration("2m30s") == 150
    assert parse_duration(90) == 90
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


def test_faster_train_step_times_the_candidates_and_keeps_the_faster():
    import time

    from isonet_ij.train_steps import faster_train_step

    calls = {"slow": 0, "fast": 0}

    def step_of(name, seconds):
        def step(x, y):
            calls[name] += 1
            time.sleep(seconds)
            return 0.0
        return step

    cands = {"slow": step_of("slow", 0.03), "fast": step_of("fast", 0.0)}
    name, step = faster_train_step(cands, None, None, repeats=3)
    assert name == "fast" and step is cands["fast"]
    assert calls == {"slow": 4, "fast": 4}  # one untimed trace call + 3 timed, each


def test_training_step_for_offers_xla_only_to_isonet2_and_both_steps_train():
    import keras

    from isonet_ij.nets import build_model
    from isonet_ij.train_steps import make_steps, training_step_for

    x = np.random.default_rng(0).random((4, 16, 16, 1)).astype(np.float32)
    net = build_model("isonet1", seed=0)
    kind, _, _ = training_step_for("isonet1", net, keras.optimizers.Adam(1e-3), "mse", 4, 16, x, x)
    assert kind == "plain"
    for jit in (False, True):  # whichever is picked, it must be a working Adam update
        net = build_model("isonet2", seed=0)
        step, _ = make_steps(net, keras.optimizers.Adam(1e-2), "mse", 4, 16, jit_compile=jit)
        losses = [float(step(x, x)) for _ in range(15)]
        assert losses[-1] < losses[0]
    net = build_model("isonet2", seed=0)
    kind, _, _ = training_step_for("isonet2", net, keras.optimizers.Adam(1e-3), "mse", 4, 16, x, x)
    assert kind in ("plain", "xla")


def test_timing_the_training_steps_leaves_weights_and_optimizer_untouched():
    import keras

    from isonet_ij.nets import build_model
    from isonet_ij.train_steps import training_step_for

    x = np.random.default_rng(0).random((4, 16, 16, 1)).astype(np.float32)
    net = build_model("isonet2", seed=0)
    opt = keras.optimizers.Adam(1e-2)
    before = [w.copy() for w in net.get_weights()]
    _, step, _ = training_step_for("isonet2", net, opt, "mse", 4, 16, x, x)
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(opt.iterations.numpy()) == 0
    float(step(x, x))  # and the kept step still trains from there
    assert int(opt.iterations.numpy()) == 1
    assert any(np.any(a != b) for a, b in zip(before, net.get_weights()))
