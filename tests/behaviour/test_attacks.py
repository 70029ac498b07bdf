"""Attacks from inside a cell: each one must fail, with the precise refusal.

Attacks run as root and rootless (the `user` fixture) wherever that applies.
Where it can be shown without harm to the host, a control shows the same
action working without the protection that stops it: a cell with the filter
off (`--seccomp none --unsafe`) or with the host's network, a throwaway
namespace, or the unprivileged user outside any cell.  So no test passes
merely because the attack itself was broken.

The attacks are in attacks/probe.py: `probe.py NAME ARG...` prints "ok ..."
when the attempt worked, or the name of the errno the kernel answered.
"""
import json
import os
import pty
import re
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import NOBODY, Run, as_nobody

ATTACKS = Path(__file__).parent / "attacks"
PYTHON = "/usr/bin/python3"
PROBE = ("python3", "/attacks/probe.py")  # as the cell sees it
UNSAFE = ["--seccomp", "none", "--unsafe"]
CELL_UID = "1000"
HOST_ID_BASE = 0x70000000
SECRET_VAR = "CELLBLOCK_TEST_SECRET"

# ---------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def attacks(workdir):
    """The attack helpers in workdir/attacks, readable by every user and cell."""
    d = workdir / "attacks"
    d.mkdir()
    shutil.copy(ATTACKS / "probe.py", d / "probe.py")
    subprocess.run(["gcc", "-O2", "-o", str(d / "euid"), str(ATTACKS / "euid.c")], check=True)
    for path, mode in ((d, 0o755), (d / "probe.py", 0o644), (d / "euid", 0o755)):
        path.chmod(mode)
    return d


@pytest.fixture(scope="session")
def landlock_abi(cb):
    return json.loads(cb.raw("check", "--json").stdout)["landlock_abi"]


def probe(cb, attacks, name, *args, user=None, policy=(), env=None) -> Run:
    """One attack of probe.py, in a cell."""
    return cb.run(*PROBE, name, *map(str, args), user=user, env=env,
                  policy=["--ro-bind", f"{attacks}:/attacks", *policy])


def probe_command(attacks, name, *args, policy=()):
    """`cellblock run` arguments for one attack, for callers that start cellblock themselves."""
    return ["run", "--ro-bind", f"{attacks}:/attacks", *policy, "--", *PROBE, name,
            *map(str, args)]


def answer(run: Run) -> str:
    """What the probe printed; it must have ended normally to print anything meaningful."""
    assert run.status == "exited", (run.result, run.stderr)
    return run.stdout.strip()


def probe_outside(attacks, name, *args, wrap=()) -> str:
    """A control: one attack as the unprivileged user, outside any cell (inside `wrap`)."""
    p = as_nobody([*wrap, PYTHON, str(attacks / "probe.py"), name, *map(str, args)])
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture
def root_secret():
    """A file only root can read, under /root; removed afterwards."""
    path = Path("/root") / f"cellblock-secret-{secrets.token_hex(6)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, f"secret {secrets.token_hex(8)}\n".encode())
    os.close(fd)
    yield path
    path.unlink()


