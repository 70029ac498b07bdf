"""Helpers for the server tests: starting and stopping `cellblock serve`, a
protocol client written against docs/protocol.md, and host process checks."""
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
SHA256_TAG = b"{sha256}"
MiB = 1 << 20


def wait_until(predicate, seconds=5.0, step=0.02):
    """Poll until predicate() is true or the deadline passes; the last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


# ---------------------------------------------------------------------------
# Host processes
# ---------------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, comm) of a host process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), comm


def alive(pid):
    """Does the process exist and is it not a zombie?"""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def process_table():
    """{pid: (state, ppid, comm)} for every host process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                table[int(name)] = st
    return table


def children(pid, table=None):
    table = process_table() if table is None else table
    return [p for p, (_, ppid, _) in table.items() if ppid == pid]


def descendants(pid):
    table = process_table()
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop(), table):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def live_with_marker(marker):
    """Live host processes whose command line contains marker."""
    found = []
    for pid, (state, _, _) in process_table().items():
        args = cmdline(pid)
        if state not in ("Z", "X") and args and any(marker.encode() in a for a in args):
            found.append(pid)
    return found


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].split()
    return None


# fresh network namespaces a root server keeps ready for "none" cells (POOL_SIZE in src/net.c)
NETNS_READY = 4


def spare_netns(pid):
    """Network namespace fds the server holds other than its own namespace's: the ones it
    keeps ready, and the one none-shared cells share."""
    own = os.readlink(f"/proc/{pid}/ns/net")
    return sum(1 for t in fd_targets(pid) if t.startswith("net:[") and t != own)


def fd_count(pid):
    """The fds the server holds, leaving out the spare namespaces, which come and go as
    cells take them (idle_fd_count checks that they stay few)."""
    return len(fd_targets(pid)) - spare_netns(pid)


def fd_targets(pid):
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return sorted(targets)


def unix_socket_paths():
    """{socket inode: bound path} from /proc/net/unix (accepted sockets show the listener's)."""
    paths = {}
    with open("/proc/net/unix") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8:
                paths[int(fields[6])] = fields[7]
    return paths


def connection_count(pid, socket_path):
    """How many client connections the server at socket_path holds open."""
    paths = unix_socket_paths()
    inodes = [int(t[len("socket:["):-1]) for t in fd_targets(pid) if t.startswith("socket:[")]
    return sum(1 for inode in inodes if paths.get(inode) == socket_path) - 1   # the listener


def idle_fd_count(pid, socket_path, seconds=3.0):
    """The server's fd count once it holds no connection and no cell (no pidfd,
    timer or cgroup open)."""
    def idle():
        targets = fd_targets(pid)
        busy = [t for t in targets if t in ("anon_inode:[pidfd]", "anon_inode:[timerfd]")
                or t.startswith("/sys/fs/cgroup")]
        return connection_count(pid, socket_path) == 0 and not busy and fd_count(pid)
    count = wait_until(idle, seconds)
    assert count, f"the server does not become idle: {fd_targets(pid)}"
    # more than those kept ready and the shared one would be a leak
    assert spare_netns(pid) <= NETNS_READY + 1, fd_targets(pid)
    # a connection or cell just ended may still be closing: take the settled low
    for _ in range(5):
        time.sleep(0.05)
        count = min(count, idle() or count)
    return count


def server_cgroups(server_pid):
    """Every cgroup directory named after the server with this pid, in any hierarchy."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(root, d) for d in dirs
                  if d.split(".")[0] == f"cellblock-{server_pid}"]
    return found


def cell_cgroups(server_pid):
    """The cell cgroups that the server with this pid has in any hierarchy."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(root).split(".")[0] == f"cellblock-{server_pid}":
            found += [os.path.join(root, d) for d in dirs if d.startswith("cell-")]
    return found


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------
# Memory scanning (as root)
# ---------------------------------------------------------------------------

def memory_contains(pid, needle):
    """Does any readable mapping of pid hold needle?  (None if nothing was readable.)"""
    read_any = False
    with open(f"/proc/{pid}/maps") as maps:
        regions = maps.read().splitlines()
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for line in regions:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5] if len(parts) > 5 else ""
            if "r" not in parts[1] or name in ("[vvar]", "[vvar_vclock]", "[vsyscall]"):
                continue
            if end - start > 512 * MiB:
                continue
            try:
                data = os.pread(fd, end - start, start)
            except OSError:
                continue
            read_any = read_any or bool(data)
            if needle in data:
                return True
    finally:
        os.close(fd)
    return False if read_any else None


