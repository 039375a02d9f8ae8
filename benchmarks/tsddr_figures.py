"""Learning curves of TS-DDR / TS-LDR on case3 from benchmarks/results/tsddr_hydro.json (benchmarks/tsddr_hydro.py):
dev cost against training seconds, with the SDP optimum. Writes docs/figures/tsddr_case3_curves.png."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent


def main() -> None:
    data = json.loads((ROOT / "results" / "tsddr_hydro.json").read_text())
    c = data["case3"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, label in (("tsddr", "TS-DDR (MLP)"), ("tsddr_lstm", "TS-DDR (LSTM)"), ("tsldr", "TS-LDR (linear)")):
        if name not in c:
            continue
        curve = c[name]["curve"]
        ax.plot(
            [e["seconds"] for e in curve],
            [e["dev_cost"] for e in curve],
            marker="o",
            ms=3,
            label=f"{label}: test {c[name]['gap_to_sdp_policy_pct']:+.2f}% vs SDP policy",
        )
    ax.axhline(c["sdp_optimum"], color="k", ls="--", lw=1, label=f"SDP optimum {c['sdp_optimum']:.0f}")
    ax.set_ylim(c["sdp_optimum"] * 0.98, c["sdp_optimum"] * 1.15)
    ax.set_xlabel("training seconds (one CPU thread, shared machine)")
    ax.set_ylabel("dev cost (256 scenarios)")
    ax.set_title("hydro/case3: TS-DDR learning curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = ROOT.parent / "docs" / "figures" / "tsddr_case3_curves.png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
