"""Plots of the benchmarks (PNG and SVG, by matplotlib: `pip install -e '.[plots]'`).

Without matplotlib the benchmarks still run and print their tables;
`available()` says why there are no plots (one line, no traceback).  A
figure a benchmark skipped on this host (None) is left out of its plot."""
from __future__ import annotations

import os

FORMATS = ("png", "svg")


def available() -> str | None:
    """None when plots can be drawn, else why not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[plots]'): no plots written"
    return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "srl2-testbed", "font.size": 9})  # stable SVG ids from run to run
    return plt


def _save(fig, out_dir: str, stem: str, note: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    fig.text(0.01, 0.005, note, fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths = []
    for fmt in FORMATS:
        path = os.path.join(out_dir, f"{stem}.{fmt}")
        fig.savefig(path, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths


def frames_per_second(rows: list[tuple[int, int, float, float, float | None]], out_dir: str,
                      note: str) -> list[str]:
    """rows: (frame size, SIDs, srl2_ref fps, ref on the wire fps, kernel l2encap fps or None where the
    host could not measure it), as bench/ref_pps.py measures them.  Left: frames/s against frame size,
    one line per datapath and SID count; right: frames/s against the number of SIDs, one line per
    datapath and frame size."""
    plt = _pyplot()
    fig, (by_size, by_sids) = plt.subplots(1, 2, figsize=(10, 4.2))
    sizes = sorted({r[0] for r in rows})
    sids = sorted({r[1] for r in rows})
    styles = {"srl2_ref": ("tab:blue", 2), "kernel l2encap": ("tab:orange", 4)}
    for name, (color, col) in styles.items():
        table = {(r[0], r[1]): r for r in rows if r[col] is not None}  # a skipped figure: no point
        for i, n in enumerate(sids):
            xs = [s for s in sizes if (s, n) in table]
            if not xs:
                continue
            by_size.plot(xs, [table[s, n][col] / 1e3 for s in xs], marker="o", color=color,
                         linestyle=["-", "--", ":", "-."][i % 4], label=f"{name}, {n} SID{'s' if n > 1 else ''}")
        for i, s in enumerate(sizes):
            xs = [n for n in sids if (s, n) in table]
            if not xs:
                continue
            by_sids.plot(xs, [table[s, n][col] / 1e3 for n in xs], marker="o", color=color,
                         linestyle=["-", "--", ":", "-."][i % 4], label=f"{name}, {s} B frames")
    by_size.set(xlabel="inner frame size (bytes)", ylabel="frames/s (thousands)",
                title="encapsulated frames/s against frame size")
    by_sids.set(xlabel="SIDs in the segment list", ylabel="frames/s (thousands)",
                title="encapsulated frames/s against the number of SIDs")
    by_sids.set_xticks(sids)
    for ax in (by_size, by_sids):
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    paths = _save(fig, out_dir, "ref_pps", note)
    plt.close(fig)
    return paths


def bring_up_time(results: dict[str, dict[int, float]], out_dir: str, note: str) -> list[str]:
    """results: method ("engine", "cli", "script") -> lab size (nodes) -> seconds (up + down)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    labels = {"engine": "engine (Lab.up + down, one process)", "cli": "CLI (testbed up + testbed down)",
              "script": "rendered iproute2 script"}
    for method, marker in (("engine", "o"), ("cli", "s"), ("script", "^")):
        points = results.get(method)
        if points:
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], marker=marker, label=labels[method])
    ax.set(xlabel="lab size (nodes: a chain of routers, one host each)", ylabel="up + down (seconds)",
           title="bring-up and teardown time against lab size")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    paths = _save(fig, out_dir, "bring_up", note)
    plt.close(fig)
    return paths