# ---------------------------------------------------------------------------
# A server
# ---------------------------------------------------------------------------

class Server:
    """One `cellblock serve`, with its own key file and socket in a fresh directory."""

    def __init__(self, binary, parent, args=(), user=None, key=None, socket_path=None):
        self.binary = str(binary)
        self.user = user
        self.dir = Path(tempfile.mkdtemp(prefix="srv-", dir=parent))
        self.dir.chmod(0o755)
        self.key = key if key is not None else os.urandom(48)
        self.key_file = self.dir / "key"
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, self.key)
        os.close(fd)
        os.chmod(self.key_file, 0o600)
        if user is not None:
            os.chown(self.dir, user, user)
            os.chown(self.key_file, user, user)
        self.socket = str(socket_path or self.dir / "sock")
        self.args = list(args)
        self.proc = None
        self.stderr_path = self.dir / "stderr"
        self.pid = None

    def command(self):
        cmd = [self.binary, "serve", "--socket", self.socket, "--key-file", str(self.key_file),
               *self.args]
        if self.user is not None:
            cmd = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups",
                   "--", *cmd]
        return cmd

    def start(self, wait=True):
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._err)
        self.pid = self.proc.pid
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, seconds=10):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.log()}")
            return "listening on" in self.log()
        assert wait_until(ready, seconds), f"server did not start: {self.log()}"
        assert os.path.exists(self.socket)

    def log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def connect(self, key=None, **kw):
        return Conn(self.socket, self.key if key is None else key, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stop the server; every process it started must be gone afterwards."""
        if self.proc is None:
            return None
        left = descendants(self.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            kill_quietly(self.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_quietly(self.pid)
                self.proc.wait()
        self._err.close()
        stuck = [p for p in left if not wait_until(lambda p=p: not alive(p), 5)]
        for p in stuck:
            kill_quietly(p)
        assert stuck == [], f"processes left by the server: {stuck}"
        return self.proc.returncode


# ---------------------------------------------------------------------------
# A client
# ---------------------------------------------------------------------------

class AuthFailed(Exception):
    pass


def frame(body):
    return struct.pack("!I", len(body)) + body


class Conn:
    """A protocol client: SHA-256 handshake both ways, frames with fds, replies and events."""

    def __init__(self, path, key, handshake=True, timeout=10.0):
        self.key = key
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.base = 0          # stream offset of buf[0]
        self.pending = []      # (stream offset of a frame, [fds]) not yet received
        self.events = {}       # id (as JSON text) -> [results]
        self.eof = False
        try:
            self.sock.connect(path)
            if handshake:
                self.handshake()
        except BaseException:
            self.sock.close()
            raise

    # --- bytes ---------------------------------------------------------------
    def _fill(self):
        data, fds, flags, _ = socket.recv_fds(self.sock, 65536, 8)
        assert not flags & socket.MSG_CTRUNC, "fds truncated"
        if data:
            self.buf += data
        if fds:
            # a read ends with the message that carried fds, and the server sends
            # them with a frame's first bytes: they belong to the last frame that
            # starts in what has been read
            self.pending.append((self.base + self._last_frame_start(), list(fds)))
        if not data:
            self.eof = True
            for _, fds in self.pending:
                for fd in fds:
                    os.close(fd)
            self.pending = []
            raise ConnectionError("the server closed the connection")

    def _last_frame_start(self):
        pos = last = 0
        while pos < len(self.buf):
            last = pos
            if pos + 4 > len(self.buf):
                break
            (n,) = struct.unpack("!I", self.buf[pos:pos + 4])
            pos += 4 + n
        return last

    def recv_frame(self):
        """(body, fds) of the next frame."""
        while len(self.buf) < 4:
            self._fill()
        (n,) = struct.unpack("!I", self.buf[:4])
        while len(self.buf) < 4 + n:
            self._fill()
        body = bytes(self.buf[4:4 + n])
        end = self.base + 4 + n
        fds = [fd for off, got in self.pending if off == self.base for fd in got]
        self.pending = [(off, got) for off, got in self.pending if off != self.base]
        del self.buf[:4 + n]
        self.base = end
        return body, fds

    def send_frame(self, body, fds=()):
        data = frame(body)
        if fds:
            sent = socket.send_fds(self.sock, [data], list(fds))
            if sent < len(data):
                self.sock.sendall(data[sent:])
        else:
            self.sock.sendall(data)

    def read_to_eof(self, timeout=5.0):
        """Everything the server still sends until it closes (raw bytes)."""
        self.sock.settimeout(timeout)
        out = bytes(self.buf)
        self.buf.clear()
        while True:
            data = self.sock.recv(65536)
            if not data:
                return out
            out += data

    def closed_by_server(self, timeout=5.0):
        """True once the server has closed (bytes before the EOF are discarded)."""
        try:
            self.read_to_eof(timeout)
            return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    # --- handshake -----------------------------------------------------------
    def handshake(self, send_welcome=True):
        body, fds = self.recv_frame()
        assert not fds
        if not body.startswith(CHALLENGE + SHA256_TAG):
            raise AuthFailed(f"unexpected challenge {body!r}")
        message = body[len(CHALLENGE):]
        self.send_frame(SHA256_TAG + hmac.new(self.key, message, hashlib.sha256).digest())
        verdict, _ = self.recv_frame()
        if verdict != WELCOME:
            raise AuthFailed(f"server said {verdict!r}")
        mine = SHA256_TAG + os.urandom(40)
        self.send_frame(CHALLENGE + mine)
        answer, _ = self.recv_frame()
        if not hmac.compare_digest(answer,
                                   SHA256_TAG + hmac.new(self.key, mine, hashlib.sha256).digest()):
            self.send_frame(FAILURE)
            raise AuthFailed("the server does not know the key")
        if send_welcome:
            self.send_frame(WELCOME)

    # --- messages ------------------------------------------------------------
    def send(self, obj, fds=()):
        self.send_frame(json.dumps(obj).encode(), fds)

    def recv(self):
        body, fds = self.recv_frame()
        return json.loads(body), fds

    def _keep_event(self, msg, fds):
        for fd in fds:
            os.close(fd)
        self.events.setdefault(json.dumps(msg["id"]), []).append(msg["result"])

    def reply(self):
        """The next reply (exit events met on the way are kept)."""
        while True:
            msg, fds = self.recv()
            if msg.get("event") == "exit":
                self._keep_event(msg, fds)
                continue
            return msg, fds

    def request(self, obj, fds=()):
        """Send obj and return its reply; any fd that came with it is closed."""
        self.send(obj, fds)
        msg, got = self.reply()
        for fd in got:
            os.close(fd)
        return msg

    def spawn(self, cell_id, argv, policy=None, stdio=None, fds=(), detach=None):
        """(reply, pidfd or None)."""
        req = {"op": "spawn", "id": cell_id, "argv": list(argv)}
        if policy is not None:
            req["policy"] = policy
        if stdio is not None:
            req["stdio"] = list(stdio)
        if detach is not None:
            req["detach"] = detach
        self.send(req, fds)
        msg, got = self.reply()
        assert len(got) <= 1
        return msg, (got[0] if got else None)

    def spawn_ok(self, cell_id, argv, **kw):
        msg, pidfd = self.spawn(cell_id, argv, **kw)
        assert msg.get("ok") is True and msg["id"] == cell_id, msg
        assert pidfd is not None
        return msg["pid"], pidfd

    def ping(self, ping_id=0):
        msg = self.request({"op": "ping", "id": ping_id})
        assert msg == {"id": ping_id, "ok": True, "pong": True}, msg
        return True

    def wait(self, cell_id, timeout=10.0):
        """The exit result of cell_id (exactly one must arrive)."""
        key = json.dumps(cell_id)
        deadline = time.monotonic() + timeout
        while key not in self.events:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            msg, fds = self.recv()
            assert msg.get("event") == "exit", f"unexpected message {msg}"
            self._keep_event(msg, fds)
        results = self.events.pop(key)
        assert len(results) == 1, f"{len(results)} results for {cell_id}"
        return results[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        for _, fds in self.pending:
            for fd in fds:
                os.close(fd)
        self.pending = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_socket(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_until_eof(sock, timeout=5.0):
    """All bytes until the peer closes; raises socket.timeout if it does not."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


def read_frame_blocking(sock):
    header = b""
    while len(header) < 4:
        got = sock.recv(4 - len(header))
        if not got:
            raise ConnectionError("closed")
        header += got
    (n,) = struct.unpack("!I", header)
    body = b""
    while len(body) < n:
        got = sock.recv(n - len(body))
        if not got:
            raise ConnectionError("closed")
        body += got
    return body
