#!/usr/bin/python3
"""How fast cellblock starts processes, against the machine's limits and peers.

    /usr/bin/python3 bench/spawnbench.py [--quick] [--out DIR]

Build first (ninja -C build). Run as root for the cellblock contenders'
full confinement. Three parts:

  throughput  TOTAL processes with at most WIDTH alive at once, ITERATIONS
              times, for each job and contender: procs/sec and time
  latency     one cell at a time: request to result, and request to execve
              as the server measures it
  memory      the server's RSS and PSS idle and with 1,000 cells alive

Writes results.md, results.csv and chart.svg to DIR (default
bench/results/<date>) and prints the Markdown. Exits 1 if any contender
failed (the results say which and why).
"""
import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

import contenders as cs
import report
import server as srv

FULL_TOTALS = [32, 128, 384, 1024, 2048]
QUICK_TOTALS = [32, 128]


@dataclass
class Config:
    jobs: list
    widths: list
    totals: list
    iterations: int
    latency_cells: int
    memory_cells: int
    only: list = None

    def run_timeout(self, total):
        return 60 + total * 0.5


@dataclass
class Run:
    """What one command reported."""
    elapsed_s: float = None
    cells: list = field(default_factory=list)  # (request_to_result_s, setup_s) per cell
    error: str = None


@dataclass
class Sample:
    job: str
    contender: str
    width: int
    total: int
    iteration: int
    elapsed_s: float
    error: str = None
    shared_with: str = None  # the job whose measurement this repeats


@dataclass
class LatencyRun:
    job: str
    contender: str
    run: Run


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---- running one command --------------------------------------------------

def parse_output(text):
    run = Run()
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["elapsed"]:
            run.elapsed_s = float(words[1])
        elif words[:1] == ["cell"]:
            run.cells.append((float(words[2]), float(words[3])))
    return run


def run_command(argv, timeout):
    # its own process group, so a timeout ends whatever it started too
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Run(error=f"no result after {timeout:.0f} s")
    except BaseException:  # interrupted: leave nothing behind
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    run = parse_output(out)
    if proc.returncode != 0 or run.elapsed_s is None:
        lines = err.strip().splitlines()
        run.error = (lines[-1] if lines else "") + f" (exit status {proc.returncode})"
    return run


# ---- throughput -----------------------------------------------------------

def measure_once(env, contender, job, width, total, iteration, cfg, shared):
    """One run; a contender that does not run PROGRAM is measured for the first job only."""
    key = (contender.key, width, total, iteration)
    if not contender.runs_program and key in shared:
        first = shared[key]
        return replace(first, job=job, shared_with=first.shared_with or first.job)
    argv = contender.command(env, cs.JOBS[job], width, total)
    run = run_command(argv, cfg.run_timeout(total))
    sample = Sample(job, contender.key, width, total, iteration, run.elapsed_s, run.error)
    shared[key] = sample
    rate = f"{total / run.elapsed_s:9.1f} procs/s" if not run.error else f"FAILED: {run.error}"
    log(f"  {job:6} width {width} total {total:4} #{iteration}  {contender.label:38} {rate}")
    return sample


def measure_throughput(env, contenders, cfg):
    samples, shared = [], {}
    for job in cfg.jobs:
        for width in cfg.widths:
            for total in cfg.totals:
                failed = set()
                # iterations outermost, so a change in the machine's load touches every contender
                for iteration in range(1, cfg.iterations + 1):
                    for contender in contenders:
                        if contender.key in failed:
                            continue
                        sample = measure_once(env, contender, job, width, total, iteration, cfg,
                                              shared)
                        samples.append(sample)
                        if sample.error:
                            failed.add(contender.key)
    return samples


# ---- latency and memory -----------------------------------------------------

def measure_latency(env, contenders, cfg):
    runs = []
    for job in cfg.jobs:
        for contender in (c for c in contenders if c.latency):
            argv = contender.command(env, cs.JOBS[job], 1, cfg.latency_cells, ["--per-cell"])
            run = run_command(argv, cfg.run_timeout(cfg.latency_cells))
            log(f"  latency {job:6} {contender.label:38} "
                + (f"FAILED: {run.error}" if run.error else f"{len(run.cells)} cells"))
            runs.append(LatencyRun(job, contender.key, run))
    return runs


def measure_memory(env, server, cfg):
    argv = [env.driver, "--mode", "cellblock", "--hold", "--total", str(cfg.memory_cells),
            "--timeout", cs.HOLD_TIMEOUT_S, *env.server_args(), "--", *cs.HOLD_PROGRAM]
    result = srv.hold_cells(server, argv, cfg.memory_cells, timeout=cfg.run_timeout(1000))
    log(f"  memory: {result.alive} cells alive after {result.spawn_s:.1f} s, server RSS "
        f"{result.idle.rss_kib} -> {result.loaded.rss_kib} KiB, all gone "
        f"{result.teardown_s:.1f} s after closing"
        + (f"; FAILED: {result.error}" if result.error else ""))
    return result


