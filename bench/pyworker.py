"""The Python contenders, with the same interface and output as cellblock-driver:

    pyworker.py --kind mp-fork|mp-forkserver|mp-spawn|client --width N --total N
                [--socket PATH --key-file FILE] -- PROGRAM [ARG...]

mp-*: a multiprocessing.Process per process, running a no-op function
(PROGRAM is not run). client: a cell per process through a cellblock server,
using docs/client.py on one connection, with memory 256M, pids 64 and stdio
from /dev/null. At most WIDTH are alive at once; when the window is full the
oldest is waited for. One untimed process runs first (it also starts
multiprocessing's forkserver). Prints "elapsed SECONDS"; exits 1 if any
process failed.
"""
import argparse
import collections
import multiprocessing
import os
import sys
import time

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")
POLICY = {"memory": "256M", "pids": 64}


def noop():
    pass


class Multiprocessing:
    def __init__(self, method):
        self.ctx = multiprocessing.get_context(method)

    def start(self, index):
        process = self.ctx.Process(target=noop)
        process.start()
        return process

    def finish(self, process):
        process.join()
        return None if process.exitcode == 0 else f"exit code {process.exitcode}"


class Cells:
    def __init__(self, program, socket_path, key_file):
        sys.path.insert(0, DOCS)
        from client import CellblockClient

        with open(key_file, "rb") as f:
            self.client = CellblockClient(socket_path, f.read())
        self.program = program

    def start(self, index):
        cell_id = f"cell-{index}"
        _, pidfd = self.client.spawn(cell_id, self.program, policy=POLICY, stdio=(None, None, None))
        os.close(pidfd)
        return cell_id

    def finish(self, cell_id):
        result = self.client.wait(cell_id)
        if result["status"] == "exited" and result["exit_code"] == 0:
            return None
        return f"status {result['status']}, exit code {result['exit_code']}, error {result['error']}"


def run_window(runner, width, total):
    """Start total processes, at most width at once; the failures' reasons."""
    window, failures = collections.deque(), []
    for index in range(total):
        if len(window) == width:
            failures.append(runner.finish(window.popleft()))
        window.append(runner.start(index))
    failures += [runner.finish(handle) for handle in window]
    return [why for why in failures if why]


def make_runner(args):
    if args.kind.startswith("mp-"):
        return Multiprocessing(args.kind[3:])
    return Cells(args.program, args.socket, args.key_file)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", required=True,
                        choices=["mp-fork", "mp-forkserver", "mp-spawn", "client"])
    parser.add_argument("--width", type=int, default=1)
    parser.add_argument("--total", type=int, default=1)
    parser.add_argument("--socket")
    parser.add_argument("--key-file")
    parser.add_argument("program", nargs="+")
    args = parser.parse_args()

    runner = make_runner(args)
    failures = run_window(runner, 1, 1)
    t0 = time.perf_counter()
    failures += run_window(runner, args.width, args.total)
    print(f"elapsed {time.perf_counter() - t0:.9f}", flush=True)
    if failures:
        sys.exit(f"pyworker: {len(failures)} of {args.total + 1} failed; first: {failures[0]}")


if __name__ == "__main__":
    main()
