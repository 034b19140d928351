"""Two training rounds (``Config.rounds = 2``, ``--rounds 2``; ``auto`` by default): the second trains on the
acquired slices as the first restores them (``isonet_ij.refinement``). Quality is measured in
benchmarks/results/oracle.md."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import sigkill_when  # noqa: E402

from isonet_ij import load_model, pairs, refinement, restore  # noqa: E402
from isonet_ij.config import Config, read_config  # noqa: E402
from isonet_ij.training import train  # noqa: E402


def stack(seed=0):
    """An 8 x 40 x 40 stack: a smooth random volume blurred along z, every 3rd slice kept."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    iso = gaussian_filter(rng.random((24, 40, 40)), (3, 1, 1))[::3]
    return (100 + 1000 * (iso - iso.min()) / np.ptp(iso)).astype(np.float32)


def config(**kw):
    base = dict(factor=3, arch="isonet1", mode="split", psf="gaussian:1,2", patch_size=16, batch_size=4,
                epochs=4, steps_per_epoch=2, n_validation=4, seed=0)
    return Config(**{**base, **kw})


@pytest.fixture(scope="module")
def psf():
    from isonet_ij.psf import gaussian_psf

    return gaussian_psf(1.0, 2.0, shape=(13, 7, 7))


def test_two_rounds_train_half_the_epochs_each_and_the_model_restores(tmp_path, psf, monkeypatch):
    vol = stack()
    res = train(vol, config(rounds=2), psf=psf, model_dir=tmp_path / "m")
    assert [r["round"] for r in res.history] == [1, 1, 2, 2]
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]  # counted over the run
    from isonet_ij.checkpoints import run_log  # what napari's progress reads: the same rows from the files

    assert [(r["round"], r["epoch"]) for r in run_log(tmp_path / "m")] == [(1, 1), (1, 2), (2, 3), (2, 4)]
    assert [r["val_psnr"] for r in run_log(tmp_path / "m")] == pytest.approx([r["val_psnr"] for r in res.history])
    stored = read_config(tmp_path / "m")
    assert stored.rounds == 2 and stored.noise_model is not None and stored.normalization["low"] is not None
    log = (tmp_path / "m" / "training_log.csv").read_text().splitlines()
    assert len(log) == 3  # the model folder holds the second round's epochs
    out = restore(vol, res.model)
    assert out.shape == (22, 40, 40) and np.isfinite(out).all()
    m = tmp_path / "m"
    assert len((m / "round1" / "training_log.csv").read_text().splitlines()) == 3  # the first round's, kept
    # extended: the folder says two rounds (the config passed does not); the second round trains
    # on to the new total, the first is not touched
    first_log = (m / "round1" / "training_log.csv").read_bytes()
    more = train(vol, config(epochs=6), psf=psf, model_dir=m, resume=True)
    assert [r["round"] for r in more.history] == [1, 1, 2, 2, 2, 2] and more.stop_reason == "epochs"
    assert (m / "round1" / "training_log.csv").read_bytes() == first_log
    # --force replaces the whole run, first round included; a folder that says two rounds but
    # kept no first round (an older isonet-ij's) is refused with what to do
    train(vol, config(epochs=1), psf=psf, model_dir=m, force=True)
    assert not (m / "round1").exists()
    stored = json.loads((m / "config.json").read_text())
    (m / "config.json").write_text(json.dumps({**stored, "rounds": 2}))
    with pytest.raises(ValueError, match="first training round was not kept.*--force"):
        train(vol, config(epochs=2), psf=psf, model_dir=m, resume=True)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    import isonet_ij.training as training

    def no_network(*args, **kwargs):
        raise AssertionError("a network was built before the busy folder was refused")

    monkeypatch.setattr(training, "_build_network", no_network)
    with pytest.raises(FileExistsError, match="--force"):  # refused before the first round trains
        train(vol, config(rounds=2), psf=psf, model_dir=busy)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def test_the_second_round_learns_from_the_restored_acquired_slices(psf, monkeypatch):
    vol = stack(1)
    first = train(vol, config(epochs=1), psf=psf)
    slices = refinement.restored_acquired_slices(vol, first.model)
    np.testing.assert_array_equal(slices, restore(vol, first.model)[::3])
    # round 2's pairs are made from the slices round 1 restores, normalized like the volume (a
    # constant stack of slices gives constant targets, whatever the volume holds), with the
    # noise model of the acquired volume, not of the slices
    monkeypatch.setattr(refinement, "restored_acquired_slices", lambda v, model: np.full_like(v, 600.0))
    made = []
    make_pairs = pairs.make_pairs
    monkeypatch.setattr(pairs, "make_pairs", lambda volume, *a, **kw: made.append((volume, kw)) or
                        make_pairs(volume, *a, **kw))
    res = train(vol, config(rounds=2, epochs=2), psf=psf)
    assert len(made) == 2
    lo, hi = res.model.config.normalization["low"], res.model.config.normalization["high"]
    np.testing.assert_allclose(made[0][0], pairs.normalize(vol, lo, hi))
    np.testing.assert_allclose(made[1][0], (600.0 - lo) / (hi - lo), rtol=1e-6)
    noise = pairs.estimate_noise(pairs.normalize(vol, lo, hi))
    assert made[1][1]["noise"] == pytest.approx(noise) and made[0][1]["noise"] == pytest.approx(noise)
    assert res.model.config.noise_model == pytest.approx(list(noise))