# ---- the machine ------------------------------------------------------------

def read_first(path, prefix=""):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip() if prefix else line.strip()
    except OSError:
        pass
    return "unknown"


def build_type(build_dir):
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
            options = {o["name"]: o["value"] for o in json.load(f)}
        return f"{options['buildtype']} (-O{options['optimization']})"
    except (OSError, KeyError, ValueError):
        return "unknown"


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def describe_machine(build_dir):
    return {
        "cores": str(os.cpu_count()),
        "model name": read_first("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "Debian": read_first("/etc/debian_version"),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load average at start (1, 5, 15 min)": load_average(),
        "cellblock build": f"{build_type(build_dir)}, {build_dir}",
        "running as": "root" if os.geteuid() == 0 else f"uid {os.geteuid()}",
    }


# ---- main ---------------------------------------------------------------------

def parse_args():
    cpus = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="totals 32 and 128, 2 iterations, width the CPU count only, "
                        "50 latency cells")
    p.add_argument("--out", help="output directory (default bench/results/<date>)")
    p.add_argument("--build-dir", default=os.path.join(cs.REPO, "build"))
    p.add_argument("--iterations", type=int)
    p.add_argument("--totals", type=int, nargs="+")
    p.add_argument("--widths", type=int, nargs="+",
                   help="most processes alive at once (default: the CPU count, and 1)")
    p.add_argument("--jobs", nargs="+", choices=list(cs.JOBS), default=list(cs.JOBS))
    p.add_argument("--only", nargs="+", choices=[c.key for c in cs.CONTENDERS],
                   help="run only these contenders")
    p.add_argument("--latency-cells", type=int)
    p.add_argument("--memory-cells", type=int, default=1000)
    args = p.parse_args()
    cfg = Config(
        jobs=args.jobs,
        widths=args.widths or ([cpus] if args.quick else sorted({cpus, 1}, reverse=True)),
        totals=args.totals or (QUICK_TOTALS if args.quick else FULL_TOTALS),
        iterations=args.iterations or (2 if args.quick else 5),
        latency_cells=args.latency_cells or (50 if args.quick else 200),
        memory_cells=args.memory_cells, only=args.only)
    out = args.out or os.path.join(cs.BENCH, "results",
                                   datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S"))
    return cfg, os.path.abspath(args.build_dir), out


def start_server(env, notes):
    if cs.need_cellblock(env):
        notes.append(f"cellblock serve not started: {cs.need_cellblock(env)}")
        return None
    server = srv.Server(env.cellblock)
    try:
        server.start()
    except srv.ServerError as e:
        notes.append(f"cellblock serve failed to start: {e}")
        server.stop()
        return None
    env.socket, env.key_file = server.socket, server.key_file
    return server


def choose_contenders(env, cfg, notes):
    chosen = []
    for c in cs.CONTENDERS:
        if cfg.only and c.key not in cfg.only:
            continue
        why = c.missing(env)
        if why:
            notes.append(f"{c.label}: skipped, {why}")
        else:
            chosen.append(c)
    return chosen


def exit_on_sigterm():
    """SIGTERM unwinds like Ctrl-C, so the server is stopped and nothing is left running."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main():
    exit_on_sigterm()
    cfg, build_dir, out_dir = parse_args()
    env = cs.Env(build_dir)
    machine = describe_machine(build_dir)
    notes = []
    t0 = time.monotonic()
    server = start_server(env, notes)
    memory = None
    try:
        idle_fresh = srv.memory_of(server.pid) if server else None
        contenders = choose_contenders(env, cfg, notes)
        log(f"throughput: jobs {cfg.jobs}, widths {cfg.widths}, totals {cfg.totals}, "
            f"{cfg.iterations} iterations")
        samples = measure_throughput(env, contenders, cfg)
        log(f"latency: {cfg.latency_cells} cells one at a time")
        latency = measure_latency(env, contenders, cfg)
        if server and not cs.need_driver(env) and cfg.memory_cells:
            log(f"memory: {cfg.memory_cells} cells alive at once")
            memory = measure_memory(env, server, cfg)
    finally:
        problem = server.stop() if server else None
        if problem:
            notes.append(problem)
    machine["load average at end (1, 5, 15 min)"] = load_average()
    machine["benchmark duration"] = f"{time.monotonic() - t0:.0f} s"

    results = report.Results(machine=machine, config=cfg, contenders=contenders, samples=samples,
                             latency=latency, idle_fresh=idle_fresh, memory=memory, notes=notes)
    markdown = report.write_all(out_dir, results)
    print(markdown)
    log(f"wrote {out_dir}/results.md, results.csv, chart.svg")
    if report.any_failed(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