@pytest.fixture
def host_sleeper():
    """A host process of the unprivileged user: a rootless cell's own host uid."""
    proc = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                             "--clear-groups", "--", "sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def host_listener():
    """A TCP listener on the host's loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        s.settimeout(5)
        yield s


@pytest.fixture
def host_abstract_socket():
    """A listening abstract Unix socket of the host; its name without the leading NUL."""
    name = f"cellblock-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind("\0" + name)
        s.listen(8)
        yield name


@pytest.fixture
def setuid_euid(attacks, scratch):
    """A setuid-root copy of attacks/euid (prints its effective uid) in scratch."""
    path = scratch / "euid"
    shutil.copy(attacks / "euid", path)
    os.chown(path, 0, 0)
    path.chmod(0o4755)
    return path


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["/etc/shadow", "root-secret"])
def test_read_host_secret_not_in_view(cb, user, attacks, root_secret, which):
    """/etc/shadow and files under /root do not exist in the cell; root reads them outside."""
    path = root_secret if which == "root-secret" else Path(which)
    assert answer(probe(cb, attacks, "read", path, user=user)) == "ENOENT"
    assert path.read_bytes()  # control: there, and readable by root


@pytest.mark.parametrize("which", ["/etc/shadow", "root-secret"])
def test_read_bound_root_only_file(cb, user, attacks, root_secret, which):
    """Even bound into the cell, a root-only file stays unreadable: the cell is not host root."""
    path = root_secret if which == "root-secret" else Path(which)
    r = probe(cb, attacks, "read", "/secret", user=user, policy=["--ro-bind", f"{path}:/secret"])
    if user == NOBODY and which == "root-secret":
        # bind sources are looked up as the caller, who cannot search /root
        assert r.status == "setup-failed"
        assert r.result["error"]["step"] == "mount-sources"
        assert r.result["error"]["errno"] == "EACCES"
    else:
        assert answer(r) == "EACCES"


@pytest.mark.parametrize("path, refusal", [
    ("/x", "EROFS"),
    ("/etc/x", "EROFS"),
    ("/usr/x", "EROFS"),
    ("/usr/lib/x", "EROFS"),
    ("/dev/x", "EROFS"),  # /dev is a tmpfs made read-only once populated
    ("/proc/sys/kernel/hostname", "EACCES"),
    ("/proc/sysrq-trigger", "EACCES" if Path("/proc/sysrq-trigger").exists() else "ENOENT"),
])
def test_write_outside_writable_binds(cb, user, attacks, path, refusal):
    """Nothing outside /tmp, /dev/shm and writable binds can be written."""
    assert answer(probe(cb, attacks, "write", path, user=user)) == refusal


@pytest.mark.parametrize("bind, outcome", [("--ro-bind", "EROFS"), ("--bind", "ok")])
def test_write_into_bound_dir(cb, user, attacks, scratch, bind, outcome):
    """A read-only bind refuses writes; control: the same directory bound writable takes them."""
    r = probe(cb, attacks, "write", "/data/x", user=user, policy=[bind, f"{scratch}:/data"])
    assert answer(r) == outcome
    assert (scratch / "x").exists() == (outcome == "ok")


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

PID_LINES = "^(Tgid|Pid|PPid|TracerPid|NStgid|NSpid|NSpgid|NSsid):"


def test_list_processes_shows_only_the_cell(cb, user):
    """ps and /proc show the cell's own few processes: neither the supervisor nor this runner."""
    supervisor = subprocess.Popen(
        cb.command(["run", "--", "sh", "-c",
                    f"ps -eo pid=,ppid=,pgid=,sid=; grep -hE '{PID_LINES}' /proc/[0-9]*/status"],
                   user), stdout=subprocess.PIPE, text=True)
    out, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0
    numbers = {int(n) for n in re.findall(r"\b\d+\b", out)}
    assert numbers and max(numbers) < 50, out
    assert supervisor.pid not in numbers
    assert os.getpid() not in numbers


def _children(pid):
    """Host pids whose parent is pid."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if re.search(rf"^PPid:\s+{pid}$", status.read_text(), re.M):
                found.append(int(status.parent.name))
        except OSError:
            pass
    return found


def test_learn_host_pid_from_uid_map(cb, user):
    """Not even the cell's uid map names a host pid of the cell or its supervisor."""
    command = cb.command(["run", "--", "sh", "-c", "cat /proc/self/uid_map; read x"], user)
    supervisor = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        host_uid = int(supervisor.stdout.readline().split()[1])
        host_pids = [supervisor.pid, *_children(supervisor.pid)]
    finally:
        supervisor.communicate(timeout=30)
    assert host_uid - HOST_ID_BASE not in host_pids