@pytest.mark.parametrize("sxy, sz", [(1.0, 1.0), (1.0, 1.5), (1.0, 2.0), (1.0, 3.0), (2.0, 8.0), (1.5, 4.0)])
def test_extra_axial_sigma_of_gaussian_psfs_is_the_analytic_one(sxy, sz):
    from isonet_ij.psf import gaussian_psf

    h = gaussian_psf(sxy, sz, shape=(2 * int(4 * sz) + 1, 2 * int(4 * sxy) + 1, 2 * int(4 * sxy) + 1))
    assert refinement.extra_axial_sigma(h) == pytest.approx(np.sqrt(sz**2 - sxy**2), abs=0.05 * sz)


def test_auto_rounds_are_two_for_a_strong_axial_blur_only(tmp_path):
    from isonet_ij.psf import gaussian_psf

    strong, weak = gaussian_psf(1.0, 3.0, shape=(25, 9, 9)), gaussian_psf(1.0, 1.5, shape=(13, 9, 9))
    assert config().rounds == "auto"  # the default
    assert refinement.rounds_for(config(), strong) == 2 and refinement.rounds_for(config(), weak) == 1
    assert refinement.rounds_for(config(rounds=1), strong) == 1 and refinement.rounds_for(config(rounds=2), weak) == 2
    assert refinement.rounds_for(config(epochs=1), strong) == 1  # one epoch cannot be split
    assert refinement.rounds_for(config(), strong, 30.0) == 1 and refinement.rounds_for(config(), strong, 60.0) == 2
    assert refinement.rounds_for(config(mode="none", psf=""), None) == 1
    # training stores the number it chose, and trains that many rounds
    vol = stack()
    two = train(vol, config(epochs=2), psf=strong, model_dir=tmp_path / "strong")
    assert [r["round"] for r in two.history] == [1, 2] and read_config(tmp_path / "strong").rounds == 2
    assert (tmp_path / "strong" / "round1" / "weights_best.weights.h5").is_file()
    one = train(vol, config(epochs=2), psf=weak, model_dir=tmp_path / "weak")
    assert "round" not in one.history[0] and read_config(tmp_path / "weak").rounds == 1
    assert not (tmp_path / "weak" / "round1").exists()


def test_a_two_round_run_refused_in_its_first_round_leaves_no_folder(tmp_path, psf):
    big = config(rounds=2, patch_size=64)  # 40 x 40 slices: no 64 x 64 patch fits
    with pytest.raises(ValueError, match="patch"):
        train(stack(), big, psf=psf, model_dir=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "mine"  # a folder that was there: kept, with what the user had in it
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="patch"):
        train(stack(), big, psf=psf, model_dir=kept, force=True)
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_rounds_must_be_auto_one_or_two_in_every_interface(tmp_path, capsys):
    from isonet_ij import volume_io
    from isonet_ij.cli import main

    assert any("rounds" in m for m in config(rounds=3).invalid_fields())
    volume_io.write_volume(tmp_path / "in.tif", stack(), voxel_size=(0.3, 0.1, 0.1))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(tmp_path / "in.tif"), "--psf", "gaussian:1,2", "--rounds", "3", "-o", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--rounds" in err and "auto" in err
    rc = main(["train", str(tmp_path / "in.tif"), "--psf", "gaussian:1,2", "--rounds", "2", "--arch", "isonet1",
               "--patch", "16", "--batch", "4", "--epochs", "2", "--steps-per-epoch", "1", "-o", str(tmp_path / "m")])
    assert rc == 0 and json.loads(capsys.readouterr().out)["rounds"] == 2  # the summary says how many
    assert json.loads((tmp_path / "m" / "config.json").read_text())["rounds"] == 2


