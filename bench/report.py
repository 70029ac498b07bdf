"""results.md, results.csv and chart.svg from the measurements."""
import csv
import math
import os
import statistics
from dataclasses import dataclass
from html import escape

import contenders as cs

SETUP_NOTE = (
    "Request to execve is the result's `setup_time_s`, measured by the server: from just "
    "before it clones the cell to when it reads the cell's report that execve succeeded. It "
    "leaves out the request's trip to the server. Request to result is measured by the "
    "client (cellblock-driver), from just before it sends the request to when it has the "
    "result; for posix_spawn and bwrap, from just before posix_spawn to waitpid's return.")

METHOD_NOTES = [
    "Each run first starts one untimed process (it warms caches and starts multiprocessing's "
    "forkserver); the time covers starting and waiting for TOTAL processes, at most WIDTH "
    "alive at once, waiting for the oldest when the window is full.",
    "bwrap, unshare and cellblock run are started by cellblock-driver with posix_spawn, so "
    "they pay what the posix_spawn row pays, plus their own work.",
    "fork+_exit and the multiprocessing rows do not run PROGRAM: one measurement is shown "
    "under every job.",
    "cellblock cells run with memory 256M and pids 64 and the default (full) confinement; "
    "serve's stdio is /dev/null.",
]


@dataclass
class Results:
    machine: dict
    config: object
    contenders: list
    samples: list
    latency: list
    idle_fresh: object
    memory: object
    notes: list


@dataclass
class Summary:
    rates: list
    times: list
    error: str = None
    shared_with: str = None

    @property
    def ok(self):
        return not self.error and bool(self.rates)

    @property
    def mean(self):
        return statistics.fmean(self.rates)

    @property
    def sd(self):
        return statistics.stdev(self.rates) if len(self.rates) > 1 else 0.0

    @property
    def time(self):
        return statistics.fmean(self.times)


def summarize(samples):
    """(job, contender, width, total) -> Summary"""
    out = {}
    for s in samples:
        summary = out.setdefault((s.job, s.contender, s.width, s.total), Summary([], []))
        summary.shared_with = s.shared_with
        if s.error:
            summary.error = s.error
        else:
            summary.rates.append(s.total / s.elapsed_s)
            summary.times.append(s.elapsed_s)
    return out


def ratios(summaries, contenders, jobs, widths, totals):
    """(job, width, total, numerator, denominator) -> ratio of mean procs/sec, when both ran."""
    out = {}
    for job in jobs:
        for width in widths:
            for total in totals:
                for num, den in cs.ratio_pairs(contenders):
                    a = summaries.get((job, num, width, total))
                    b = summaries.get((job, den, width, total))
                    if a and b and a.ok and b.ok:
                        out[(job, width, total, num, den)] = a.mean / b.mean
    return out


def percentile(values, p):
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency_columns(run):
    """request-to-result and request-to-execve cells (in seconds), the latter may be empty."""
    to_result = [r for r, _ in run.cells]
    to_execve = [s for _, s in run.cells if not math.isnan(s)]
    return to_result, to_execve


def label(key):
    return cs.by_key(key).label


# ---- Markdown -------------------------------------------------------------------

def md_table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_summary(s):
    if s is None:
        return "not run"
    if not s.ok:
        return "**FAILED**"
    return f"{s.mean:,.0f} ± {s.sd:,.0f}/s, {s.time:.3f} s"


def md_machine(res):
    cfg = res.config
    rows = list(res.machine.items()) + [
        ("jobs", ", ".join(f"`{' '.join(cs.JOBS[j])}`" for j in cfg.jobs)),
        ("widths (most alive at once)", ", ".join(map(str, cfg.widths))),
        ("totals", ", ".join(map(str, cfg.totals))),
        ("iterations", str(cfg.iterations)),
    ]
    return md_table(["machine", ""], rows, ["---", "---"])


def md_throughput(res, summaries):
    cfg, parts = res.config, []
    for job in cfg.jobs:
        parts.append(f"## Throughput: {cs.JOB_TITLES[job]}")
        for width in cfg.widths:
            rows = [[c.label] + [fmt_summary(summaries.get((job, c.key, width, t)))
                                 for t in cfg.totals] for c in res.contenders]
            parts.append(f"At most {width} alive at once; procs/sec mean ± standard deviation "
                         f"over {cfg.iterations} iterations, and the mean time for the total.\n\n"
                         + md_table(["contender"] + [f"{t} procs" for t in cfg.totals], rows))
    return "\n\n".join(parts)


