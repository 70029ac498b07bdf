"""A `cellblock serve` of the benchmark's own, and its memory."""
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass


class ServerError(Exception):
    pass


class Server:
    """Started with a fresh 48-byte key (mode 0600) and a socket in a temporary
    directory; stopped with SIGTERM."""

    def __init__(self, cellblock):
        self.cellblock = cellblock
        self.dir = tempfile.mkdtemp(prefix="spawnbench-")
        self.socket = os.path.join(self.dir, "socket")
        self.key_file = os.path.join(self.dir, "key")
        self.log_path = os.path.join(self.dir, "serve.log")
        self.proc = None

    def start(self, ready_timeout=10):
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(48))
        os.close(fd)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [self.cellblock, "serve", "--socket", self.socket, "--key-file", self.key_file],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while "listening" not in self.log():
            if self.proc.poll() is not None:
                raise ServerError(f"cellblock serve exited with status {self.proc.returncode}: "
                                  f"{self.log().strip()}")
            if time.monotonic() > deadline:
                raise ServerError(f"cellblock serve was not listening after {ready_timeout} s")
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self, timeout=60):
        """SIGTERM, and how it went (None if it exited 0)."""
        problem = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problem = f"cellblock serve did not exit within {timeout} s of SIGTERM; killed"
        if self.proc and self.proc.returncode not in (0, None) and not problem:
            problem = f"cellblock serve exited with status {self.proc.returncode}"
        shutil.rmtree(self.dir, ignore_errors=True)
        return problem


# ---- memory ---------------------------------------------------------------

@dataclass
class Memory:
    rss_kib: int
    pss_kib: int


def _field_kib(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise ServerError(f"no {name} in {path}")


def memory_of(pid):
    return Memory(_field_kib(f"/proc/{pid}/status", "VmRSS"),
                  _field_kib(f"/proc/{pid}/smaps_rollup", "Pss"))


def children_map():
    """parent pid -> child pids, for every process."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                # the command name may hold spaces and parentheses: split after the last ')'
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def descendants(pid, children):
    """pid's descendants, from a children_map()."""
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def pss_sum_kib(pids):
    total = 0
    for pid in pids:
        try:
            total += memory_of(pid).pss_kib
        except (OSError, ServerError):
            pass  # it ended meanwhile
    return total


@dataclass
class HoldResult:
    idle: Memory
    loaded: Memory
    after: Memory
    cells: int
    alive: int = 0             # cells counted while held
    inits_pss_kib: int = 0     # the cells' inits, summed
    programs_pss_kib: int = 0  # every other process inside the cells, summed
    spawn_s: float = 0.0    # to start them all
    teardown_s: float = 0.0  # from closing the connection to the last cell gone
    error: str = None


def _read_line(stream, timeout):
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    return stream.readline() if ready else ""


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def cell_inits(server_pid, children=None):
    """The server's children that are cells: each cell's init is a copy of the
    server (its helpers, such as the cgroup reaper, name themselves)."""
    name, children = _comm(server_pid), children or children_map()
    return [p for p in children.get(server_pid, []) if _comm(p) == name]


def _wait_for_no_cells(server_pid, timeout):
    deadline = time.monotonic() + timeout
    while cell_inits(server_pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def hold_cells(server, driver_command, cells, timeout):
    """The server's memory idle, with `cells` cells alive (started through one
    connection by driver_command), and after closing that connection."""
    idle = memory_of(server.pid)
    t0 = time.monotonic()
    proc = subprocess.Popen(driver_command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc.stdout, timeout)
        if not line.startswith("alive"):
            proc.kill()
            _, err = proc.communicate()
            return HoldResult(idle, idle, idle, cells,
                              error=(err.strip() or f"no cells after {timeout} s"))
        spawn_s = time.monotonic() - t0
        time.sleep(1)  # let the last cells reach their program
        loaded = memory_of(server.pid)
        children = children_map()
        inits = cell_inits(server.pid, children)
        inits_pss = pss_sum_kib(inits)
        programs_pss = pss_sum_kib([q for p in inits for q in descendants(p, children)])
    finally:
        t1 = time.monotonic()
        proc.stdin.close()
        proc.wait(timeout)
    _wait_for_no_cells(server.pid, timeout)
    return HoldResult(idle, loaded, memory_of(server.pid), cells, len(inits), inits_pss,
                      programs_pss, spawn_s, time.monotonic() - t1)
