# ruff: noqa: E402  (the project root goes on sys.path before the project imports)
"""Load test: a class on one server. N simulated students press Generate on Home at the same moment, then
open Reverse diffusion, run it and step Forward through the trajectory. Prints per action the p50/p95 time
to result, the server's peak memory and the errors (there must be none), next to one student alone on the
same server in the same run.

    python benchmarks/load_test.py [--students 10] [--steps 3] [--compare] [--same-seed] [--workers W --threads T]
                                   [--servers 2] [--ray] [--json OUT]

Each student is a real Streamlit session over the app's websocket (the protocol the browser speaks: a
BackMsg asks for a rerun with the widget states, ForwardMsgs stream the page back), so the server does all
of its real work and the students' own rendering, which happens on their laptops, costs this machine
nothing. "Time to result": from the click being sent to the end of the rerun that shows the result (the
grid's image / the trajectory's images); a run with an error box or a traceback counts as an error.

Students use distinct seeds (student i: seed 1000·i), so no two ask for the same images and the cache cannot
flatter the figures; --same-seed puts them all on seed 0 (a class on the defaults). --compare runs the same class
a second time, in the same run, on a server that computes every request on its own (DIFFUSION_LAB_MAX_BATCH=1,
no cache: the queue before #30), and prints both, with the class's Generate throughput in images per second.
--ray runs it once more with a Ray head started on this machine and the servers sending their merged Generate
batches to its Serve deployment (services/ray_serve.py); --servers N spreads every scenario's class over N app
servers (student i on server i mod N), as a load balancer with sticky sessions would.

--workers/--threads set DIFFUSION_LAB_WORKERS / DIFFUSION_LAB_TORCH_THREADS for the server; e.g.
`--workers 10 --threads 2` lets all ten jobs compute at once on two torch threads each, as before the
queue. The targets (issue #30, 2 cores, the default model, distinct seeds): 10 students — Generate p95 ≤ 6 s,
Run reverse diffusion p95 ≤ 10 s; 30 students — ≤ 15 s and ≤ 25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/load_test.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from benchmarks.app_start import stop_server
from benchmarks.measure import process_peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
# issue #30's p95 targets on 2 cores, distinct seeds
TARGETS_P95_S = {10: {"Generate": 6.0, "Run reverse diffusion": 10.0},
                 30: {"Generate": 15.0, "Run reverse diffusion": 25.0}}
GRID_IMAGES = 16  # Home's Generate: a 4×4 grid
ACTION_TIMEOUT_S = 300.0


@dataclass
class RunResult:
    """What one script run sent back."""

    seconds: float
    status: int  # ForwardMsg.ScriptFinishedStatus
    kinds: dict[str, int] = field(default_factory=dict)  # element type → count
    errors: list[str] = field(default_factory=list)  # error boxes and tracebacks

    @property
    def ok(self) -> bool:
        return self.status == ForwardMsg.FINISHED_SUCCESSFULLY and not self.errors


class StreamlitSession:
    """One browser tab's worth of Streamlit protocol: connect, rerun a page, click a button."""

    def __init__(self, url: str):
        self.url = url
        self.ws = None
        self.widget_ids: dict[str, str] = {}  # user key → widget id, from the elements seen
        self.page_name, self.query = "", ""

    async def connect(self) -> None:
        ws_url = self.url.replace("http://", "ws://", 1) + "/_stcore/stream"
        self.ws = await websockets.connect(ws_url, subprotocols=["streamlit"], origin=self.url, max_size=None,
                                           open_timeout=60, ping_interval=None)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def open_page(self, page_name: str = "", query: str = "") -> RunResult:
        """Load a page ('' = Home; else the URL path, e.g. 'Reverse_diffusion'), with an address's query string
        (e.g. 'home_seed=3': the page's settings, as a shared link carries them)."""
        self.page_name, self.query = page_name, query
        return await self._rerun(None)

    async def click(self, key: str) -> RunResult:
        """Press the button with this user key (as seen on the current page)."""
        if key not in self.widget_ids:
            raise KeyError(f"no button {key!r} on this page; widgets seen: {sorted(self.widget_ids)}")
        return await self._rerun(self.widget_ids[key])

    async def _rerun(self, trigger_id: str | None) -> RunResult:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_name = self.page_name
        if trigger_id is not None:
            widget = state.widget_states.widgets.add()
            widget.id = trigger_id
            widget.trigger_value = True
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        result = RunResult(seconds=0.0, status=-1)
        started = False
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), ACTION_TIMEOUT_S)
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                started = True
            elif kind == "delta" and started:
                self._element(fwd, result)
            elif kind == "page_not_found":
                result.errors.append(f"page not found: {self.page_name!r}")
            elif kind == "script_finished" and started:
                if fwd.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue
                result.status = fwd.script_finished
                result.seconds = time.perf_counter() - t0
                return result

    def _element(self, fwd: ForwardMsg, result: RunResult) -> None:
        delta = fwd.delta
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind is None:
            return
        result.kinds[kind] = result.kinds.get(kind, 0) + 1
        body = getattr(element, kind)
        if kind == "exception":
            result.errors.append(f"traceback: {body.type}: {body.message}")
        elif kind == "alert" and body.format == Alert.ERROR:
            result.errors.append(f"error box: {body.body}")
        widget_id = getattr(body, "id", "") if "id" in body.DESCRIPTOR.fields_by_name else ""
        if widget_id and "-" in widget_id:
            self.widget_ids[widget_id.rsplit("-", 1)[-1]] = widget_id