def md_ratios(res, ratio_table):
    """Per job and width: a row per cellblock contender, a column per limit and peer."""
    cfg, total = res.config, max(res.config.totals)
    pairs = cs.ratio_pairs(res.contenders)
    ours = list(dict.fromkeys(n for n, _ in pairs))
    theirs = list(dict.fromkeys(d for _, d in pairs))
    parts = [f"## Ratios of procs/sec ({total} procs)\n\n"
             "A cellblock contender's procs/sec divided by a limit's or a peer's, at the same "
             "job and width: above 1, cellblock is faster. Every total is in results.csv."]
    for job in cfg.jobs:
        for width in cfg.widths:
            rows = [[label(n)] + [f"{ratio_table[(job, width, total, n, d)]:.2f}"
                                  if (job, width, total, n, d) in ratio_table else "n/a"
                                  for d in theirs]
                    for n in ours]
            parts.append(f"{cs.JOB_TITLES[job]}, at most {width} alive at once:\n\n"
                         + md_table(["÷"] + [label(d) for d in theirs], rows))
    return "\n\n".join(parts)


def ms(values, p):
    return f"{percentile(values, p) * 1000:.2f}" if values else "—"


def md_latency(res):
    rows = []
    for lr in res.latency:
        if lr.run.error:
            rows.append([cs.JOB_TITLES[lr.job], label(lr.contender), "**FAILED**"] + [""] * 5)
            continue
        to_result, to_execve = latency_columns(lr.run)
        rows.append([cs.JOB_TITLES[lr.job], label(lr.contender)]
                    + [ms(to_result, p) for p in (50, 90, 99)]
                    + [ms(to_execve, p) for p in (50, 90, 99)])
    header = ["job", "contender", "to result p50", "p90", "p99", "to execve p50", "p90", "p99"]
    return (f"## Latency, one at a time ({res.config.latency_cells} each, milliseconds)\n\n"
            + md_table(header, rows, ["---", "---"] + ["---:"] * 6) + "\n\n" + SETUP_NOTE)


def memory_states(res):
    """(name, description, Memory) of the server, in the order measured."""
    m = res.memory
    return [("idle_fresh", "idle, just started", res.idle_fresh),
            ("idle", "idle, after the throughput and latency runs", m.idle),
            ("loaded", f"{m.cells} cells alive", m.loaded),
            ("after", "after closing their connection", m.after)]


def memory_figures(m):
    """(metric, value, unit, description) derived from a hold."""
    n = m.cells
    return [
        ("rss_per_cell", (m.loaded.rss_kib - m.idle.rss_kib) / n, "KiB",
         f"server VmRSS per cell: (with {n} − idle) / {n}"),
        ("pss_per_cell", (m.loaded.pss_kib - m.idle.pss_kib) / n, "KiB",
         f"server PSS per cell: (with {n} − idle) / {n}"),
        ("init_pss_per_cell", m.inits_pss_kib / n, "KiB", "PSS of each cell's init"),
        ("program_pss_per_cell", m.programs_pss_kib / n, "KiB",
         f"PSS of the program in each cell (`{' '.join(cs.HOLD_PROGRAM)}`)"),
        ("cells_alive", m.alive, "", "cells counted alive (the server's copies of itself)"),
        ("spawn_time", m.spawn_s, "s", f"time to start the {n} cells"),
        ("teardown_time", m.teardown_s, "s", "from closing the connection to the last cell gone"),
    ]


def md_memory(res):
    m = res.memory
    if m is None:
        return "## Memory\n\nnot measured (no server or no driver)"
    if m.error:
        return f"## Memory\n\n**FAILED**: {m.error}"
    states = [(desc, mem.rss_kib, mem.pss_kib) for _, desc, mem in memory_states(res)]
    figures = [(desc, f"{value:,.1f} {unit}" if isinstance(value, float) else f"{value:,}")
               for _, value, unit, desc in memory_figures(m)]
    return (f"## Memory of the cellblock serve process\n\n"
            f"{m.cells} cells running `{' '.join(cs.HOLD_PROGRAM)}`, started through one C "
            f"client connection and killed by closing it. VmRSS from /proc/PID/status, PSS "
            f"from /proc/PID/smaps_rollup.\n\n"
            + md_table(["server", "VmRSS KiB", "PSS KiB"], states) + "\n\n"
            + md_table(["per cell", ""], figures)
            + "\n\nEach cell's init is a copy of the server and shares its pages, so the "
            "server's PSS can fall as cells start. Kernel memory (namespaces, cgroups, page "
            "tables) is in none of these.")


