"""Shared helpers for the behaviour tests: they drive the real cellblock binary."""
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _build_file(name: str) -> Path:
    """A file of the build tree the cellblock binary comes from."""
    return _binary().parent / name


def _binary() -> Path:
    path = Path(os.environ.get("CELLBLOCK", REPO / "build" / "cellblock"))
    if not path.exists():
        pytest.exit(f"cellblock binary not found at {path}; build first (./dev build)")
    return path


@dataclass
class Run:
    """One finished `cellblock run`: exit status, output, and the parsed JSON result."""

    returncode: int
    stdout: str
    stderr: str
    result: dict

    @property
    def status(self) -> str:
        return self.result.get("status")


class Cellblock:
    """Runs cellblock as root or as an unprivileged user (uid 65534)."""

    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.workdir = workdir

    def command(self, args, user=None):
        cmd = [str(self.binary), *args]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *cmd]
        return cmd

    def run(self, *args, policy=(), user=None, input=None, timeout=60, env=None) -> Run:
        """`cellblock run POLICY... -- ARGS...`, with the result read from a file."""
        fd, result_path = tempfile.mkstemp(prefix="result-", suffix=".json", dir=self.workdir)
        os.close(fd)
        os.chmod(result_path, 0o666)
        try:
            cmd = self.command(["run", "--result", result_path, *policy, "--", *args], user)
            p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                               timeout=timeout, env=env if env is not None else {"PATH": os.environ["PATH"]})
            text = Path(result_path).read_text()
            result = json.loads(text) if text.strip() else {}
            return Run(p.returncode, p.stdout, p.stderr, result)
        finally:
            os.unlink(result_path)

    def raw(self, *args, user=None, input=None, timeout=60) -> subprocess.CompletedProcess:
        """cellblock with exactly these arguments."""
        return subprocess.run(self.command(list(args), user), input=input, capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture(scope="session")
def workdir():
    """A scratch directory every test user can reach."""
    d = Path(tempfile.mkdtemp(prefix="cellblock-tests-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def cb(workdir):
    """cellblock from a world-readable copy, so that an unprivileged user can run it too."""
    binary = workdir / "cellblock"
    shutil.copy2(_binary(), binary)
    binary.chmod(0o755)
    return Cellblock(binary, workdir)


@pytest.fixture(scope="session")
def stress(workdir):
    """The many-cells driver (tests/stress/cells.c), runnable by any user."""
    binary = workdir / "cellblock-stress"
    shutil.copy2(_build_file("tests/stress/cellblock-stress"), binary)
    binary.chmod(0o755)
    return binary


@pytest.fixture(scope="session")
def example_client(workdir):
    """docs/client.c, built, runnable by any user."""
    binary = workdir / "cellblock-example-client"
    shutil.copy2(_build_file("cellblock-example-client"), binary)
    binary.chmod(0o755)
    return binary


def cellblock_cgroups(include_live=False):
    """cgroup directories cellblock made that still exist, in any hierarchy.

    A directory belongs to the supervisor whose pid it is named after; while
    that process lives the directory is legitimately there, so by default only
    those of supervisors that are gone count.
    """
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            owner = d.removeprefix("cellblock-").split(".")[0]
            if d.startswith("cellblock-") and (include_live or not Path(f"/proc/{owner}").exists()):
                found.append(os.path.join(root, d))
    return found


@pytest.fixture(autouse=True)
def no_leftover_cgroups():
    """A cgroup left behind by a supervisor that has exited is a bug."""
    yield
    left = []
    for _ in range(100):
        left = cellblock_cgroups()
        if not left:
            break
        time.sleep(0.05)
    assert left == [], f"leftover cgroups: {left}"


@pytest.fixture(params=["root", "rootless"])
def user(request):
    """Run a test both as root and as an unprivileged user."""
    return None if request.param == "root" else NOBODY


@pytest.fixture
def scratch(workdir):
    """A fresh directory under workdir, writable by everyone, removed afterwards."""
    d = Path(tempfile.mkdtemp(dir=workdir))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(cmd, **kw) -> subprocess.CompletedProcess:
    """Run a control command as an unprivileged user, outside any cell."""
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "--", *cmd], capture_output=True, text=True, timeout=60, **kw)
