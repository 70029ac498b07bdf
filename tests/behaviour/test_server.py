"""`cellblock serve` and its clients: the handshake both ways, requests and their
errors, the lifetime of cells and of the server, and what the server keeps to
itself (its memory, its key, its pid)."""
import errno
import glob
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
import traceback
from multiprocessing.connection import AuthenticationError, Client

import pytest

from conftest import NOBODY, REPO, as_nobody
from server_helpers import (NETNS_READY, CHALLENGE, FAILURE, MiB, SHA256_TAG, WELCOME, AuthFailed, Conn,
                            Server, alive, cell_cgroups, children, cmdline, descendants,
                            fd_count, fd_targets, frame, idle_fd_count, live_with_marker, memory_contains,
                            process_table, raw_socket, read_frame_blocking, read_until_eof,
                            server_cgroups, status_field, wait_until)

DOCS = REPO / "docs"
DEBIAN_PYTHON = "/usr/bin/python3"


def _pyenv(minor):
    found = sorted(glob.glob(f"/root/.pyenv/versions/{minor}.*/bin/python3"))
    return found[-1] if found else None


PY312 = _pyenv("3.12")
PY313 = _pyenv("3.13")

INTERPRETERS = [
    pytest.param(DEBIAN_PYTHON, id="debian-python3.11-md5"),
    pytest.param(PY312, id="python3.12-sha256"),
    pytest.param(PY313, id="python3.13-sha256"),
]
SHA256_INTERPRETERS = INTERPRETERS[1:]


def _need(interpreter):
    if interpreter is None or not os.path.exists(interpreter):
        pytest.skip("interpreter not installed here")
    return interpreter