def test_learn_supervisor_from_cgroup_paths(cb, user):
    """/proc/self/cgroup is rooted at the cell's own groups in every hierarchy: it names
    neither the supervisor's pid nor how many cells it has started."""
    r = cb.run("cat", "/proc/self/cgroup", policy=["--memory", "64M", "--pids", "16"], user=user)
    assert r.returncode == 0, r.stderr
    paths = [line.split(":", 2)[2] for line in r.stdout.splitlines()]
    assert paths and all(path == "/" for path in paths), r.stdout


@pytest.mark.parametrize("target", ["sleeper", "runner"])
def test_kill_host_pid(cb, user, attacks, host_sleeper, target):
    """SIGKILL to a host pid number finds no such process; the target lives on."""
    pid = host_sleeper.pid if target == "sleeper" else os.getpid()
    assert answer(probe(cb, attacks, "kill", pid, signal.SIGKILL, user=user)) == "ESRCH"
    assert host_sleeper.poll() is None


def test_kill_every_process_it_may_signal(cb, user, attacks, host_sleeper):
    """kill(-1, SIGKILL) reaches nothing outside the cell, even a host process of the same uid."""
    assert answer(probe(cb, attacks, "kill", -1, signal.SIGKILL, user=user)) == "ESRCH"
    assert host_sleeper.poll() is None


def test_control_signal_host_process_outside(host_sleeper):
    """Control: outside a cell, the unprivileged user may signal its own process."""
    assert as_nobody(["kill", "-0", str(host_sleeper.pid)]).returncode == 0


def test_kill_9_of_pid_1_inside(cb, user):
    """SIGKILL to pid 1 hits only the cell's init, which the kernel shields: the cell runs on."""
    r = cb.run("sh", "-c", "kill -9 1; echo $?; sleep 0.1; echo alive", user=user)
    assert r.status == "exited"
    assert r.stdout == "0\nalive\n"


@pytest.mark.parametrize("what", [("read", "/proc/1/environ"), ("mem", 1),
                                  ("listdir", "/proc/1/fd")], ids=["environ", "mem", "fd"])
def test_read_cell_init(cb, user, attacks, what):
    """The cell's init (a copy of the supervisor) is opaque: its environ, memory and fds."""
    token = secrets.token_hex(8)
    r = probe(cb, attacks, *what, user=user,
              env={"PATH": os.environ["PATH"], SECRET_VAR: token})
    assert answer(r) == "EACCES"
    assert token not in r.stdout


def test_forge_result_through_init_report_pipe(cb, user, attacks):
    """A fake "exited 0" record on the init's report pipe is refused; the result stays true."""
    r = probe(cb, attacks, "forge_result", user=user)
    assert r.status == "exited"
    assert r.result["exit_code"] == 3
    assert r.stdout.strip() == "EACCES"


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
@pytest.mark.parametrize("policy, rc", [([], 1), (UNSAFE, 0)], ids=["default", "no-filter"])
def test_strace_a_program(cb, user, policy, rc):
    """strace cannot trace; control: with the filter off it can (the filter is what stops it)."""
    r = cb.run("strace", "-o", "/dev/null", "/bin/true", user=user, policy=policy)
    assert r.returncode == rc
    assert ("PTRACE_TRACEME, ...): Operation not permitted" in r.stderr) == (rc != 0)


# ---------------------------------------------------------------------------
# The syscall filter
# ---------------------------------------------------------------------------

