"""Figures of the PSF estimates (PNG). matplotlib is imported lazily, and no backend is
switched: the figures are drawn on their own Agg canvas, outside pyplot."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_bead_psf", "plot_spectra"]


def _agg_figure(figsize):
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path) -> None:
    """Lay out ``fig`` and write it atomically to ``path`` as an 80 dpi PNG."""
    from isonet_ij.volume_io import atomic_path

    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=80)


def plot_bead_psf(psf: np.ndarray, report: dict, path) -> None:
    """PNG: xy and xz central slices of ``psf`` and its z / x profiles with the Gaussian fit.

    Parameters
    ----------
    psf : (Z, Y, X) ndarray
        Averaged bead PSF (:func:`isonet_ij.psf.psf_from_beads`).
    report : dict
        Its report (``voxel_size`` in um, ``gaussian_sigma_voxels``, ``fwhm_um``).
    path : str or Path
        Output PNG (overwritten).
    """
    cz, cy, cx = (s // 2 for s in psf.shape)
    dz, dy, dx = report["voxel_size"]
    sz, sy, sx = report["gaussian_sigma_voxels"]
    fig = _agg_figure((14, 3.5))
    ax = fig.subplots(1, 4)
    ax[0].imshow(psf[cz], cmap="magma", aspect=dy / dx)
    ax[0].set_title("xy (central slice)")
    ax[1].imshow(psf[:, cy, :], cmap="magma", aspect=dz / dx)
    ax[1].set_title("xz (central slice)")
    for k, (prof, s, d, name) in enumerate(
        ((psf[cz, cy, :], sx, dx, "x"), (psf[:, cy, cx], sz, dz, "z"))
    ):
        t = (np.arange(prof.size) - prof.size // 2) * d
        tt = np.linspace(t[0], t[-1], 400)
        ax[2 + k].plot(t, prof / prof.max(), "o", ms=3, label="average")
        ax[2 + k].plot(tt, np.exp(-0.5 * (tt / (s * d)) ** 2), "-", label=f"gauss sigma {s * d:.3g} um")
        ax[2 + k].set_title(f"{name} profile, FWHM {report['fwhm_um'][2 if name == 'x' else 0]:.3g} um")
        ax[2 + k].set_xlabel("um")
        ax[2 + k].legend(fontsize=7)
    _save_png(fig, path)


def plot_spectra(report: dict, path) -> None:
    """PNG of the axial, lateral and fitted model power spectra of an axial-blur estimate.

    Parameters
    ----------
    report : dict
        From :func:`isonet_ij.psf.estimate_axial_blur` (``frequencies``, the spectra,
        ``sigma_z``, ``band``).
    path : str or Path
        Output PNG (overwritten).
    """
    k = np.asarray(report["frequencies"])
    fig = _agg_figure((6, 4))
    ax = fig.subplots()
    sel = k > 0
    ax.semilogy(k[sel], np.maximum(report["axial_spectrum"][sel], 1e-30), label="axial (shell-normalised)")
    ax.semilogy(k[sel], report["lateral_spectrum"][sel], label="no extra blur")
    ax.semilogy(k[sel], np.maximum(report["model_spectrum"][sel], 1e-30), "--",
                label=f"fit, sigma_z {report['sigma_z']:.3g}")
    ax.axvspan(*report["band"], color="0.9", label="fit band")
    ax.set_xlabel("k_z, cycles / voxel (isotropic grid)")
    ax.set_ylabel("power")
    ax.legend(fontsize=8)
    _save_png(fig, path)