def _version(interpreter):
    out = subprocess.run([interpreter, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=30).stdout.split()
    return tuple(int(x) for x in out)


@pytest.fixture
def serve(cb, workdir):
    """Start servers: serve(*args, user=None, key=None, socket_path=None, wait=True)."""
    started = []

    def start(*args, user=None, key=None, socket_path=None, wait=True):
        server = Server(cb.binary, workdir, args, user=user, key=key, socket_path=socket_path)
        started.append(server)
        return server.start(wait=wait)

    yield start
    problems = []
    for server in started:
        try:
            server.stop()
        except AssertionError as e:
            problems.append(str(e))
        shutil.rmtree(server.dir, ignore_errors=True)
    assert problems == []


def _is_open(sock):
    """The peer has not closed: whatever is readable is drained, no EOF behind it."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return True
            except ConnectionResetError:
                return False
            if not data:
                return False
    finally:
        sock.settimeout(timeout)


def _host_uid(pid):
    return int(status_field(pid, "Uid")[0])


# ---------------------------------------------------------------------------
# The Python standard-library client
# ---------------------------------------------------------------------------

STDLIB_PROBE = r'''
import json, os, select, signal, sys
sys.path.insert(0, sys.argv[1])
from client import CellblockClient
from multiprocessing.connection import Client

path, key_file = sys.argv[2], sys.argv[3]
with open(key_file, "rb") as f:
    key = f.read()
out = {"version": list(sys.version_info[:2])}

c = CellblockClient(path, key)
r, w = os.pipe()
pid, pidfd = c.spawn("c1", ["sh", "-c", "echo from-cell; exit 5"], stdio=(None, w, None))
os.close(w)
out["pid"] = pid
with open(f"/proc/self/fdinfo/{pidfd}") as f:
    out["fdinfo_pid"] = [int(l.split()[1]) for l in f if l.startswith("Pid:")]
out["result"] = c.wait("c1")
out["output"] = os.read(r, 100).decode()
out["readable_after_exit"] = bool(select.select([pidfd], [], [], 5)[0])
os.close(pidfd)

pid2, pidfd2 = c.spawn("c2", ["sleep", "30"], stdio=(None, None, None))
out["readable_while_running"] = bool(select.select([pidfd2], [], [], 0.2)[0])
signal.pidfd_send_signal(pidfd2, signal.SIGKILL)
out["readable_after_kill"] = bool(select.select([pidfd2], [], [], 5)[0])
out["result2"] = c.wait("c2")
os.close(pidfd2)

raw = Client(path, family="AF_UNIX", authkey=key)
raw.send_bytes(json.dumps({"op": "spawn", "id": 7, "argv": ["true"]}).encode())
out["raw_reply"] = json.loads(raw.recv_bytes())
out["raw_event"] = json.loads(raw.recv_bytes())
raw.send_bytes(b'{"op": "ping", "id": "p"}')
out["raw_pong"] = json.loads(raw.recv_bytes())
raw.close()
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def stdlib_probe(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "stdlib_probe.py"
    path.write_text(STDLIB_PROBE)
    return path


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_stdlib_client_spawns_and_gets_pid_pidfd_and_result(serve, stdlib_probe, interpreter):
    interpreter = _need(interpreter)
    server = serve()
    p = subprocess.run([interpreter, str(stdlib_probe), str(DOCS), server.socket,
                        str(server.key_file)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["pid"] > 1 and out["fdinfo_pid"] == [out["pid"]]   # a pidfd of that very pid
    assert out["result"]["status"] == "exited" and out["result"]["exit_code"] == 5
    assert out["output"] == "from-cell\n"
    assert out["readable_after_exit"] is True
    assert out["readable_while_running"] is False
    assert out["readable_after_kill"] is True
    assert out["result2"]["status"] != "exited"
    assert out["raw_reply"]["id"] == 7 and out["raw_reply"]["ok"] is True
    assert out["raw_event"]["id"] == 7 and out["raw_event"]["event"] == "exit"
    assert out["raw_event"]["result"]["exit_code"] == 0
    assert out["raw_pong"] == {"id": "p", "ok": True, "pong": True}


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_client_py_as_a_script(serve, interpreter):
    interpreter = _need(interpreter)
    server = serve()
    p = subprocess.run([interpreter, str(DOCS / "client.py"), server.socket,
                        str(server.key_file), "sh", "-c", "echo hi from the cell; exit 3"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.stdout == "hi from the cell\n"
    assert p.returncode == 3
    result = json.loads(p.stderr.strip().splitlines()[-1])
    assert result["status"] == "exited" and result["exit_code"] == 3


def test_c_example_client(serve, example_client):
    """docs/client.c: the documented C client runs a cell with its own stdio."""
    server = serve("--require-sha256")
    p = subprocess.run([str(example_client), server.socket, str(server.key_file), "sh", "-c",
                        "cat; echo from the cell; exit 4"], input="from stdin\n",
                       capture_output=True, text=True, timeout=60)
    assert p.stdout == "from stdin\nfrom the cell\n"
    assert p.returncode == 4
    result = json.loads(p.stderr.strip().splitlines()[-1])
    assert result["status"] == "exited" and result["exit_code"] == 4
    assert result["limits"]["memory"] in ("cgroup", "rlimit")


def test_require_sha256_refuses_the_md5_client(serve, stdlib_probe):
    assert _version(DEBIAN_PYTHON) < (3, 12), "the Debian python3 is expected to speak HMAC-MD5"
    server = serve("--require-sha256")
    with pytest.raises(AuthenticationError):
        Client(server.socket, family="AF_UNIX", authkey=server.key)
    p = subprocess.run([DEBIAN_PYTHON, str(stdlib_probe), str(DOCS), server.socket,
                        str(server.key_file)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "AuthenticationError" in p.stderr
    assert "SHA-256 required" in server.log()
    with server.connect() as conn:          # a SHA-256 client is still served
        assert conn.ping()


@pytest.mark.parametrize("interpreter", SHA256_INTERPRETERS)
def test_require_sha256_serves_the_sha256_client(serve, stdlib_probe, interpreter):
    interpreter = _need(interpreter)
    server = serve("--require-sha256")
    p = subprocess.run([interpreter, str(stdlib_probe), str(DOCS), server.socket,
                        str(server.key_file)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["result"]["exit_code"] == 5


# ---------------------------------------------------------------------------
# The handshake, from the server's side
# ---------------------------------------------------------------------------

def test_wrong_key_is_refused_and_the_server_goes_on(serve):
    server = serve()
    wrong = os.urandom(48)
    with pytest.raises(AuthenticationError):
        Client(server.socket, family="AF_UNIX", authkey=wrong)       # HMAC-MD5 (3.11)
    with pytest.raises(AuthFailed):
        Conn(server.socket, wrong)                                    # HMAC-SHA256
    assert "wrong key" in server.log()
    assert server.proc.poll() is None
    good = Client(server.socket, family="AF_UNIX", authkey=server.key)
    try:
        good.send_bytes(b'{"op": "ping", "id": 1}')
        assert json.loads(good.recv_bytes()) == {"id": 1, "ok": True, "pong": True}
    finally:
        good.close()


def test_a_client_that_does_not_know_the_key_gets_no_answer_to_its_challenge(serve):
    """The server only answers the client's challenge after the client proved the key."""
    server = serve()
    sock = raw_socket(server.socket)
    try:
        challenge = read_frame_blocking(sock)
        assert challenge.startswith(CHALLENGE + SHA256_TAG) and len(challenge) == 11 + 8 + 40
        sock.sendall(frame(CHALLENGE + SHA256_TAG + os.urandom(40)))   # a challenge, not a MAC
        assert read_until_eof(sock) == frame(FAILURE)
    finally:
        sock.close()


def test_stalled_and_garbage_handshakes_are_dropped_while_others_are_served(serve):
    server = serve("--auth-timeout", "0.5")
    hostile, t0 = {}, time.monotonic()
    try:
        hostile["silent"] = raw_socket(server.socket)
        hostile["reads-only"] = raw_socket(server.socket)
        read_frame_blocking(hostile["reads-only"])
        hostile["partial-frame"] = raw_socket(server.socket)
        read_frame_blocking(hostile["partial-frame"])
        hostile["partial-frame"].sendall(struct.pack("!I", 56) + b"{sha256}")
        hostile["stops-after-welcome"] = s = raw_socket(server.socket)
        msg = read_frame_blocking(s)[len(CHALLENGE):]
        s.sendall(frame(SHA256_TAG + hmac.new(server.key, msg, hashlib.sha256).digest()))
        assert read_frame_blocking(s) == WELCOME          # and then it never challenges back
        # dropped at once: a wrong MAC, a frame too large for a handshake, fds too early
        # and a request sent without any handshake
        fast = {name: raw_socket(server.socket)
                for name in ("garbage", "oversized", "fds-too-early", "no-handshake")}
        fast["garbage"].sendall(frame(os.urandom(16)))
        fast["no-handshake"].sendall(frame(json.dumps(
            {"op": "spawn", "id": 1, "argv": ["sleep", "1000.3131"]}).encode()))
        fast["oversized"].sendall(struct.pack("!I", 100000) + os.urandom(1000))
        r, w = os.pipe()
        socket.send_fds(fast["fds-too-early"], [frame(b"{sha256}" + bytes(32))], [r])
        os.close(r)
        os.close(w)
        for name, sock in fast.items():
            data = read_until_eof(sock, timeout=0.4)
            assert data[4:].startswith(CHALLENGE + SHA256_TAG), name
            assert data[63:] in (b"", frame(FAILURE)), (name, data)
            sock.close()
        assert not live_with_marker("1000.3131")

        # meanwhile a good client is served at once
        start = time.monotonic()
        with server.connect() as conn:
            conn.spawn_ok("t", ["true"])
            assert conn.wait("t")["exit_code"] == 0
            assert conn.ping()
        took = time.monotonic() - start
        assert took < 0.4, f"a good client waited {took:.2f}s"
        assert all(_is_open(s) for s in hostile.values()), "stallers dropped too early"

        # the stallers are gone once the deadline has passed
        for name, sock in hostile.items():
            read_until_eof(sock, timeout=2.0)
            dropped = time.monotonic() - t0
            assert dropped >= 0.45, f"{name} dropped after only {dropped:.2f}s"
        assert time.monotonic() - t0 < 2.0
        with server.connect() as conn:
            assert conn.ping()
    finally:
        for sock in hostile.values():
            sock.close()


def test_a_handshake_finished_in_time_is_not_dropped_while_the_server_is_busy(serve):
    server = serve("--auth-timeout", "0.3")
    marker = "0.31357"
    late = server.connect(handshake=False)
    busy = server.connect()
    try:
        late.handshake(send_welcome=False)      # everything but its final #WELCOME#
        batch = b"".join(frame(json.dumps(_spawn(id=i, argv=["sleep", marker])).encode())
                         for i in range(250))
        busy.sock.sendall(batch)                # about a second of spawning
        time.sleep(0.05)                        # the server is at it now
        try:
            late.send_frame(WELCOME)            # well within 0.3 s of its connect
            assert late.ping()
        except ConnectionError:
            pytest.fail("dropped although its handshake was complete in time")
    finally:
        late.close()
        busy.close()
        assert wait_until(lambda: not live_with_marker(marker), 10.0)


# ---------------------------------------------------------------------------
# The C client checks the server
# ---------------------------------------------------------------------------

class FakeServer(threading.Thread):
    """A listener that knows a different key, speaking the handshake up to step 5."""

    def __init__(self, path, key, mode):
        super().__init__(daemon=True)
        self.key, self.mode = key, mode
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(20)
        self.answer = self.challenge = None
        self.after = None
        self.error = None

    def run(self):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            with conn:
                if self.mode == "md5-challenge":
                    conn.sendall(frame(CHALLENGE + os.urandom(20)))
                    self.after = read_until_eof(conn, 10)
                    return
                mine = SHA256_TAG + os.urandom(40)
                conn.sendall(frame(CHALLENGE + mine))
                self.answer = (mine, read_frame_blocking(conn))
                conn.sendall(frame(WELCOME))              # accept whatever came
                self.challenge = read_frame_blocking(conn)
                theirs = self.challenge[len(CHALLENGE):]
                if self.mode == "wrong-mac":
                    mac = SHA256_TAG + hmac.new(self.key, theirs, hashlib.sha256).digest()
                else:  # "md5-answer": a bare HMAC-MD5, even of the right key, is a downgrade
                    mac = hmac.new(self.real_key, theirs, hashlib.md5).digest()
                conn.sendall(frame(mac))
                self.after = read_until_eof(conn, 10)
        except Exception as e:   # reported by the test
            self.error = e
        finally:
            self.listener.close()


@pytest.mark.parametrize("mode", ["wrong-mac", "md5-answer", "md5-challenge"])
def test_c_client_refuses_a_server_without_the_key(cb, scratch, mode):
    key = os.urandom(48)
    key_file = scratch / "key"
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    path = str(scratch / "fake.sock")
    fake = FakeServer(path, os.urandom(48), mode)
    fake.real_key = key
    fake.start()
    p = cb.raw("spawn", "--socket", path, "--key-file", str(key_file), "--", "true", timeout=30)
    fake.join(15)
    assert not fake.is_alive() and fake.error is None, fake.error
    assert p.returncode != 0
    assert "authentication" in p.stderr.lower(), p.stderr
    # nothing but a refusal after the handshake: no request frame
    assert fake.after in (b"", frame(FAILURE)), fake.after
    if mode != "md5-challenge":
        mine, answer = fake.answer      # the client did answer correctly with its own key
        assert answer == SHA256_TAG + hmac.new(key, mine, hashlib.sha256).digest()
        assert fake.challenge.startswith(CHALLENGE + SHA256_TAG)


def test_c_client_works_with_the_real_server(cb, serve):
    server = serve()
    p = cb.raw("spawn", "--socket", server.socket, "--key-file", str(server.key_file), "--",
               "sh", "-c", "echo via-c-client; exit 4", timeout=30)
    assert p.stdout == "via-c-client\n"
    assert p.returncode == 4


# ---------------------------------------------------------------------------
# What the server keeps to itself
# ---------------------------------------------------------------------------

MEMORY_PROBE = r'''
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_ATTACH, PTRACE_DETACH, WALL = 16, 17, 0x40000000

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return os.strerror(e.errno) if e.errno else str(e)

def read(path):
    with open(path, "rb") as f:
        f.read(4096)

def mem(pid):
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        with open(f"/proc/{pid}/maps") as f:
            start = int(f.readline().split("-")[0], 16)
        os.pread(fd, 16, start)
    finally:
        os.close(fd)

def ptrace(pid):
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "ptrace")
    os.waitpid(pid, WALL)
    libc.ptrace(PTRACE_DETACH, pid, None, None)

out = {}
for pid in map(int, sys.argv[1:]):
    out[pid] = {"uid": os.getuid(),
                "mem": attempt(lambda: mem(pid)),
                "environ": attempt(lambda: read(f"/proc/{pid}/environ")),
                "maps": attempt(lambda: read(f"/proc/{pid}/maps")),
                "ptrace": attempt(lambda: ptrace(pid))}
print(json.dumps(out))
'''


def _yama_allows_ptrace():
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return f.read().strip() == "0"
    except FileNotFoundError:
        return True


NOBODY_PING = r'''
import sys
from multiprocessing.connection import Client
with open(sys.argv[2], "rb") as f:
    c = Client(sys.argv[1], family="AF_UNIX", authkey=f.read())
c.send_bytes(b'{"op": "ping", "id": 5}')
print(c.recv_bytes().decode())
'''


def test_rootless_server_memory_is_out_of_reach_of_its_own_uid(serve):
    server = serve(user=NOBODY)
    assert _host_uid(server.pid) == NOBODY
    # it is up and serves a client of its uid
    ping = as_nobody([DEBIAN_PYTHON, "-c", NOBODY_PING, server.socket, str(server.key_file)])
    assert json.loads(ping.stdout) == {"id": 5, "ok": True, "pong": True}, ping.stderr
    control = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                "--clear-groups", "--", "sleep", "60"])
    try:
        assert wait_until(lambda: _host_uid(control.pid) == NOBODY and
                          (cmdline(control.pid) or [b""])[0] == b"sleep")
        p = as_nobody([DEBIAN_PYTHON, "-c", MEMORY_PROBE, str(server.pid), str(control.pid)])
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        srv, ctl = out[str(server.pid)], out[str(control.pid)]
        assert srv["uid"] == NOBODY
        for what in ("mem", "environ", "maps", "ptrace"):
            assert srv[what] != "ok", f"{what} of the server: {srv[what]}"
        assert ctl["maps"] == "ok" and ctl["environ"] == "ok" and ctl["mem"] == "ok", ctl
        if _yama_allows_ptrace():
            assert ctl["ptrace"] == "ok", ctl
        assert alive(server.pid) and alive(control.pid)
    finally:
        control.kill()
        control.wait()