# (probe and arguments, the filter's answer, the kernel's own answer in a cell
# without the filter, None where that control is not run).  "ok" there proves
# the probe works; a refusal shows another layer (no capabilities) holds too.
SYSCALLS = [
    (("ptrace_traceme",), "EPERM", "ok"),
    (("ptrace_child",), "EPERM", "ok stopped"),
    (("ptrace_attach", 1), "EPERM", None),  # would stop the cell's own init
    (("process_vm_readv_child",), "EPERM", "ok 7f454c46"),
    (("process_vm_readv", 1), "EPERM", None),
    (("pidfd_getfd",), "EPERM", "ok"),
    (("kcmp",), "EPERM", "ok"),
    (("mount",), "EPERM", "EPERM"),
    (("fsopen",), "EPERM", "EPERM"),
    (("chroot",), "EPERM", "EPERM"),
    (("unshare_user",), "EPERM", "ok"),
    (("unshare_mount",), "EPERM", "EPERM"),
    (("clone_newuser",), "EPERM", "ok"),
    (("setns",), "EPERM", "EINVAL"),
    (("clone3",), "ENOSYS", "EINVAL"),
    (("init_module",), "EPERM", {"EPERM", "ENOSYS"}),  # ENOSYS: a kernel without modules
    (("finit_module",), "EPERM", {"EPERM", "ENOSYS"}),
    (("io_uring_setup",), "EPERM", "ok"),
    (("bpf",), "EPERM", "EPERM"),  # kernel.unprivileged_bpf_disabled
    (("userfaultfd",), "EPERM", "ok"),
    (("perf_event_open",), "EPERM", "ok"),
    (("keyctl",), "EPERM", "ok"),
    (("personality",), "EPERM", "ok"),
    (("name_to_handle_at",), "EPERM", "ok"),
    (("open_by_handle_at",), "EPERM", "EPERM"),
    (("sethostname",), "EPERM", "EPERM"),
    (("reboot",), "EPERM", "EPERM"),
    (("swapon",), "EPERM", "EPERM"),
    (("acct",), "EPERM", "EPERM"),
]


def _syscall_id(row):
    return "-".join(map(str, row[0]))


@pytest.mark.parametrize("args, refusal", [row[:2] for row in SYSCALLS],
                         ids=[_syscall_id(row) for row in SYSCALLS])
def test_forbidden_syscall(cb, user, attacks, args, refusal):
    """Each syscall the default filter forbids answers its errno."""
    assert answer(probe(cb, attacks, *args, user=user)) == refusal


CONTROLLED = [row for row in SYSCALLS if row[2] is not None]


@pytest.mark.parametrize("args, unfiltered", [(row[0], row[2]) for row in CONTROLLED],
                         ids=[_syscall_id(row) for row in CONTROLLED])
def test_control_syscall_without_filter(cb, user, attacks, args, unfiltered):
    """Control: the kernel's own answer to the same call in a cell without the filter."""
    got = answer(probe(cb, attacks, *args, user=user, policy=UNSAFE))
    assert got in unfiltered if isinstance(unfiltered, set) else got == unfiltered


@pytest.mark.parametrize("name, unfiltered", [
    ("x32_syscall", {"ENOSYS", "ok 2"}),  # ENOSYS: a kernel built without the x32 ABI
    ("int80", {"ok 2"}),                  # the i386 getpid: the program is pid 2
], ids=["x32", "int80"])
def test_foreign_abi_syscall(cb, user, attacks, name, unfiltered):
    """A syscall of another ABI kills the program; control: without the filter it is answered."""
    r = probe(cb, attacks, name, user=user)
    assert r.status == "signaled"
    assert r.result["signal"] == signal.SIGSYS
    assert r.returncode == 128 + signal.SIGSYS
    assert answer(probe(cb, attacks, name, user=user, policy=UNSAFE)) in unfiltered


@pytest.mark.parametrize("args, wrap", [
    (("unshare_user",), ()),
    (("clone_newuser",), ()),
    (("mount", "{scratch}"), ("unshare", "-Urm")),
    (("fsopen",), ("unshare", "-Urm")),
], ids=["unshare-user", "clone-newuser", "mount", "fsopen"])
def test_control_namespace_attacks_outside(attacks, scratch, args, wrap):
    """Control: as nobody outside a cell, the namespace and mount attacks work (in a throwaway
    user and mount namespace where they need one), so the refusals above are real."""
    args = [a.format(scratch=scratch) for a in args]
    assert probe_outside(attacks, *args, wrap=wrap) == "ok"