def md_notes(res, summaries):
    failures = [f"{label(k[1])}, {k[0]}, width {k[2]}, total {k[3]}: {s.error}"
                for k, s in summaries.items() if s.error and not s.shared_with]
    failures += [f"latency, {label(lr.contender)}, {lr.job}: {lr.run.error}"
                 for lr in res.latency if lr.run.error]
    parts = ["## Notes", "\n".join(f"- {n}" for n in METHOD_NOTES + res.notes)]
    if failures:
        parts += ["### Failures", "\n".join(f"- {f}" for f in failures)]
    return "\n\n".join(parts)


def markdown(res, summaries, ratio_table):
    return "\n\n".join([
        "# cellblock spawn benchmark",
        md_machine(res),
        "![procs/sec](chart.svg)",
        md_throughput(res, summaries),
        md_ratios(res, ratio_table),
        md_latency(res),
        md_memory(res),
        md_notes(res, summaries),
    ]) + "\n"


# ---- CSV ----------------------------------------------------------------------

CSV_FIELDS = ["part", "job", "contender", "width", "total", "iteration", "metric", "value", "unit",
              "status", "note"]


def csv_rows(res, ratio_table):
    def row(**kw):
        return {f: kw.get(f, "") for f in CSV_FIELDS}

    for s in res.samples:
        base = dict(part="throughput", job=s.job, contender=s.contender, width=s.width,
                    total=s.total, iteration=s.iteration,
                    status="failed" if s.error else "ok",
                    note=s.error or (f"same measurement as job {s.shared_with}"
                                     if s.shared_with else ""))
        yield row(**base, metric="elapsed", value=s.elapsed_s or "", unit="s")
        if not s.error:
            yield row(**base, metric="procs_per_sec", value=s.total / s.elapsed_s, unit="1/s")
    for (job, width, total, num, den), value in ratio_table.items():
        yield row(part="ratio", job=job, contender=f"{num}/{den}", width=width, total=total,
                  metric="procs_per_sec_ratio", value=value, status="ok")
    for lr in res.latency:
        if lr.run.error:
            yield row(part="latency", job=lr.job, contender=lr.contender, width=1,
                      status="failed", note=lr.run.error)
        for i, (to_result, setup) in enumerate(lr.run.cells):
            base = dict(part="latency", job=lr.job, contender=lr.contender, width=1,
                        total=len(lr.run.cells), iteration=i, unit="s", status="ok")
            yield row(**base, metric="request_to_result", value=to_result)
            if not math.isnan(setup):
                yield row(**base, metric="request_to_execve", value=setup,
                          note="setup_time_s, measured by the server")
    yield from memory_rows(res, row)


def memory_rows(res, row):
    m = res.memory
    if m is None:
        return
    base = dict(part="memory", contender="serve-c", total=m.cells)
    if m.error:
        yield row(**base, status="failed", note=m.error)
        return
    for name, desc, mem in memory_states(res):
        yield row(**base, metric=f"rss_{name}", value=mem.rss_kib, unit="KiB", status="ok",
                  note=desc)
        yield row(**base, metric=f"pss_{name}", value=mem.pss_kib, unit="KiB", status="ok",
                  note=desc)
    for metric, value, unit, desc in memory_figures(m):
        yield row(**base, metric=metric, value=value, unit=unit, status="ok", note=desc)


def write_csv(path, res, ratio_table):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(res, ratio_table))


# ---- SVG --------------------------------------------------------------------------

COLOURS = {"limit": "#7f7f7f", "peer": "#4e79a7", "cellblock": "#e15759"}
LABEL_W, PLOT_W, VALUE_W, BAR_H, GAP, HEAD_H, TOP = 290, 460, 120, 16, 5, 26, 84


class LogAxis:
    def __init__(self, values):
        self.lo = 10 ** math.floor(math.log10(min(values)))
        self.hi = 10 ** math.ceil(math.log10(max(values)))
        if self.hi <= self.lo:
            self.hi = self.lo * 10

    def x(self, v):
        v = min(max(v, self.lo), self.hi)
        return LABEL_W + PLOT_W * math.log10(v / self.lo) / math.log10(self.hi / self.lo)

    def ticks(self):
        v = self.lo
        while v <= self.hi:
            yield v
            v *= 10


