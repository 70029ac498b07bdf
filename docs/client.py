"""A cellblock server client with nothing but Python's standard library.

    python3 docs/client.py SOCKET KEY_FILE PROGRAM [ARG...]

runs PROGRAM in a cell with this process's stdin, stdout and stderr, and
prints the cell's result as JSON on stderr. Works with Python 3.11 (whose
handshake uses HMAC-MD5) and 3.12+ (HMAC-SHA256).
"""
import json
import os
import socket
import struct
import sys
from multiprocessing.connection import Client


class CellblockClient:
    def __init__(self, path, key):
        self.conn = Client(path, family="AF_UNIX", authkey=key)  # authenticates both ways
        self.sock = socket.socket(fileno=os.dup(self.conn.fileno()))
        self.events = {}

    def send(self, request, fds=()):
        body = json.dumps(request).encode()
        socket.send_fds(self.sock, [struct.pack("!i", len(body)) + body], list(fds))

    def receive(self):
        """One message, and the fds that came with it (they ride with its first bytes)."""
        header, fds, _, _ = socket.recv_fds(self.sock, 4, 3)
        while len(header) < 4:
            header += self.sock.recv(4 - len(header))
        (length,) = struct.unpack("!i", header)
        body = b""
        while len(body) < length:
            chunk = self.sock.recv(length - len(body))
            if not chunk:
                raise ConnectionError("server closed the connection")
            body += chunk
        return json.loads(body), fds

    def reply(self):
        """The next reply; exit events that arrive first are kept."""
        while True:
            msg, fds = self.receive()
            if msg.get("event") == "exit":
                self.events[msg["id"]] = msg["result"]
                continue
            return msg, fds

    def spawn(self, cell_id, argv, policy=None, stdio=(0, 1, 2)):
        """Start a cell; returns (pid, pidfd)."""
        fds = [fd for fd in stdio if fd is not None]
        slots = [None if fd is None else fds.index(fd) for fd in stdio]
        self.send({"op": "spawn", "id": cell_id, "argv": list(argv),
                   "policy": policy or {}, "stdio": slots}, fds)
        msg, got = self.reply()
        if not msg.get("ok"):
            raise RuntimeError(msg["error"])
        return msg["pid"], got[0]

    def wait(self, cell_id):
        while cell_id not in self.events:
            msg, fds = self.receive()
            for fd in fds:
                os.close(fd)
            if msg.get("event") == "exit":
                self.events[msg["id"]] = msg["result"]
        return self.events.pop(cell_id)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, key_file, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(key_file, "rb") as f:
        key = f.read()
    client = CellblockClient(path, key)
    pid, pidfd = client.spawn("cell-1", argv, policy={"memory": "256M", "timeout": 60})
    result = client.wait("cell-1")
    os.close(pidfd)
    print(json.dumps(result), file=sys.stderr)
    sys.exit(result["exit_code"] if result["status"] == "exited" else 1)


if __name__ == "__main__":
    main()
