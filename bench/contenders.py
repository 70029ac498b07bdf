"""What is measured: the jobs, and the contenders that each do a job.

Every contender is a command line that starts TOTAL processes with at most
WIDTH alive at once and prints "elapsed SECONDS" (cellblock-driver or
pyworker.py). Command-line sandboxes are started by cellblock-driver's
posix_spawn mode, so they pay the same launcher cost as the bare
posix_spawn contender.
"""
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
PYTHON = "/usr/bin/python3"

JOBS = {
    "true": ["/bin/true"],
    "python": [PYTHON, "-c", "pass"],
}
JOB_TITLES = {"true": "start /bin/true and wait", "python": "run python3 -c pass"}

CELL_LIMITS = ["--memory", "256M", "--pids", "64"]
# what each cell runs while the server's memory is measured
HOLD_PROGRAM = ["/bin/sleep", "60"]
HOLD_TIMEOUT_S = "120"


@dataclass
class Env:
    """Where the tools are, and the running server (socket and key), if any."""
    build_dir: str
    socket: Optional[str] = None
    key_file: Optional[str] = None

    @property
    def driver(self):
        return os.path.join(self.build_dir, "bench", "cellblock-driver")

    @property
    def cellblock(self):
        return os.path.join(self.build_dir, "cellblock")

    def server_args(self):
        return ["--socket", self.socket, "--key-file", self.key_file]


@dataclass
class Contender:
    key: str
    label: str
    # the command for (env, program, width, total, extra options of the driver)
    command: Callable[..., list]
    # returns None when usable, else why not
    missing: Callable[[Env], Optional[str]]
    group: str  # "limit" (of the machine), "peer" or "cellblock"
    # False: PROGRAM is not run, so one measurement stands for every job
    runs_program: bool = True
    latency: bool = False  # also measured one at a time


def host_root_layout():
    """bwrap arguments mirroring the host's /bin, /lib*, /sbin: symlinks into
    /usr where the host has them, read-only binds where it has directories."""
    args = []
    for name in sorted(os.listdir("/")):
        if not (name in ("bin", "sbin") or name.startswith("lib")):
            continue
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def bwrap_prefix():
    return ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
            *host_root_layout(), "--proc", "/proc", "--dev", "/dev"]


# ---- command builders --------------------------------------------------

def command_line(head, prefix=lambda env: [], server=False, extra=()):
    """head(env) is the launcher, extra its own options; prefix(env) goes before PROGRAM."""
    def command(env, program, width, total, options=()):
        argv = [*head(env), "--width", str(width), "--total", str(total), *extra, *options]
        if server:
            argv += env.server_args()
        return argv + ["--", *prefix(env), *program]
    return command


def driver_command(mode, prefix=lambda env: [], server=False, extra=()):
    return command_line(lambda env: [env.driver, "--mode", mode], prefix, server, extra)


def pyworker_command(kind, server=False):
    return command_line(lambda env: [PYTHON, os.path.join(BENCH, "pyworker.py"), "--kind", kind],
                        server=server)


# ---- availability ------------------------------------------------------

def first_missing(*checks):
    def missing(env):
        return next((why for why in (check(env) for check in checks) if why), None)
    return missing


def need_file(describe, path_of, mode=os.X_OK):
    def check(env):
        path = path_of(env)
        return None if os.access(path, mode) else f"{describe} not found at {path}"
    return check


def need_program(name):
    return lambda env: None if shutil.which(name) else f"{name} is not installed"


def need_server(env):
    return None if env.socket else "the cellblock server is not running"


def need_start_method(method):
    return lambda env: (None if method in multiprocessing.get_all_start_methods()
                        else f"start method {method} is not available")


need_driver = need_file("cellblock-driver (build it: ninja -C build)", lambda env: env.driver)
need_cellblock = need_file("cellblock (build it: ninja -C build)", lambda env: env.cellblock)
need_python = need_file("python3", lambda env: PYTHON)
need_client_py = need_file("docs/client.py", lambda env: os.path.join(REPO, "docs", "client.py"),
                           os.R_OK)


def multiprocessing_contender(method):
    return Contender(
        f"mp-{method}", f"multiprocessing {method} (no-op function)",
        pyworker_command(f"mp-{method}"),
        first_missing(need_python, need_start_method(method)),
        "peer", runs_program=False)


CONTENDERS = [
    Contender("fork", "fork+_exit (C, floor)", driver_command("fork"), need_driver, "limit",
              runs_program=False),
    Contender("posix_spawn", "posix_spawn (C, no sandbox)", driver_command("posix_spawn"),
              need_driver, "limit", latency=True),
    Contender("bwrap", "bwrap --unshare-all",
              driver_command("posix_spawn", lambda env: bwrap_prefix()),
              first_missing(need_driver, need_program("bwrap")), "peer", latency=True),
    Contender("unshare", "unshare -Urpf",
              driver_command("posix_spawn", lambda env: ["unshare", "-Urpf"]),
              first_missing(need_driver, need_program("unshare")), "peer"),
    multiprocessing_contender("fork"),
    multiprocessing_contender("forkserver"),
    multiprocessing_contender("spawn"),
    Contender("cellblock-run", "cellblock run",
              driver_command("posix_spawn",
                             lambda env: [env.cellblock, "run", *CELL_LIMITS, "--"]),
              first_missing(need_driver, need_cellblock), "cellblock"),
    Contender("serve-c", "cellblock serve, C client", driver_command("cellblock", server=True),
              first_missing(need_driver, need_server), "cellblock", latency=True),
    Contender("serve-c-shared-net", "cellblock serve, C client, net none-shared",
              driver_command("cellblock", server=True, extra=("--net", "none-shared")),
              first_missing(need_driver, need_server), "cellblock", latency=True),
    Contender("serve-py", "cellblock serve, Python client",
              pyworker_command("client", server=True),
              first_missing(need_python, need_client_py, need_server), "cellblock"),
]

def ratio_pairs(contenders):
    """(numerator, denominator) keys: each cellblock contender against each limit and peer."""
    ours = [c.key for c in contenders if c.group == "cellblock"]
    theirs = [c.key for c in contenders if c.group != "cellblock"]
    return [(n, d) for n in ours for d in theirs]


def by_key(key):
    return next(c for c in CONTENDERS if c.key == key)
