"""The speedup chart of `fastcnn bench --plot`: one horizontal bar per case and peer.

Drawn on a bare `matplotlib.figure.Figure` and written with its own `savefig`, outside pyplot:
the chart chooses no backend and leaves the caller's matplotlib settings as they were.
"""
from __future__ import annotations

from .._files import write_figure

__all__ = ["plot"]

_LABELS = {"reference": "vs NumPy reference", "torch": "vs PyTorch"}


def plot(report: dict, path: str) -> None:
    """A horizontal bar chart of fastcnn's speedup against each peer, one group per case,
    saved as a PNG at path (needs matplotlib)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    records = report["cases"]
    peers = [p for p in ("reference", "torch") if any(r[f"speedup_vs_{p}"] for r in records)]
    fig = Figure(figsize=(9, 1.5 + 0.32 * len(records) * max(len(peers), 1)))
    ax = fig.subplots()
    height = 0.8 / max(len(peers), 1)
    for i, peer in enumerate(peers):
        ys = [j + i * height for j in range(len(records))]
        xs = [r[f"speedup_vs_{peer}"] or 0 for r in records]
        ax.barh(ys, xs, height=height, label=_LABELS[peer])
    ax.set_yticks([j + height * (len(peers) - 1) / 2 for j in range(len(records))])
    ax.set_yticklabels([r["name"] for r in records], fontsize=8)
    ax.set_ylim(len(records) - 0.2, -0.6)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speedup of fastcnn (peer time / fastcnn time; > 1: fastcnn faster)")
    m = report["machine"]
    ax.set_title(f"fastcnn {m['fastcnn']} on {m['cpu_model']}, {m['threads']} threads",
                 fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    write_figure(fig, path, dpi=120)
