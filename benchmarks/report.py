"""The benchmark's one table: rows (reference vs diffusion_core), the targets with pass/fail, and the
JSON files it writes."""

from __future__ import annotations

from pathlib import Path

from diffusion_core.io.files import atomic_write_json

HIGHER_IS_BETTER = {"images/s", "GFLOP/s"}  # speed-up = fast/reference for these, reference/fast for times
QUALITY_FILE = "quality_vs_speed.json"
LATEST_FILE = "latest.json"
ROW_FIELDS = ("id", "group", "name", "unit", "reference", "fast", "speedup", "note")
TARGET_FIELDS = ("id", "target", "required", "measured", "pass", "note")
QUALITY_FIELDS = ("sampler", "steps", "fid", "seconds")

# the measurements every run reports (a skipped one keeps its row, with None and the reason in "note")
REQUIRED_ROWS = (
    "train.fp32_vs_auto", "train.bf16", "train.loss", "train.gflops", "ceiling.fp32", "ceiling.bf16",
    "sample16.ancestral.reference", "step.b1", "step.b16", "step.b64",
    "quality.scale", "app.health", "app.first_page", "memory.self", "memory.app",
)
TRAIN_TARGET = 1.6  # × the reference's images/s
SAMPLE_TARGET = 20.0  # the app's 16 samples in ≤ 1/20 of the reference sampler's time
STEP_TARGET_MS = 20.0  # one reverse step of 16 images
FID_PARITY = 0.10  # the fast sampler's FID within 10% of 1000-step ancestral


def row(id: str, group: str, name: str, unit: str, reference: float | None = None, fast: float | None = None,
        note: str = "") -> dict:
    """One table row; the speed-up is how many times faster (or higher) diffusion_core is."""
    speedup = None
    if reference is not None and fast is not None and reference > 0 and fast > 0 and unit not in ("loss", "FID"):
        speedup = fast / reference if unit in HIGHER_IS_BETTER else reference / fast
    return {"id": id, "group": group, "name": name, "unit": unit, "reference": reference, "fast": fast,
            "speedup": speedup, "note": note}


def _target(id: str, target: str, required: str, measured: str | None, ok: bool | None) -> dict:
    return {"id": id, "target": target, "required": required, "measured": measured, "pass": ok, "note": ""}


def evaluate_targets(train_speedup: float | None, sample_speedup: float | None, step16_ms: float | None,
                     fast_fid: float | None = None, ancestral_fid: float | None = None,
                     sampler_label: str = "the app's sampler") -> list[dict]:
    """Pass/fail of the issue's targets against the same run's reference (None: not measured)."""
    parity = None if fast_fid is None or ancestral_fid is None else fast_fid <= (1 + FID_PARITY) * ancestral_fid
    return [
        _target("train", "training images/s, report CNN, precision auto", f"≥ {TRAIN_TARGET:g}× reference",
                None if train_speedup is None else f"{train_speedup:.2f}×",
                None if train_speedup is None else train_speedup >= TRAIN_TARGET),
        _target("sample16", f"16 samples from the default model ({sampler_label})",
                f"≤ 1/{SAMPLE_TARGET:g} of reference sampler time",
                None if sample_speedup is None else f"1/{sample_speedup:.1f}",
                None if sample_speedup is None else sample_speedup >= SAMPLE_TARGET),
        _target("sample16_fid", f"  … at quality parity: FID of {sampler_label} vs 1000-step ancestral",
                f"within {FID_PARITY:.0%}",
                None if parity is None else f"{fast_fid:.1f} vs {ancestral_fid:.1f}", parity),
        _target("step16", "one reverse step of 16 images (step-through page)", f"≤ {STEP_TARGET_MS:g} ms",
                None if step16_ms is None else f"{step16_ms:.1f} ms",
                None if step16_ms is None else step16_ms <= STEP_TARGET_MS),
    ]


def format_value(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "images/s":
        return f"{v:,.0f} img/s"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"
    if unit == "GFLOP/s":
        return f"{v:,.1f} GFLOP/s"
    if unit == "MiB":
        return f"{v:,.0f} MiB"
    if unit == "FID":
        return f"FID {v:.1f}"
    if unit == "loss":
        return f"loss {v:.4f}"
    return f"{v:g} {unit}"


def format_table(meta: dict, rows: list[dict], targets: list[dict]) -> str:
    """The one printed table: a header of run facts, every measurement, then the targets."""
    head = ["group", "measurement", "reference", "diffusion_core", "speed-up", "note"]
    body = [[r["group"], r["name"], format_value(r["reference"], r["unit"]), format_value(r["fast"], r["unit"]),
             "" if r["speedup"] is None else f"{r['speedup']:.2f}×", r["note"]] for r in rows]
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    body += [["TARGET", t["target"], t["required"], t["measured"] or "–", verdict[t["pass"]], t["note"]]
             for t in targets]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head) - 1)]

    def line(cells: list[str]) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(cells[:-1], widths, strict=True)) + " | " + cells[-1]

    rule = "-+-".join("-" * w for w in widths) + "-+-" + "-" * 8
    out = [f"{k}: {v}" for k, v in meta.items() if k != "notes"]
    out += ["", line(head), rule]
    group = None
    for cells in body:
        if group is not None and cells[0] != group:
            out.append(rule)
        group = cells[0]
        out.append(line(cells).rstrip())
    out += [f"note: {n}" for n in meta.get("notes", [])]
    return "\n".join(out)


def save_result(path: Path, result: dict) -> None:
    """Write one benchmark's JSON result (its folder made first) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)
    print(f"wrote {path}")


def write_results(out_dir: Path, meta: dict, rows: list[dict], targets: list[dict], quality: list[dict]) -> None:
    """latest.json (everything) and quality_vs_speed.json (the rows the Evaluate page shows, with what they
    measured: the model, the FID reference, when and on which machine)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / LATEST_FILE, {"meta": meta, "rows": rows, "targets": targets, "quality": quality})
    atomic_write_json(out_dir / QUALITY_FILE, quality_file(meta, quality))


def quality_file(meta: dict, quality: list[dict]) -> dict:
    """quality_vs_speed.json's content: {"model", "reference", "measured", "machine", "rows"}."""
    reference = next((n.split(": ", 1)[1] for n in meta.get("notes", []) if n.startswith("FID reference: ")),
                     "MNIST test split")
    return {"model": meta.get("model", "?"), "reference": reference, "measured": meta.get("run", "?"),
            "machine": meta.get("machine", "?"), "rows": quality}
