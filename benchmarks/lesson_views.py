# ruff: noqa: E402  (the project root goes on sys.path before the project imports)
"""How long each shipped lesson's steps take to answer on this machine: for every step, the time to compute its
live view as the first student of a fresh server would wait for it (a view keeps nothing between steps: each loads
its model and digits), and the time to check the lesson (parse, links, computed answers). Later students get the
page's cached figure at once.

    python benchmarks/lesson_views.py [--json benchmarks/results/lesson_views.json]

Prints a table per lesson and the slowest step; #29 asks that each step answers in seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.run import cpu_name
from diffusion_core.lessons import check_lesson, shipped_lessons
from diffusion_core.lessons import views as lesson_views


def measure_lesson(path: Path) -> dict:
    start = time.perf_counter()
    checked = check_lesson(path)
    check_s = time.perf_counter() - start
    if not checked.ok:
        raise SystemExit(f"{path}: {checked.problems[0]}")
    steps = []
    for index, step in enumerate(checked.lesson.steps):
        seconds = 0.0
        if step.view is not None:
            start = time.perf_counter()
            lesson_views.render(step.view.name, step.view.params)
            seconds = time.perf_counter() - start
        steps.append({"step": index + 1, "title": step.title, "view": step.view.name if step.view else None,
                      "seconds": round(seconds, 3)})
    return {"lesson": path.stem, "title": checked.lesson.title, "check_seconds": round(check_s, 3), "steps": steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    lesson_views.render("schedules", {})  # imports (torch, plotly, the library) are not a step's cost
    results = [measure_lesson(path) for path in shipped_lessons()]
    machine = f"{cpu_name()} ({torch.get_num_threads()} threads)"
    print(f"Lesson views, first student on a fresh server — {machine}")
    for r in results:
        print(f"\n{r['lesson']}: {r['title']} (checked in {r['check_seconds']:.2f} s)")
        for s in r["steps"]:
            print(f"  step {s['step']}: {s['seconds']:6.2f} s  {s['view'] or '(no view)':<18} {s['title']}")
    slowest = max((s["seconds"], r["lesson"], s["step"]) for r in results for s in r["steps"])
    print(f"\nslowest step: {slowest[0]:.2f} s ({slowest[1]}, step {slowest[2]})")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "measured": time.strftime("%Y-%m-%d"),
                                         "lessons": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