def _kill_when_stalled(args, stall_in: str, epoch: int, state_file):
    """Run ``isonet <args>`` in another process that stalls once ``stall_in`` (a folder name) has
    checkpointed ``epoch``, and SIGKILL it there: a real kill, whatever the machine's speed."""
    import subprocess
    import sys

    code = (
        "import time\n"
        "from isonet_ij import checkpoints\n"
        "from isonet_ij.cli import main\n"
        "write = checkpoints.write_checkpoint\n"
        "def stalling(model_dir, net, opt, history, state, **kw):\n"
        "    write(model_dir, net, opt, history, state, **kw)\n"
        f"    if model_dir.name == {stall_in!r} and state['epoch'] >= {epoch}:\n"
        "        time.sleep(3600)\n"
        "checkpoints.write_checkpoint = stalling\n"
        f"main({[str(a) for a in args]!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    sigkill_when(proc, state_file.is_file, settle=1.0)  # the epoch's log and curve follow its state file


def test_a_two_round_run_killed_in_either_round_resumes_where_it_stopped(tmp_path):
    from isonet_ij import volume_io
    from isonet_ij.cli import main
    from isonet_ij.imagej.commands import training_progress

    tif, m = tmp_path / "in.tif", tmp_path / "m"
    volume_io.write_volume(tif, stack(), voxel_size=(0.3, 0.1, 0.1))
    new_run = ["train", tif, "--psf", "gaussian:1,2", "--rounds", "2", "--arch", "isonet1", "--patch", "16",
               "--batch", "4", "--epochs", "4", "--steps-per-epoch", "2", "-o", m]
    resume = ["train", tif, "-o", m, "--resume", "--epochs", "4"]
    first_state, second_state = m / "round1" / "train_state.json", m / "train_state.json"
    _kill_when_stalled(new_run, "round1", 1, first_state)  # killed in round 1, after its epoch 1
    assert json.loads(first_state.read_text())["epoch"] == 1 and not second_state.exists()
    assert training_progress(m, 4) == pytest.approx(0.25)  # what ImageJ's progress bar shows
    first_rows = (m / "round1" / "training_log.csv").read_text().splitlines()
    _kill_when_stalled(resume, "m", 1, second_state)  # resumed, then killed in round 2, after its epoch 1
    assert json.loads(first_state.read_text())["epoch"] == 2
    assert training_progress(m, 4) == pytest.approx(0.75)  # both rounds count
    round1_log = (m / "round1" / "training_log.csv").read_text().splitlines()
    assert round1_log[:2] == first_rows  # round 1 went on from its checkpoint, not from the start
    second_rows = (m / "training_log.csv").read_text().splitlines()
    assert len(second_rows) == 2
    assert main([str(a) for a in resume]) == 0  # resumed again: round 2 goes on, round 1 is not retrained
    assert (m / "round1" / "training_log.csv").read_text().splitlines() == round1_log
    final = (m / "training_log.csv").read_text().splitlines()
    assert len(final) == 3 and final[:2] == second_rows
    assert json.loads((m / "config.json").read_text())["rounds"] == 2
    out = restore(stack(), load_model(m))
    assert out.shape == (22, 40, 40) and np.isfinite(out).all()


def test_a_budget_spent_before_the_second_round_leaves_the_first_rounds_model(tmp_path, psf, monkeypatch, caplog):
    """Round 2 gets what the budget has left after round 1 and the restoration of the volume; when that
    is nothing, the model folder holds round 1's model (and says why), not a folder without weights."""
    import time

    vol, t0, budget = stack(), time.monotonic(), 12.0
    restored = refinement.restored_acquired_slices

    def slow_restoration(volume, model):  # a volume that takes the rest of the budget to restore
        out = restored(volume, model)
        time.sleep(max(0.0, t0 + budget + 0.5 - time.monotonic()))
        return out

    monkeypatch.setattr(refinement, "restored_acquired_slices", slow_restoration)
    res = train(vol, config(rounds=2, epochs=2), psf=psf, model_dir=tmp_path / "m", time_budget=budget)
    assert [r["round"] for r in res.history] == [1] and res.stop_reason == "time budget"
    assert "before the second training round could take a step" in caplog.text
    kept = load_model(tmp_path / "m")
    x = np.random.default_rng(0).random((1, 16, 16, 1)).astype(np.float32)
    first = load_model(tmp_path / "m" / "round1")
    np.testing.assert_allclose(kept.net.predict_batch(x), first.net.predict_batch(x), atol=1e-6)
    np.testing.assert_allclose(res.model.net.predict_batch(x), first.net.predict_batch(x), atol=1e-6)