def test_rootless_server_starts_cells(serve):
    server = serve(user=NOBODY)
    p = as_nobody([DEBIAN_PYTHON, str(DOCS / "client.py"), server.socket, str(server.key_file),
                   "sh", "-c", "echo rootless cell; exit 6"], stdin=subprocess.DEVNULL)
    assert "spawn-failed" not in p.stderr, p.stderr
    assert p.stdout == "rootless cell\n"
    assert p.returncode == 6


def test_no_cell_holds_the_key(serve):
    key = os.urandom(48)
    server = serve(key=key)
    # what the key could be recovered from: itself, either half, or the HMAC pads
    needles = [key, key[:24], key[24:], bytes(b ^ 0x36 for b in key)[:24],
               bytes(b ^ 0x5c for b in key)[:24]]
    md5_client = Client(server.socket, family="AF_UNIX", authkey=key)   # both handshakes done
    try:
        with server.connect() as conn:
            pid, pidfd = conn.spawn_ok("long", ["sleep", "1000.4242"])
            os.close(pidfd)
            assert wait_until(lambda: children(pid))
            program = children(pid)[0]
            assert memory_contains(server.pid, key) is True    # the scan finds it where it is
            for needle in needles:
                assert memory_contains(pid, needle) is False   # the cell's init, a server copy
                assert memory_contains(program, needle) is False
            assert all(key[:8] not in arg for arg in cmdline(server.pid))
            conn.request({"op": "kill", "id": "long"})
            assert conn.wait("long")["status"] == "killed"
    finally:
        md5_client.close()


