"""An untrusted data step: it does its job, then tries to get out."""
import ctypes
import os
import socket
import sys

numbers = [int(word) for word in sys.stdin.read().split()]
print(f"job: the sum of {len(numbers)} numbers is {sum(numbers)}")
with open("/out/sum.txt", "w") as out:
    out.write(f"{sum(numbers)}\n")


def attempt(what, action):
    try:
        action()
    except OSError as e:
        print(f"  refused  {what}: {e.strerror}")
    else:
        print(f"  ALLOWED  {what}")


def unshare_user_namespace():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def connect(host, port):
    socket.create_connection((host, port), timeout=2).close()


print("escape attempts:")
attempt("read the host's /etc/shadow", lambda: open("/etc/shadow").read())
attempt(f"read the host secret {sys.argv[1]}", lambda: open(sys.argv[1]).read())
attempt("connect to 1.1.1.1:53", lambda: connect("1.1.1.1", 53))
attempt("connect to the host's loopback 127.0.0.1:22", lambda: connect("127.0.0.1", 22))
attempt("write /usr/bin/backdoor", lambda: open("/usr/bin/backdoor", "w"))
attempt("write into its read-only input /in", lambda: open("/in/numbers.txt", "a"))
attempt("create a user namespace", unshare_user_namespace)
print(f"running as uid {os.getuid()}, pid {os.getpid()}, host visible: {os.path.exists('/home')}")