def test_control_unshare_user_outside():
    """Control: as nobody outside a cell, `unshare -Ur` works."""
    p = as_nobody(["unshare", "-Ur", "true"])
    assert p.returncode == 0, p.stderr


def test_cell_hostname_stays_in_the_cell(cb, user):
    """The cell's own hostname (which it may have) never becomes the host's."""
    before = socket.gethostname()
    r = cb.run("hostname", user=user, policy=["--hostname", "attacker"])
    assert r.stdout == "attacker\n"
    assert socket.gethostname() == before


# ---------------------------------------------------------------------------
# Terminal
# ---------------------------------------------------------------------------

def _legacy_tiocsti():
    try:
        return Path("/proc/sys/dev/tty/legacy_tiocsti").read_text().strip() == "1"
    except OSError:
        return True  # kernels before 6.2 always allow it


@pytest.mark.parametrize("name, policy, outcome", [
    ("tiocsti", [], "EPERM"),
    ("tioclinux", [], "EPERM"),
    # Controls, without the filter: the program makes the terminal its controlling
    # tty (setsid, TIOCSCTTY) and the injected byte comes back on its stdin.
    ("tiocsti", UNSAFE, "ok x" if _legacy_tiocsti() else "EIO"),
    ("tioclinux", UNSAFE, "ENOTTY"),  # a pty is not a virtual console
], ids=["tiocsti", "tioclinux", "tiocsti-no-filter", "tioclinux-no-filter"])
def test_inject_keystrokes_into_terminal(cb, user, attacks, name, policy, outcome):
    """TIOCSTI and TIOCLINUX on a terminal given as stdin are refused by the filter."""
    command = cb.command(probe_command(attacks, name, policy=[*policy, "--timeout", "10"]), user)
    master, slave = pty.openpty()
    try:
        p = subprocess.run(command, stdin=slave, capture_output=True, text=True, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    assert p.stdout.strip() == outcome, p.stderr


# ---------------------------------------------------------------------------
# Environment and file descriptors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [("env",), (*PROBE, "read", "/proc/self/environ")],
                         ids=["env", "proc-self-environ"])
def test_read_host_environment(cb, user, attacks, command):
    """A variable of cellblock's environment is not in the program's."""
    token = secrets.token_hex(8)
    r = cb.run(*command, user=user, env={"PATH": os.environ["PATH"], SECRET_VAR: token},
               policy=["--ro-bind", f"{attacks}:/attacks"])
    assert r.status == "exited" and r.result["exit_code"] == 0
    assert token not in r.stdout and SECRET_VAR not in r.stdout


@pytest.mark.parametrize("what, outcome", [
    (("listdir", "/proc/self/fd"), "ok 0 1 2 3"),  # stdio, and the fd listing the directory
    (("read", "/proc/self/fd/{fd}"), "ENOENT"),
], ids=["list", "read"])
def test_reach_supervisor_fd(cb, user, attacks, root_secret, what, outcome):
    """An fd cellblock holds (here: a root-only secret file) is not in the cell."""
    fd = os.open(root_secret, os.O_RDONLY)
    try:
        args = [a.format(fd=fd) for a in what]
        p = subprocess.run(cb.command(probe_command(attacks, *args), user), pass_fds=(fd,),
                           capture_output=True, text=True, timeout=30)
    finally:
        os.close(fd)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == outcome


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

def _needs_landlock_net(refusal, abi):
    if refusal == "EACCES" and abi < 4:
        pytest.skip("Landlock TCP rules need ABI 4")


NET_REFUSALS = [
    ([], "EAFNOSUPPORT"),                      # the filter: no socket but AF_UNIX
    (UNSAFE, "EACCES"),                        # without it, Landlock: no TCP connect
    (["--net", "loopback"], "ECONNREFUSED"),   # a loopback of the cell's own
]


