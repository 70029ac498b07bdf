"""Attacks a cell's program can try, one per invocation: `probe.py NAME [ARG...]`.

Prints one line: "ok" (optionally followed by what was obtained) when the
attempt worked, or the errno name (e.g. "EPERM") when the kernel refused it.
Raw syscalls go through ctypes so that no library check hides the kernel's
answer.
"""
import ctypes
import errno
import mmap
import os
import signal
import socket
import struct
import sys
import tty

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86_64 syscall numbers
NR = {
    "getpid": 39, "ptrace": 101, "personality": 135, "chroot": 161,
    "init_module": 175, "finit_module": 313, "keyctl": 250,
    "process_vm_readv": 310, "perf_event_open": 298, "bpf": 321, "userfaultfd": 323,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "io_uring_setup": 425,
    "fsopen": 430, "clone": 56, "clone3": 435, "unshare": 272, "setns": 308,
    "reboot": 169, "swapon": 167, "acct": 163, "pidfd_open": 434, "pidfd_getfd": 438,
    "kcmp": 312,
}
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
PTRACE_TRACEME, PTRACE_ATTACH = 0, 16
TIOCSTI, TIOCLINUX, TIOCSCTTY = 0x5412, 0x541C, 0x540E
X32_SYSCALL_BIT = 0x40000000
READ_IMPLIES_EXEC = 0x0400000
UFFD_USER_MODE_ONLY = 1
AT_FDCWD = -100


class Refused(Exception):
    pass


def check(ret):
    """A raw syscall's return value, or Refused(errno name)."""
    if ret < 0:
        raise Refused(errno.errorcode[ctypes.get_errno()])
    return ret


def sys_(name, *args):
    return check(libc.syscall(NR[name], *args))


def first_mapping(pid, fallback=None):
    """Start of a process's first mapping (fallback when its maps are not readable)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return int(f.readline().split("-")[0], 16)
    except OSError:
        if fallback is None:
            raise
        return fallback


# ---- files -----------------------------------------------------------------

def read(path):
    with open(path, "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def write(path):
    with open(path, "w") as f:
        f.write("owned\n")


def listdir(path):
    return " ".join(sorted(os.listdir(path)))


# ---- processes -------------------------------------------------------------

def kill(pid, sig="0"):
    os.kill(int(pid), int(sig))


def mem(pid):
    """Read another process's memory through /proc/PID/mem."""
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        return os.pread(fd, 4, first_mapping(pid)).hex()
    finally:
        os.close(fd)


def forge_result():
    """Tell the supervisor, on the init's report pipe (fd 3), that we exited 0; then exit 3.

    The record has the pipe's fixed layout (kind 4 "program ended", wait
    status 0, 112 bytes of detail); the stray byte after it makes the
    supervisor stop reading, so the init's true report is never seen.
    """
    try:
        fd = os.open("/proc/1/fd/3", os.O_WRONLY)
        os.write(fd, struct.pack("<IIii112s", 4, 0, 0, 0, b"") + b"!")
        print("ok")
    except OSError as e:
        print(errno.errorcode[e.errno])
    sys.stdout.flush()
    os._exit(3)


def _with_child(attack):
    """Run attack(child_pid) against a child of ours that just waits."""
    child = os.fork()
    if child == 0:
        signal.pause()
        os._exit(0)
    try:
        return attack(child)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def ptrace_traceme():
    sys_("ptrace", PTRACE_TRACEME, 0, 0, 0)


def ptrace_attach(pid):
    sys_("ptrace", PTRACE_ATTACH, int(pid), 0, 0)


def ptrace_child():
    def attach(child):
        sys_("ptrace", PTRACE_ATTACH, child, 0, 0)
        _, status = os.waitpid(child, 0)
        return "stopped" if os.WIFSTOPPED(status) else f"status {status}"
    return _with_child(attach)


def process_vm_readv(pid):
    pid = int(pid)
    addr = first_mapping(pid, fallback=0x400000)
    buf = ctypes.create_string_buffer(4)
    local = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 4)
    remote = (ctypes.c_void_p * 2)(addr, 4)
    sys_("process_vm_readv", pid, local, 1, remote, 1, 0)
    return buf.raw.hex()


def process_vm_readv_child():
    return _with_child(process_vm_readv)