def test_no_cell_can_see_the_server(serve):
    server = serve()
    spid = server.pid
    script = (
        "ls /proc; echo ---; "
        "for d in /proc/[0-9]*; do read -r l < $d/stat && echo \"$l\"; done 2>/dev/null; "
        f"echo ---; {{ read -r l < /proc/{spid}/stat && echo \"$l\"; }} 2>/dev/null; "
        f"echo ---; kill -0 {spid} 2>/dev/null && echo signalled"
    )
    r, w = os.pipe()
    with server.connect() as conn:
        conn.spawn_ok("look", ["sh", "-c", script], stdio=[None, 0, 0], fds=[w])
        os.close(w)
        result = conn.wait("look")
    with os.fdopen(r) as f:
        out = f.read()
    listing, stats, server_stat, kill = out.split("---\n")
    pids = {int(x) for x in listing.split() if x.isdigit()}
    parsed = {}
    for line in stats.splitlines():
        pid = int(line.split()[0])
        ppid = int(line[line.rindex(")") + 2:].split()[1])
        parsed[pid] = ppid
    assert 1 in pids and parsed[1] == 0
    # every process the cell sees descends from its own init
    assert all(ppid in parsed or ppid == 0 for ppid in parsed.values()), parsed
    assert max(pids) < 100, pids
    server_comm = proc_comm(spid)
    # the server's pid names nothing there, or one of the cell's own processes
    assert not server_stat.strip() or int(server_stat.split()[0]) in parsed, server_stat
    assert all(f"({server_comm})" not in line or int(line.split()[0]) == 1
               for line in stats.splitlines()), stats
    assert "signalled" not in kill
    assert result["status"] == "exited"


def proc_comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def test_concurrent_cells_have_distinct_host_uids(serve):
    server = serve()
    server_uid = _host_uid(server.pid)
    with server.connect() as a, server.connect() as b:
        pid_a, fd_a = a.spawn_ok("a", ["sleep", "1000.1111"])
        pid_b, fd_b = b.spawn_ok("b", ["sleep", "1000.2222"])
        os.close(fd_a)
        os.close(fd_b)
        assert wait_until(lambda: children(pid_a) and children(pid_b))
        uids_a = {_host_uid(pid_a), _host_uid(children(pid_a)[0])}
        uids_b = {_host_uid(pid_b), _host_uid(children(pid_b)[0])}
        assert not uids_a & uids_b, (uids_a, uids_b)
        assert server_uid not in uids_a | uids_b
        assert 0 not in uids_a | uids_b


# ---------------------------------------------------------------------------
# Lifetime of cells and of the server
# ---------------------------------------------------------------------------

def test_closing_the_connection_kills_its_cells(serve):
    server = serve()
    marker = "1000.5151"
    conn = server.connect()
    try:
        _, pidfd = conn.spawn_ok("s", ["sleep", marker])
        os.close(pidfd)
        assert wait_until(lambda: live_with_marker(marker))
    finally:
        conn.close()
    assert wait_until(lambda: not live_with_marker(marker), 1.0), "cell outlived its connection"
    with server.connect() as again:
        assert again.ping()


def test_detached_cells_survive_the_connection(serve):
    server = serve()
    marker = "1.3737"
    conn = server.connect()
    try:
        _, pidfd = conn.spawn_ok("d", ["sleep", marker], detach=True)
        os.close(pidfd)
        assert wait_until(lambda: live_with_marker(marker))
    finally:
        conn.close()
    time.sleep(0.3)
    assert live_with_marker(marker), "a detached cell died with its connection"
    assert wait_until(lambda: not live_with_marker(marker), 5.0)
    # and the server cleaned up after it
    assert wait_until(lambda: not cell_cgroups(server.pid), 3.0), cell_cgroups(server.pid)
    with server.connect() as again:
        assert again.ping()


def test_sigkill_of_the_server_kills_every_cell_and_leaves_only_the_socket(serve):
    server = serve()
    marker_a, marker_b = "1000.6161", "1000.6262"
    conn = server.connect()
    try:
        conn.spawn_ok("a", ["sleep", marker_a])
        conn.spawn_ok("b", ["sleep", marker_b], detach=True)
        assert wait_until(lambda: live_with_marker(marker_a) and live_with_marker(marker_b))
        family = descendants(server.pid)
        assert len(cell_cgroups(server.pid)) >= 2
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait()
        assert wait_until(lambda: not live_with_marker(marker_a) and
                          not live_with_marker(marker_b), 1.0), "cells outlived the server"
        assert wait_until(lambda: not any(alive(p) for p in family), 3.0), \
            [p for p in family if alive(p)]
        assert wait_until(lambda: server_cgroups(server.pid) == [], 3.0), \
            server_cgroups(server.pid)
    finally:
        conn.close()
    assert os.path.exists(server.socket)
    assert stat.S_ISSOCK(os.lstat(server.socket).st_mode)
    assert sorted(os.listdir(server.dir)) == ["key", "sock", "stderr"]
    # a new server replaces the stale socket
    again = serve(socket_path=server.socket)
    with again.connect() as c:
        c.spawn_ok("t", ["true"])
        assert c.wait("t")["exit_code"] == 0


def test_a_second_server_on_a_live_socket_refuses(serve, cb):
    server = serve()
    second = Server(cb.binary, server.dir.parent, socket_path=server.socket)
    try:
        second.start(wait=False)
        assert second.proc.wait(timeout=10) != 0
        assert "already listening" in second.log()
    finally:
        second.stop()
        shutil.rmtree(second.dir, ignore_errors=True)
    assert stat.S_ISSOCK(os.lstat(server.socket).st_mode)
    with server.connect() as conn:
        assert conn.ping()