def server_pids(pid: int) -> list[int]:
    """The server and its descendants (its sampling processes, services/compute_process.py) now."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the server and its descendants (all their threads) have used so far; None
    without /proc."""
    total = None
    for p in server_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def server_peak_rss_mib(pid: int) -> tuple[float | None, int]:
    """(the sum of the peak RSS of the server and each of its descendants, MiB — an upper bound on their peak
    together; how many processes that is)."""
    peaks = [p for p in map(process_peak_rss_mib, server_pids(pid)) if p is not None]
    return (sum(peaks) if peaks else None), len(peaks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(env_extra: dict[str, str] | None = None, log_path: Path | None = None, timeout: float = 180.0):
    """`streamlit run streamlit_app.py` from the project folder (its .streamlit/config.toml applies) on a free
    loopback port; yields (url, process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"PYTHONPATH": str(ROOT)} | (env_extra or {})
    cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with tempfile.TemporaryDirectory(prefix="load-test-") as tmp:
        log_path = log_path or Path(tmp) / "streamlit.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                t0 = time.perf_counter()
                while True:
                    try:
                        if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                            break
                    except OSError:
                        pass
                    if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                        raise RuntimeError(f"streamlit did not start:\n{Path(log_path).read_text()[-3000:]}")
                    time.sleep(0.2)
                yield url, proc
            finally:
                stop_server(proc)


@dataclass
class Timings:
    """Seconds to result per action, and what went wrong."""

    by_action: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def record(self, who: str, action: str, result: RunResult, needs: str | None = None) -> None:
        problems = list(result.errors)
        if result.status != ForwardMsg.FINISHED_SUCCESSFULLY:
            problems.append(f"script finished with status {result.status}")
        if needs and not result.kinds.get(needs):
            problems.append(f"no {needs} element in the result")
        if problems:
            self.errors.extend(f"{who} {action}: {p}" for p in problems)
        else:
            self.by_action.setdefault(action, []).append(result.seconds)


async def student(url: str, who: str, timings: Timings, start: asyncio.Event | None, steps: int,
                  ready: list, seed: int = 0) -> None:
    """Open Home at `seed`; (wait for everyone;) Generate; open Reverse diffusion at `seed`, run it, step Forward
    `steps` times."""
    s = StreamlitSession(url)
    try:
        await s.connect()
        timings.record(who, "open Home", await s.open_page("", f"home_seed={seed}"))
        ready.append(who)
        if start is not None:
            await start.wait()
        timings.record(who, "Generate", await s.click("home_generate"), needs="imgs")
        timings.record(who, "open Reverse diffusion", await s.open_page("Reverse_diffusion", f"rd_seed={seed}"))
        timings.record(who, "Run reverse diffusion", await s.click("rd_run"), needs="imgs")
        for _ in range(steps):
            timings.record(who, "Forward ▶ (one step)", await s.click("rd_forward"), needs="imgs")
    except Exception as exc:  # a dropped connection, a timeout, a missing button: an error, not a crash
        timings.errors.append(f"{who}: {type(exc).__name__}: {exc}")
        if who not in ready:
            ready.append(who)
    finally:
        await s.close()


async def class_at_once(urls: list[str], students: int, steps: int, same_seed: bool = False
                        ) -> tuple[Timings, float]:
    """All students open Home (student i on server i mod len(urls)), then press Generate in the same instant;
    student i at seed 1000·(i + 1) (so no two ask for the same images and the cache answers nothing), or all at
    seed 0 (`same_seed`: a class on the defaults). Returns (timings, wall seconds)."""
    timings, start, ready = Timings(), asyncio.Event(), []
    tasks = [asyncio.create_task(student(urls[i % len(urls)], f"student {i + 1}", timings, start, steps, ready,
                                         0 if same_seed else 1000 * (i + 1))) for i in range(students)]
    while len(ready) < students:
        await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return timings, time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(alone: Timings, crowd: Timings) -> list[dict]:
    rows = []
    for action, times in crowd.by_action.items():
        solo = alone.by_action.get(action, [])
        rows.append({"action": action, "n": len(times), "p50_s": round(percentile(times, 50), 2),
                     "p95_s": round(percentile(times, 95), 2), "max_s": round(max(times), 2),
                     "alone_s": round(statistics.median(solo), 2) if solo else None,
                     "times_s": [round(t, 2) for t in sorted(times)]})
    return rows


def targets_for(students: int) -> dict[str, float]:
    """Issue #30's p95 targets (s) on 2 cores for a class of this size (the 10-student ones up to 10 students)."""
    return TARGETS_P95_S[10] if students <= 10 else TARGETS_P95_S[30]


def busy_cores_since(before: tuple[int, int] | None = None) -> tuple[tuple[int, int], float | None]:
    """((busy, total) jiffies of the whole machine now, the cores it kept busy on average since `before`)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    now = (sum(fields) - fields[3] - fields[4], sum(fields))  # all but idle and iowait
    if before is None:
        return now, None
    return now, (now[0] - before[0]) / max(1, now[1] - before[1]) * usable_cores()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def measure(env: dict[str, str], students: int, steps: int, same_seed: bool, servers: int = 1) -> dict:
    """`servers` app servers with `env`: one student alone, then the class at once, spread over them. The
    figures as a dict."""
    with tempfile.TemporaryDirectory(prefix="load-test-runs-") as runs, ExitStack() as stack:
        env = {**env, "DIFFUSION_LAB_RUNS": runs}  # nothing a student does here trains, but keep runs/ untouched
        started = [stack.enter_context(running_server(env)) for _ in range(servers)]
        urls, procs = [u for u, _ in started], [p for _, p in started]
        alone = Timings()
        # one student alone first on each server: the first page load starts a server's background warm-up, as
        # the first visitor of a class does; the second Generate is what a student meets on a warm server
        for url in urls:
            asyncio.run(_alone(url, alone, steps))
        cpu0, load0 = sum(cpu_seconds(p.pid) or 0 for p in procs), os.getloadavg()[0]
        machine0, _ = busy_cores_since()
        timings, wall = asyncio.run(class_at_once(urls, students, steps, same_seed))
        cpu1 = sum(cpu_seconds(p.pid) or 0 for p in procs)
        _, machine_cores = busy_cores_since(machine0)
        peaks = [server_peak_rss_mib(p.pid) for p in procs]
    rows = summarise(alone, timings)
    generate = next((r for r in rows if r["action"] == "Generate"), None)
    peak = sum(p for p, _ in peaks if p) or None
    return {"env": {k: v for k, v in env.items() if k != "DIFFUSION_LAB_RUNS"}, "servers": servers, "rows": rows,
            "class_wall_s": wall, "server_peak_rss_mib": peak, "server_processes": sum(n for _, n in peaks),
            "errors": alone.errors + timings.errors, "load_average_before": load0,
            "server_cores_used": (cpu1 - cpu0) / wall if cpu0 else None, "machine_cores_used": machine_cores,
            "generate_images_per_s": students * GRID_IMAGES / max(generate["times_s"]) if generate else None,
            "first": {a: alone.by_action[a][0] for a in ("first page load", "first Generate")
                      if alone.by_action.get(a)}}


@contextmanager
def ray_head(cores: int):
    """A Ray head on 127.0.0.1 (the project importable on it) for the --ray scenario; yields its address."""
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={cores}",
                    "--include-dashboard=false", "--disable-usage-stats"], env=env, check=True, capture_output=True,
                   timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def print_scenario(name: str, result: dict, students: int) -> dict[str, bool]:
    """The scenario's table and its verdict against the targets: {action: met}."""
    targets = targets_for(students)
    print(f"\n{name} — server env {result['env'] or 'defaults'}")
    print(f"{'action':<28}{'n':>4}{'p50 s':>9}{'p95 s':>9}{'max s':>9}{'alone s':>10}{'target':>10}")
    verdict = {}
    for r in result["rows"]:
        alone_s = "" if r["alone_s"] is None else f"{r['alone_s']:.2f}"
        target = targets.get(r["action"])
        if target is not None:
            verdict[r["action"]] = r["p95_s"] <= target and r["n"] == students
        mark = "" if target is None else f"≤ {target:g} {'met' if verdict[r['action']] else 'MISSED'}"
        print(f"{r['action']:<28}{r['n']:>4}{r['p50_s']:>9.2f}{r['p95_s']:>9.2f}{r['max_s']:>9.2f}{alone_s:>10}"
              f"  {mark}")
    peak = result["server_peak_rss_mib"]
    if result.get("machine_cores_used") is not None:
        print(f"the whole machine was busy on {result['machine_cores_used']:.2f} cores on average meanwhile")
    print(f"Generate: {result['generate_images_per_s']:.0f} images/s for the class" if result["generate_images_per_s"]
          else "Generate: no result")
    print(f"server peak RSS (VmHWM, {result['servers']} server(s) and their "
          f"{result['server_processes'] - result['servers']} sampling processes summed): {peak:.0f} MiB" if peak
          else "server peak RSS: unavailable")
    if result["server_cores_used"] is not None:
        print(f"while the class worked ({result['class_wall_s']:.1f} s) the server and its sampling processes used "
              f"{result['server_cores_used']:.2f} cores on average; load average {result['load_average_before']:.1f} "
              "before")
    print(f"errors: {len(result['errors'])}")
    for e in result["errors"][:20]:
        print(f"  {e}")
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3, help="Forward ▶ clicks per student on Reverse diffusion")
    parser.add_argument("--workers", type=int, help="DIFFUSION_LAB_WORKERS for the server (default: its own plan)")
    parser.add_argument("--threads", type=int, help="DIFFUSION_LAB_TORCH_THREADS for the server (default 1)")
    parser.add_argument("--same-seed", action="store_true", help="every student at seed 0 (a class on the "
                        "defaults: the cache answers repeats); default: distinct seeds")
    parser.add_argument("--compare", action="store_true", help="also run the class on a server that computes each "
                        "request on its own (no merged batches, no cache), as before #30, in the same run")
    parser.add_argument("--ray", action="store_true", help="also run the class on a Ray head started here (Serve "
                        "samples every server's Generate batches; needs requirements-ray.txt), in the same run")
    parser.add_argument("--servers", type=int, default=1, help="app servers the class is spread over, each its own "
                        "process (default 1; e.g. 2 with --ray: two servers sharing one Serve deployment)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    env = {}
    if args.workers:
        env["DIFFUSION_LAB_WORKERS"] = str(args.workers)
    if args.threads:
        env["DIFFUSION_LAB_TORCH_THREADS"] = str(args.threads)
    scenarios = {"merged batches and cache (default)": env}
    if args.compare:
        scenarios["each request on its own (before #30)"] = {**env, "DIFFUSION_LAB_MAX_BATCH": "1",
                                                             "DIFFUSION_LAB_SAMPLE_CACHE": "0"}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from diffusion_core.evaluation.noisy_classifier import cpu_name
    from diffusion_core.training.precision import resolve_precision

    precision = str(resolve_precision("auto", "cpu")).replace("torch.", "")
    print(f"Load test: {args.students} students at once ({'one seed' if args.same_seed else 'distinct seeds'}) on "
          f"{cores} cores of {cpu_name()}, precision auto = {precision}")
    results, verdicts = {}, {}
    for name, scenario_env in scenarios.items():
        results[name] = measure(scenario_env, args.students, args.steps, args.same_seed, args.servers)
        verdicts[name] = print_scenario(name, results[name], args.students)
    if args.ray:
        with ray_head(cores) as address:
            name = f"on Ray Serve at {address}, across {args.servers} server{'s' if args.servers > 1 else ''}"
            # one replica per core, one CPU (torch thread) each: the whole machine, as the embedded queue uses it
            results[name] = measure({**env, "DIFFUSION_LAB_RAY": address, "DIFFUSION_LAB_RAY_REPLICAS": str(cores)},
                                    args.students, args.steps, args.same_seed, args.servers)
            verdicts[name] = print_scenario(name, results[name], args.students)
    main_name = next(iter(scenarios))
    ok = not results[main_name]["errors"] and bool(verdicts[main_name]) and all(verdicts[main_name].values())
    if args.json:
        args.json.write_text(json.dumps({"students": args.students, "cores": cores, "cpu": cpu_name(),
                                         "precision": precision, "same_seed": args.same_seed,
                                         "targets_p95_s": targets_for(args.students), "scenarios": results,
                                         "met": verdicts}, indent=2))
    return 0 if ok else 1


async def _alone(url: str, timings: Timings, steps: int) -> None:
    first = StreamlitSession(url)
    try:
        await first.connect()
        timings.record("alone", "first page load", await first.open_page(""))
        timings.record("alone", "first Generate", await first.click("home_generate"), needs="imgs")
    finally:
        await first.close()
    s = StreamlitSession(url)  # a second visitor, at another seed (the first's again would be the cache's answer)
    try:
        await s.connect()
        await s.open_page("", "home_seed=1")
        timings.record("alone", "Generate", await s.click("home_generate"), needs="imgs")
        timings.record("alone", "open Reverse diffusion", await s.open_page("Reverse_diffusion"))
        timings.record("alone", "Run reverse diffusion", await s.click("rd_run"), needs="imgs")
        for _ in range(steps):
            timings.record("alone", "Forward ▶ (one step)", await s.click("rd_forward"), needs="imgs")
    finally:
        await s.close()


if __name__ == "__main__":
    sys.exit(main())