def pidfd_getfd():
    pidfd = sys_("pidfd_open", os.getpid(), 0)
    sys_("pidfd_getfd", pidfd, 0, 0)


def kcmp():
    sys_("kcmp", os.getpid(), os.getpid(), 0, 0, 0)


# ---- namespaces and mounts -------------------------------------------------

def mount(target="/tmp"):
    check(libc.mount(b"none", target.encode(), b"tmpfs", 0, None))


def fsopen():
    sys_("fsopen", b"tmpfs", 0)


def chroot():
    sys_("chroot", b"/tmp")


def unshare_user():
    sys_("unshare", CLONE_NEWUSER)


def unshare_mount():
    sys_("unshare", CLONE_NEWNS)


def setns():
    fd = os.open("/proc/self/ns/user", os.O_RDONLY)
    sys_("setns", fd, 0)


def clone_newuser():
    """clone(CLONE_NEWUSER) through the raw syscall; the child leaves at once."""
    pid = sys_("clone", CLONE_NEWUSER | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def clone3():
    sys_("clone3", None, 0)


# ---- kernel interfaces -----------------------------------------------------

def init_module():
    sys_("init_module", None, 0, b"")


def finit_module():
    sys_("finit_module", -1, b"", 0)


def io_uring_setup():
    params = ctypes.create_string_buffer(120)
    sys_("io_uring_setup", 1, params)


def bpf():
    attr = struct.pack("IIII", 2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, 4-byte keys and values, 1 entry
    sys_("bpf", 0, attr, len(attr))


def userfaultfd():
    sys_("userfaultfd", UFFD_USER_MODE_ONLY | os.O_CLOEXEC)


def perf_event_open():
    # PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, user space only, this process
    attr = struct.pack("IIQQQQQ", 1, 128, 1, 0, 0, 0, (1 << 5) | (1 << 6)) + bytes(80)
    sys_("perf_event_open", attr, 0, -1, -1, 0)


def keyctl():
    sys_("keyctl", 0, -3, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring


def personality():
    sys_("personality", READ_IMPLIES_EXEC)


def name_to_handle_at():
    handle = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("I", handle, 0, 128)
    mount_id = ctypes.c_int()
    sys_("name_to_handle_at", AT_FDCWD, b"/tmp", handle, ctypes.byref(mount_id), 0)


def open_by_handle_at():
    handle = struct.pack("Ii", 8, 1) + bytes(8)
    sys_("open_by_handle_at", AT_FDCWD, handle, os.O_RDONLY)


def sethostname(name="owned"):
    check(libc.sethostname(name.encode(), len(name)))
    return socket.gethostname()


def reboot():
    sys_("reboot", 0, 0, 0, 0)  # not even a valid magic: EINVAL had it been allowed


def swapon():
    sys_("swapon", b"/nonexistent", 0)


def acct():
    sys_("acct", b"/nonexistent")


def x32_syscall():
    """getpid through the x32 ABI."""
    return check(libc.syscall(NR["getpid"] | X32_SYSCALL_BIT))


def int80():
    """getpid through the i386 ABI (int 0x80), from executable memory."""
    code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"  # mov eax, 20; int 0x80; ret
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    return str(ctypes.CFUNCTYPE(ctypes.c_int)(addr)())


# ---- terminal --------------------------------------------------------------

def tiocsti():
    """Make stdin (a terminal) our controlling tty, then push a byte into its input."""
    os.setsid()
    check(libc.ioctl(0, TIOCSCTTY, 0))
    tty.setraw(0)
    check(libc.ioctl(0, TIOCSTI, ctypes.c_char_p(b"x")))
    return os.read(0, 1).decode()


def tioclinux():
    arg = ctypes.c_char(b"\x0b")  # TIOCL_GETKMSGREDIRECT
    check(libc.ioctl(0, TIOCLINUX, ctypes.byref(arg)))


# ---- network ---------------------------------------------------------------

def tcp_connect(host, port):
    with socket.create_connection((host, int(port)), timeout=2):
        pass


def udp_send(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (host, int(port)))


def abstract_connect(name):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("\0" + name)


def main():
    name, *args = sys.argv[1:]
    try:
        got = globals()[name](*args)
    except Refused as e:
        print(e)
    except OSError as e:
        print(errno.errorcode.get(e.errno, f"errno {e.errno}") if e.errno else repr(e))
    else:
        print("ok" if got is None else f"ok {got}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