def test_a_server_that_cannot_reach_a_live_socket_does_not_replace_it(serve):
    server = serve()
    os.chown(server.dir, NOBODY, NOBODY)      # the second server may create files there
    intruder = serve(user=NOBODY, socket_path=server.socket, wait=False)
    assert wait_until(lambda: intruder.proc.poll() is not None or
                      "listening on" in intruder.log(), 5.0)
    assert os.lstat(server.socket).st_uid == 0, "the live server's socket was replaced"
    assert intruder.proc.poll() not in (None, 0)
    with server.connect() as conn:
        assert conn.ping()


def test_a_regular_file_is_not_replaced(serve, cb, scratch):
    path = scratch / "not-a-socket"
    path.write_text("precious\n")
    server = Server(cb.binary, scratch, socket_path=path)
    try:
        server.start(wait=False)
        assert server.proc.wait(timeout=10) != 0
        assert "not a socket" in server.log()
    finally:
        server.stop()
    assert path.read_text() == "precious\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_kills_cells_removes_the_socket_and_exits_0(serve, sig):
    server = serve()
    marker = "1000.7171"
    conn, idle = server.connect(), server.connect()
    try:
        conn.spawn_ok("a", ["sleep", marker])
        conn.spawn_ok("b", ["sh", "-c", f"sleep {marker} & sleep {marker}"])
        assert wait_until(lambda: len(live_with_marker(marker)) >= 3)
        family = descendants(server.pid)
        os.kill(server.pid, sig)
        assert server.proc.wait(timeout=10) == 0
        assert not live_with_marker(marker)
        assert not os.path.exists(server.socket)
        assert wait_until(lambda: not any(alive(p) for p in family), 3.0)
        assert conn.closed_by_server(5.0) and idle.closed_by_server(5.0)
        assert wait_until(lambda: server_cgroups(server.pid) == [], 3.0)
    finally:
        conn.close()
        idle.close()


def test_sigterm_kills_detached_cells_too(serve):
    server = serve()
    marker = "1000.7272"
    conn = server.connect()
    try:
        conn.spawn_ok("d", ["sleep", marker], detach=True)
        assert wait_until(lambda: live_with_marker(marker))
        os.kill(server.pid, signal.SIGTERM)
        try:
            assert server.proc.wait(timeout=3) == 0
        except subprocess.TimeoutExpired:
            pytest.fail("the server is still waiting for its detached cell 3 s after SIGTERM")
        assert not live_with_marker(marker)
        assert not os.path.exists(server.socket)
    finally:
        conn.close()
        server.stop(signal.SIGKILL)