@pytest.mark.parametrize("policy, refusal", NET_REFUSALS,
                         ids=["none", "none-no-filter", "loopback"])
def test_connect_host_tcp_listener(cb, user, attacks, landlock_abi, host_listener, policy,
                                   refusal):
    """A TCP listener on the host's 127.0.0.1 cannot be reached."""
    _needs_landlock_net(refusal, landlock_abi)
    port = host_listener.getsockname()[1]
    r = probe(cb, attacks, "tcp_connect", "127.0.0.1", port, user=user, policy=policy)
    assert answer(r) == refusal


def test_control_host_tcp_listener_with_host_network(cb, user, attacks, host_listener):
    """Control: with the host's network the same listener is reached."""
    port = host_listener.getsockname()[1]
    r = probe(cb, attacks, "tcp_connect", "127.0.0.1", port, user=user, policy=["--net", "host"])
    assert answer(r) == "ok"
    host_listener.accept()[0].close()


@pytest.mark.parametrize("proto, address, policy, refusal", [
    ("tcp_connect", ("10.255.255.1", 80), [], "EAFNOSUPPORT"),
    ("udp_send", ("1.1.1.1", 53), [], "EAFNOSUPPORT"),
    ("tcp_connect", ("10.255.255.1", 80), UNSAFE, "EACCES"),
    ("udp_send", ("1.1.1.1", 53), UNSAFE, "ENETUNREACH"),  # Landlock has no UDP rule: no route
    ("tcp_connect", ("10.255.255.1", 80), ["--net", "loopback"], "ENETUNREACH"),
    ("udp_send", ("1.1.1.1", 53), ["--net", "loopback"], "ENETUNREACH"),
], ids=["tcp", "udp", "tcp-no-filter", "udp-no-filter", "tcp-loopback", "udp-loopback"])
def test_reach_outside_address(cb, user, attacks, landlock_abi, proto, address, policy, refusal):
    """An outside address fails at once (no socket, Landlock, or no route), never by timeout."""
    _needs_landlock_net(refusal, landlock_abi)
    assert answer(probe(cb, attacks, proto, *address, user=user, policy=policy)) == refusal


@pytest.mark.parametrize("policy, refusal", [
    ([], "ECONNREFUSED"),                      # another network namespace: another name space
    (["--net", "host"], "EPERM"),              # same namespace: Landlock scoping
    (["--net", "host", *UNSAFE], "EPERM"),     # ... which the filter has no part in
], ids=["none", "host", "host-no-filter"])
def test_connect_host_abstract_socket(cb, user, attacks, landlock_abi, host_abstract_socket,
                                      policy, refusal):
    """A host abstract Unix socket cannot be reached from the cell."""
    if "host" in policy and landlock_abi < 6:
        pytest.skip("abstract socket scoping needs Landlock ABI 6")
    r = probe(cb, attacks, "abstract_connect", host_abstract_socket, user=user, policy=policy)
    assert answer(r) == refusal


def test_control_host_abstract_socket_outside(attacks, host_abstract_socket):
    """Control: as nobody outside a cell, the same abstract socket is reached."""
    assert probe_outside(attacks, "abstract_connect", host_abstract_socket) == "ok"


# ---------------------------------------------------------------------------
# Privilege
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bind", ["--ro-bind", "--bind"])
def test_run_setuid_root_file(cb, user, setuid_euid, bind):
    """A setuid-root file bound into the cell runs with the cell's uid (nosuid, no_new_privs)."""
    r = cb.run("/s/euid", user=user, policy=[bind, f"{setuid_euid.parent}:/s"])
    assert r.status == "exited", r.stderr
    assert r.stdout.strip() == CELL_UID


def test_control_setuid_root_file_outside(setuid_euid):
    """Control: run by nobody outside a cell, the same file does run as root (it only prints)."""
    assert as_nobody([str(setuid_euid)]).stdout.strip() == "0"