def svg_text(x, y, text, anchor="start", size=12, weight="normal"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'font-weight="{weight}">{escape(text)}</text>')


def svg_bar(axis, y, summary, colour):
    if summary is None or not summary.ok:
        return [svg_text(LABEL_W + 4, y + BAR_H - 4, "not run" if summary is None else "FAILED")]
    x0, x1 = LABEL_W, axis.x(summary.mean)
    parts = [f'<rect x="{x0}" y="{y}" width="{x1 - x0:.1f}" height="{BAR_H}" fill="{colour}"/>']
    if summary.sd > 0 and summary.mean > summary.sd:
        lo, hi, mid = axis.x(summary.mean - summary.sd), axis.x(summary.mean + summary.sd), y + BAR_H / 2
        parts.append(f'<path d="M{lo:.1f} {mid}H{hi:.1f}M{lo:.1f} {y + 3}V{y + BAR_H - 3}'
                     f'M{hi:.1f} {y + 3}V{y + BAR_H - 3}" stroke="#000" fill="none"/>')
    parts.append(svg_text(LABEL_W + PLOT_W + 6, y + BAR_H - 4, f"{summary.mean:,.0f}/s"))
    return parts


def svg_chart(res, summaries):
    cfg = res.config
    width, total = max(cfg.widths), max(cfg.totals)
    chosen = {k: s for k, s in summaries.items() if k[2] == width and k[3] == total and s.ok}
    values = [s.mean + s.sd for s in chosen.values()] + [s.mean for s in chosen.values()] or [1]
    axis = LogAxis([v for v in values if v > 0] or [1])
    n_bars = len(res.contenders)
    group_h = HEAD_H + n_bars * (BAR_H + GAP)
    height = TOP + len(cfg.jobs) * group_h + 40
    body = [svg_text(10, 22, f"procs/sec: {total} processes, at most {width} alive at once "
                             f"(log scale; whiskers: ± 1 sd)", size=15, weight="bold"),
            svg_text(10, 42, ", ".join(f"{k}: {res.machine[k]}"
                                       for k in ("cores", "model name", "kernel", "Debian"))),
            svg_text(10, 58, f"date: {res.machine['date']}; load average at start: "
                             f"{res.machine['load average at start (1, 5, 15 min)']}")]
    body += svg_legend(10 + LABEL_W, 74)
    for tick in axis.ticks():
        x = axis.x(tick)
        body.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{height - 30}" '
                    f'stroke="#ddd"/>')
        body.append(svg_text(x, height - 16, f"{tick:,.0f}", anchor="middle", size=11))
    y = TOP
    for job in cfg.jobs:
        body.append(svg_text(10, y + 18, cs.JOB_TITLES[job], size=13, weight="bold"))
        y += HEAD_H
        for c in res.contenders:
            body.append(svg_text(LABEL_W - 6, y + BAR_H - 4, c.label, anchor="end"))
            body += svg_bar(axis, y, summaries.get((job, c.key, width, total)), COLOURS[c.group])
            y += BAR_H + GAP
    total_w = LABEL_W + PLOT_W + VALUE_W
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" '
            f'viewBox="0 0 {total_w} {height}" font-family="sans-serif">\n'
            f'<rect width="100%" height="100%" fill="#fff"/>\n' + "\n".join(body) + "\n</svg>\n")


def svg_legend(x, y):
    parts = []
    for name, colour in (("limits of the machine", COLOURS["limit"]), ("peers", COLOURS["peer"]),
                         ("cellblock", COLOURS["cellblock"])):
        parts.append(f'<rect x="{x}" y="{y - 10}" width="10" height="10" fill="{colour}"/>')
        parts.append(svg_text(x + 14, y, name, size=11))
        x += 40 + 7 * len(name)
    return parts


def any_failed(res):
    return (any(s.error for s in res.samples) or any(lr.run.error for lr in res.latency)
            or bool(res.memory and res.memory.error))


# ---- all of it ------------------------------------------------------------------------

def write_all(out_dir, res):
    os.makedirs(out_dir, exist_ok=True)
    summaries = summarize(res.samples)
    ratio_table = ratios(summaries, res.contenders, res.config.jobs, res.config.widths,
                         res.config.totals)
    text = markdown(res, summaries, ratio_table)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    write_csv(os.path.join(out_dir, "results.csv"), res, ratio_table)
    with open(os.path.join(out_dir, "chart.svg"), "w") as f:
        f.write(svg_chart(res, summaries))
    return text