def test_socket_is_0600_and_not_abstract(serve):
    server = serve()
    st = os.lstat(server.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    with open("/proc/net/unix") as f:
        lines = f.read().splitlines()[1:]
    paths = [line.split()[7] for line in lines if len(line.split()) >= 8]
    assert server.socket in paths
    assert not [p for p in paths if p.startswith("@") and server.dir.name in p]


NOBODY_CONNECT = r'''
import socket, sys, time, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
start = time.monotonic()
s.connect(sys.argv[1])
try:
    data = s.recv(64)
except OSError as e:
    data = repr(e).encode()
print(json.dumps({"data": data.decode("latin-1"), "took": time.monotonic() - start}))
'''


def test_uid_not_allowed_is_dropped_before_any_challenge(serve):
    refusing = serve("--allow-uid", "0")
    welcoming = serve("--allow-uid", "0", "--allow-uid", str(NOBODY))
    for server in (refusing, welcoming):
        os.chmod(server.socket, 0o666)   # so that the uid check itself is what decides
    p = as_nobody([DEBIAN_PYTHON, "-c", NOBODY_CONNECT, refusing.socket])
    out = json.loads(p.stdout)
    assert out["data"] == "" and out["took"] < 1.0, out
    assert f"refused a connection from uid {NOBODY}" in refusing.log()
    p = as_nobody([DEBIAN_PYTHON, "-c", NOBODY_CONNECT, welcoming.socket])
    out = json.loads(p.stdout)
    assert out["data"][4:].startswith("#CHALLENGE#{sha256}"), out
    with refusing.connect() as conn:     # root is still served
        assert conn.ping()


def test_default_allow_list_is_the_servers_uid(serve):
    server = serve()
    os.chmod(server.socket, 0o666)
    p = as_nobody([DEBIAN_PYTHON, "-c", NOBODY_CONNECT, server.socket])
    assert json.loads(p.stdout)["data"] == ""


# ---------------------------------------------------------------------------
# Bad input after the handshake
# ---------------------------------------------------------------------------

def _spawn(**extra):
    req = {"op": "spawn", "id": "job", "argv": ["true"]}
    req.update(extra)
    return req


def _dir_fd():
    return os.open("/", os.O_RDONLY | os.O_DIRECTORY)


def _o_path_fd():
    return os.open("/etc/hostname", os.O_PATH)


def _pipe_read_end():
    r, w = os.pipe()
    os.close(w)
    return r


BAD_REQUESTS = {
    # name: (body, fd makers, code, field, id in the reply)
    "invalid-json": (b'{"op": "spawn", ', [], "invalid-json", "", None),
    "not-an-object": (b'["spawn", "true"]', [], "invalid-request", "", None),
    "missing-op": ({"id": 3}, [], "invalid-request", "op", 3),
    "missing-argv": ({"op": "spawn", "id": "m"}, [], "invalid-request", "argv", "m"),
    "unknown-op": ({"op": "fork", "id": "u"}, [], "unknown-op", "op", "u"),
    "unknown-field": (_spawn(user="root"), [], "unknown-field", "user", "job"),
    "argv-not-a-list": (_spawn(argv="true"), [], "wrong-type", "argv", "job"),
    "argv-empty": (_spawn(argv=[]), [], "wrong-type", "argv", "job"),
    "argv-of-numbers": (_spawn(argv=[1, 2]), [], "wrong-type", "argv", "job"),
    "argv-with-nul": (_spawn(argv=["tr\u0000ue"]), [], "wrong-type", "argv", "job"),
    "argv-program-empty": (_spawn(argv=["", "x"]), [], "wrong-type", "argv", "job"),
    "argv-too-large": (_spawn(argv=["true"] + ["x" * 1023] * 300), [], "limit", "argv", "job"),
    "id-a-list": (_spawn(id=["job"]), [], "wrong-type", "id", None),
    "id-a-float": (_spawn(id=1.5), [], "wrong-type", "id", None),
    "id-too-long": (_spawn(id="x" * 129), [], "wrong-type", "id", None),
    "detach-a-string": (_spawn(detach="yes"), [], "wrong-type", "detach", "job"),
    "stdio-not-three": (_spawn(stdio=[None]), [], "wrong-type", "stdio", "job"),
    "invalid-policy": (_spawn(policy={"memory": "lots"}), [], "invalid-policy", "memory", "job"),
    "unknown-policy-key": (_spawn(policy={"memroy": "64M"}), [], "invalid-policy", "memroy",
                           "job"),
    "policy-wrong-type": (_spawn(policy={"pids": "many"}), [], "invalid-policy", "pids", "job"),
    "stdio-index-out-of-range": (_spawn(stdio=[0, 1, None]), [_pipe_read_end], "bad-fds",
                                 "stdio", "job"),
    "fd-not-used": (_spawn(stdio=[0, None, None]), [_pipe_read_end, _pipe_read_end], "bad-fds",
                    "stdio", "job"),
    "fds-without-stdio": (_spawn(), [_pipe_read_end], "bad-fds", "stdio", "job"),
    "directory-as-stdin": (_spawn(stdio=[0, None, None]), [_dir_fd], "bad-fds", "stdio", "job"),
    "o-path-fd": (_spawn(stdio=[0, None, None]), [_o_path_fd], "bad-fds", "stdio", "job"),
    "ping-with-fd": ({"op": "ping", "id": 9}, [_pipe_read_end], "bad-fds", "", 9),
    "signal-not-forwardable": ({"op": "signal", "id": "job", "signal": 9}, [], "wrong-type",
                               "signal", "job"),
    "kill-unknown-id": ({"op": "kill", "id": "nobody-home"}, [], "unknown-id", "id",
                        "nobody-home"),
    "signal-unknown-id": ({"op": "signal", "id": 17, "signal": 15}, [], "unknown-id", "id", 17),
    "kill-without-id": ({"op": "kill"}, [], "invalid-request", "id", None),
    "signal-missing": ({"op": "signal", "id": "job"}, [], "invalid-request", "signal", "job"),
    "not-utf8": (b'{"op": "ping", "id": "\xff"}', [], "invalid-json", "", None),
}


BAD_REQUEST_CASES = list(BAD_REQUESTS)


@pytest.mark.parametrize("case", BAD_REQUEST_CASES)
def test_bad_request_gets_its_error_and_the_connection_goes_on(serve, case):
    body, makers, code, field, reply_id = BAD_REQUESTS[case]
    server = serve()
    with server.connect() as warm:          # the first cell sets up what stays
        warm.spawn_ok("warm", ["true"])
        assert warm.wait("warm")["exit_code"] == 0
    idle_fds = idle_fd_count(server.pid, server.socket)
    fds = [make() for make in makers]
    with server.connect() as conn:
        try:
            conn.send_frame(body if isinstance(body, bytes) else json.dumps(body).encode(), fds)
        finally:
            for fd in fds:
                os.close(fd)
        msg, got = conn.reply()
        assert got == []
        assert msg["ok"] is False and msg["id"] == reply_id, msg
        assert msg["error"]["code"] == code, msg
        assert msg["error"]["field"] == field, msg
        assert msg["error"]["message"]
        assert conn.ping(case)
        conn.spawn_ok("after", ["true"])
        assert conn.wait("after")["exit_code"] == 0
    with server.connect() as again:
        assert again.ping()
    assert wait_until(lambda: fd_count(server.pid) == idle_fds, 5.0), \
        (fd_count(server.pid), idle_fds, fd_targets(server.pid))


def test_ping_without_id(serve):
    server = serve()
    with server.connect() as conn:
        assert conn.request({"op": "ping"}) == {"id": None, "ok": True, "pong": True}


def test_duplicate_id_is_refused_while_the_cell_lives(serve):
    server = serve()
    with server.connect() as conn:
        _, pidfd = conn.spawn_ok("x", ["sleep", "1000"])
        os.close(pidfd)
        msg, fd = conn.spawn("x", ["true"])
        assert fd is None
        assert msg["ok"] is False and msg["id"] == "x"
        assert msg["error"]["code"] == "duplicate-id" and msg["error"]["field"] == "id"
        assert conn.request({"op": "kill", "id": "x"}) == {"id": "x", "ok": True}
        assert conn.wait("x")["status"] == "killed"
        _, pidfd = conn.spawn_ok("x", ["true"])        # free again once it has ended
        os.close(pidfd)
        assert conn.wait("x")["exit_code"] == 0
    with server.connect() as other, server.connect() as another:
        # ids are per connection
        for c in (other, another):
            _, pidfd = c.spawn_ok("same", ["true"])
            os.close(pidfd)
            assert c.wait("same")["exit_code"] == 0


def test_signal_reaches_the_program_and_kill_is_per_connection(serve):
    server = serve()
    r, w = os.pipe()
    with server.connect() as conn, server.connect() as other:
        _, pidfd = conn.spawn_ok("trap", ["sh", "-c", "trap 'exit 42' TERM; echo ready; "
                                          "while :; do sleep 0.05; done"],
                                 stdio=[None, 0, None], fds=[w])
        os.close(w)
        os.close(pidfd)
        with os.fdopen(r) as out:
            assert out.readline() == "ready\n"
            msg = other.request({"op": "kill", "id": "trap"})     # not other's cell
            assert msg["ok"] is False and msg["error"]["code"] == "unknown-id"
            assert conn.request({"op": "signal", "id": "trap", "signal": 15}) == \
                {"id": "trap", "ok": True}
            result = conn.wait("trap")
        assert result["status"] == "exited" and result["exit_code"] == 42


def test_a_client_that_does_not_read_its_replies_is_disconnected(serve):
    server = serve()
    batch = frame(json.dumps({"op": "ping", "id": "x" * 128}).encode()) * 2000
    with server.connect() as greedy, server.connect() as other:
        greedy.sock.settimeout(5)
        sent = 0
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while sent < 64 * MiB:          # far more replies than the 4 MiB it may queue
                greedy.sock.sendall(batch)
                sent += len(batch)
        assert other.ping()
        assert server.proc.poll() is None


def test_oversized_frame_gets_bad_frame_and_the_connection_closes(serve):
    server = serve()
    with server.connect() as conn:
        # the largest frame allowed is served
        padding = " " * (MiB - len(b'{"op": "ping", "id": "big"}'))
        body = b'{"op": "ping", "id": "big"' + padding.encode() + b"}"
        assert len(body) == MiB
        conn.send_frame(body)
        assert conn.reply()[0] == {"id": "big", "ok": True, "pong": True}
        conn.sock.sendall(struct.pack("!I", MiB + 1) + b"{" * 4096)
        msg, _ = conn.recv()
        assert msg["ok"] is False and msg["id"] is None
        assert msg["error"]["code"] == "bad-frame"
        assert conn.closed_by_server(3.0)
    with server.connect() as again:
        assert again.ping()


@pytest.mark.parametrize("count", [4, 8, 9, 64])
def test_fds_in_excess_get_bad_fds_and_the_connection_closes(serve, count):
    server = serve()
    idle = idle_fd_count(server.pid, server.socket)
    pipes = [os.pipe() for _ in range((count + 1) // 2)]
    fds = [fd for pair in pipes for fd in pair][:count]
    with server.connect() as conn:
        assert conn.ping()
        try:
            conn.send_frame(json.dumps(_spawn(stdio=[0, 1, 2])).encode(), fds)
        finally:
            for pair in pipes:
                os.close(pair[0])
                os.close(pair[1])
        msg, got = conn.recv()
        assert got == []
        assert msg["ok"] is False and msg["error"]["code"] == "bad-fds", msg
        closed = conn.closed_by_server(2.0)
    with server.connect() as again:
        assert again.ping()
    assert wait_until(lambda: fd_count(server.pid) == idle, 2.0), (fd_count(server.pid), idle)
    assert closed, "the connection stayed open"


def test_fds_in_excess_on_the_first_request_get_bad_fds(serve):
    server = serve()
    pipes = [os.pipe() for _ in range(5)]
    fds = [fd for pair in pipes for fd in pair][:9]
    with server.connect(handshake=False) as conn:
        conn.handshake(send_welcome=False)
        # the request follows #WELCOME# in the same message, as a pipelining client may send it
        data = frame(WELCOME) + frame(json.dumps(_spawn(stdio=[0, 1, 2])).encode())
        try:
            assert socket.send_fds(conn.sock, [data], fds) == len(data)
        finally:
            for pair in pipes:
                os.close(pair[0])
                os.close(pair[1])
        try:
            msg, _ = conn.recv()
        except ConnectionError:
            pytest.fail("closed without a reply")
        assert msg["ok"] is False and msg["error"]["code"] == "bad-fds", msg
        assert conn.closed_by_server(2.0)


def test_max_cells_per_connection(serve):
    server = serve("--max-cells", "2")
    with server.connect() as conn, server.connect() as other:
        for name in ("a", "b"):
            _, pidfd = conn.spawn_ok(name, ["sleep", "1000"])
            os.close(pidfd)
        msg, fd = conn.spawn("c", ["true"])
        assert fd is None and msg["ok"] is False and msg["id"] == "c"
        assert msg["error"]["code"] == "limit", msg
        _, pidfd = other.spawn_ok("c", ["true"])     # the limit is per connection
        os.close(pidfd)
        assert other.wait("c")["exit_code"] == 0
        conn.request({"op": "kill", "id": "a"})
        assert conn.wait("a")["status"] == "killed"
        _, pidfd = conn.spawn_ok("c", ["true"])
        os.close(pidfd)
        assert conn.wait("c")["exit_code"] == 0


def test_max_connections(serve):
    server = serve("--max-connections", "2")
    first, second = server.connect(), server.connect()
    try:
        third = raw_socket(server.socket)
        assert read_until_eof(third, 3.0) == b""          # dropped, no challenge
        third.close()
        assert first.ping() and second.ping()
        first.close()

        def fits():
            try:
                with server.connect(timeout=2.0) as c:
                    return c.ping()
            except (ConnectionError, AuthFailed, OSError):
                return False
        assert wait_until(fits, 3.0)
    finally:
        first.close()
        second.close()


# ---------------------------------------------------------------------------
# Many clients at once, some of them hostile
# ---------------------------------------------------------------------------

GOOD_CLIENTS = 100


def _good_client(server, n, failures):
    try:
        with server.connect(timeout=60.0) as conn:
            r, w = os.pipe()
            _, fd1 = conn.spawn_ok("true", ["true"])
            _, fd2 = conn.spawn_ok(n, ["echo", f"client-{n}"], stdio=[None, 0, None], fds=[w])
            os.close(w)
            _, fd3 = conn.spawn_ok("three", ["sh", "-c", "exit 3"])
            for fd in (fd1, fd2, fd3):
                os.close(fd)
            results = [conn.wait("true", 60), conn.wait(n, 60), conn.wait("three", 60)]
            assert [x["exit_code"] for x in results] == [0, 0, 3], results
            with os.fdopen(r) as f:
                assert f.read() == f"client-{n}\n"
            assert conn.ping(n)
            assert conn.events == {}, f"extra events: {conn.events}"
    except BaseException as e:  # collected and reported by the test
        failures.append(f"client {n}: {e!r}\n{traceback.format_exc()}")


def _hostile(server, kind, stop, failures, rounds):
    wrong = os.urandom(48)
    try:
        while not stop.is_set():
            rounds[kind] = rounds.get(kind, 0) + 1
            if kind == "garbage":
                with raw_socket(server.socket) as s:
                    s.sendall(os.urandom(300))
                    read_until_eof(s, 10)
            elif kind == "oversized-handshake":
                with raw_socket(server.socket) as s:
                    s.sendall(b"\xff\xff\xff\xf0" + os.urandom(100))
                    read_until_eof(s, 10)
            elif kind == "stall":
                # holds a handshake open for a second (the deadline drops it later)
                with raw_socket(server.socket) as s:
                    with pytest.raises(TimeoutError):
                        read_until_eof(s, 1.0)
            elif kind == "wrong-key":
                try:
                    Conn(server.socket, wrong, timeout=10).close()
                    failures.append("a wrong key was accepted")
                except AuthFailed:
                    pass
            elif kind == "bad-requests":
                with server.connect(timeout=30) as c:
                    c.send_frame(b"\x00garbage")
                    assert c.reply()[0]["error"]["code"] == "invalid-json"
                    c.send_frame(b"[]")
                    assert c.reply()[0]["error"]["code"] == "invalid-request"
                    c.sock.sendall(struct.pack("!I", 2 * MiB) + b"x" * 1000)
                    assert c.recv()[0]["error"]["code"] == "bad-frame"
                    assert c.closed_by_server(10)
            elif kind == "excess-fds":
                with server.connect(timeout=30) as c:
                    assert c.ping()
                    pipes = [os.pipe() for _ in range(5)]
                    fds = [fd for p in pipes for fd in p][:9]
                    try:
                        c.send_frame(b'{"op": "ping"}', fds)
                    finally:
                        for fd in fds:
                            os.close(fd)
                    assert c.recv()[0]["error"]["code"] == "bad-fds"
                    assert c.closed_by_server(10)
            elif kind == "abandon":
                # spawns a long cell and vanishes without reading anything
                c = server.connect(timeout=30)
                c.send(_spawn(id="gone", argv=["sleep", "1000.9191"]))
                c.close()
    except BaseException as e:
        failures.append(f"hostile {kind}: {e!r}\n{traceback.format_exc()}")


HOSTILE_KINDS = ["garbage", "oversized-handshake", "stall", "stall", "wrong-key", "bad-requests",
                 "excess-fds", "abandon"]


def test_many_clients_while_hostile_ones_attack(serve):
    # a deadline long enough for every good client however busy the server gets
    server = serve("--auth-timeout", "10")
    with server.connect() as warm:          # the reaper and the first cgroups exist from here on
        warm.spawn_ok("warm", ["true"])
        assert warm.wait("warm")["exit_code"] == 0
    idle_fds = idle_fd_count(server.pid, server.socket)
    idle_children = set(children(server.pid))

    failures, stop, rounds = [], threading.Event(), {}
    hostiles = [threading.Thread(target=_hostile, args=(server, kind, stop, failures, rounds))
                for kind in HOSTILE_KINDS]
    good = [threading.Thread(target=_good_client, args=(server, n, failures))
            for n in range(GOOD_CLIENTS)]
    for t in hostiles + good:
        t.start()
    for t in good:
        t.join(90)
    stop.set()
    for t in hostiles:
        t.join(30)
    assert not any(t.is_alive() for t in good + hostiles)
    assert failures == [], "\n".join(failures)
    assert set(rounds) == set(HOSTILE_KINDS)
    assert server.proc.poll() is None

    assert wait_until(lambda: not live_with_marker("1000.9191"), 3.0)
    assert wait_until(lambda: fd_count(server.pid) == idle_fds, 5.0), \
        (fd_count(server.pid), idle_fds, fd_targets(server.pid))
    assert wait_until(lambda: set(children(server.pid)) == idle_children, 3.0)
    table = process_table()
    zombies = [p for p in children(server.pid, table) if table[p][0] == "Z"]
    assert zombies == []
    assert wait_until(lambda: not cell_cgroups(server.pid), 3.0), cell_cgroups(server.pid)
    with server.connect() as conn:
        assert conn.ping()


NEIGHBOUR = """
import socket, sys, time
name = b"\\0cellblock-neighbour-" + sys.argv[1].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(name)
s.listen()
print("bound", flush=True)
time.sleep(30)
"""

PROBE_NEIGHBOUR = """
import socket, sys
name = b"\\0cellblock-neighbour-" + sys.argv[1].encode()
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    c.connect(name)
    print("connect ok")
except OSError as e:
    print("connect", e.errno)
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("inet ok")
except OSError as e:
    print("inet", e.errno)
print("listed", name[1:].decode() in open("/proc/net/unix").read())
"""


@pytest.mark.parametrize("net", ["none", "none-shared"])
def test_cells_without_network_cannot_reach_one_another(serve, net):
    """Cell B cannot connect to cell A's abstract socket, whether they share a namespace or not.

    With none-shared they share one namespace (and so see each other's abstract socket names,
    the documented trade); with none they do not even share that.
    """
    server = serve()
    tag = f"{net}-{os.getpid()}"
    r_a, w_a = os.pipe()
    r_b, w_b = os.pipe()
    policy = {"net": net}
    with server.connect() as conn:
        conn.spawn_ok("a", ["python3", "-c", NEIGHBOUR, tag], policy=policy,
                      stdio=[None, 0, None], fds=[w_a])
        os.close(w_a)
        with os.fdopen(r_a) as a_out:
            assert a_out.readline() == "bound\n"
            conn.spawn_ok("b", ["python3", "-c", PROBE_NEIGHBOUR, tag], policy=policy,
                          stdio=[None, 0, None], fds=[w_b])
            os.close(w_b)
            with os.fdopen(r_b) as b_out:
                lines = b_out.read().split("\n")
            assert conn.wait("b")["status"] == "exited"
            conn.request({"op": "kill", "id": "a"})
            assert conn.wait("a")["status"] == "killed"
    shared = net == "none-shared"
    # refused by Landlock scoping when shared; no such name in a namespace of its own
    assert lines[0] == f"connect {errno.EPERM if shared else errno.ECONNREFUSED}"
    assert lines[1] == f"inet {errno.EAFNOSUPPORT}"
    assert lines[2] == f"listed {shared}"


NAMESPACE_PROBE = r"""
import fcntl, os, socket, struct
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, NS_GET_USERNS = 0x8913, 0x8914, 1, 0xb701
print(os.readlink("/proc/self/ns/net"))
try:     # EPERM: the namespace belongs to a user namespace above the cell's
    owner = fcntl.ioctl(os.open("/proc/self/ns/net", os.O_RDONLY), NS_GET_USERNS)
    print("owner", "cell" if os.readlink(f"/proc/self/fd/{owner}") == os.readlink("/proc/self/ns/user") else "?")
except OSError as e:
    print("owner", e.errno)
print(sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0cellblock-fresh")
flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
print("up" if flags & IFF_UP else "down")
try:
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    print("raised")
except OSError as e:
    print("raise", e.errno, flush=True)
import time; time.sleep(60)
"""


def test_each_cell_without_network_gets_a_namespace_of_its_own(serve):
    """A root server clones "none" cells into namespaces it made ahead: each must be new,
    empty and used by one cell only, never the server's, never handed out twice."""
    server = serve()
    server_ns = os.readlink(f"/proc/{server.pid}/ns/net")
    cells = 2 * NETNS_READY + 2          # more than are kept ready
    seen = []
    with server.connect() as conn:
        for n in range(cells):           # all alive at once: a namespace reused would show
            r, w = os.pipe()
            conn.spawn_ok(f"c{n}", ["python3", "-c", NAMESPACE_PROBE], stdio=[None, 0, None],
                          fds=[w])
            os.close(w)
            with os.fdopen(r) as out:
                seen.append([out.readline().strip() for _ in range(5)])
        for n in range(cells):
            conn.request({"op": "kill", "id": f"c{n}"})
            assert conn.wait(f"c{n}")["status"] == "killed"
    namespaces = [lines[0] for lines in seen]
    assert len(set(namespaces)) == cells, namespaces
    assert server_ns not in namespaces
    # made ahead by the server (owned above the cell) or, when none was ready, by the cell
    owners = [lines[1] for lines in seen]
    assert set(owners) <= {f"owner {errno.EPERM}", "owner cell"}, seen
    assert f"owner {errno.EPERM}" in owners, "the server's ready namespaces were never used"
    # only a loopback, down, and the cell cannot bring it up
    assert all(lines[2:] == ["['lo']", "down", f"raise {errno.EPERM}"] for lines in seen), seen
