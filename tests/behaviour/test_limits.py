"""Hard limits and precise results: memory, pids, time, CPU time, output, disk.

Tolerances: a wall-clock timeout ends the cell between the deadline and
0.3 s after it (the kill is immediate; the margin covers scheduling on a
loaded 2-core machine); a CPU-time limit ends it within 0.3 CPU-seconds of
the limit.
"""
import json
import subprocess
import time

import pytest

from conftest import NOBODY

MiB = 1 << 20

MEMORY_HOG = "a = []\nwhile True: a.append(bytearray(1 << 20))"
FORK_BOMB = "bomb() { bomb | bomb & }; bomb; sleep 30"
BUSY_FOUR = "for i in 1 2 3 4; do (while :; do :; done) & done; wait"


def test_memory_bomb_ends_as_oom_near_the_limit(cb):
    r = cb.run("python3", "-c", MEMORY_HOG, policy=["--memory", "64M"])
    assert r.status == "oom"
    assert r.result["signal"] == 9
    assert r.result["limits"]["memory"] == "cgroup"
    assert 48 * MiB <= r.result["memory_peak_bytes"] <= 64 * MiB + MiB


def test_default_memory_limit_applies(cb):
    r = cb.run("python3", "-c", MEMORY_HOG, timeout=120)
    assert r.status == "oom"
    assert 400 * MiB <= r.result["memory_peak_bytes"] <= 512 * MiB + MiB


def test_memory_rlimit_fallback_rootless(cb):
    r = cb.run("python3", "-c", MEMORY_HOG, policy=["--memory", "64M"], user=NOBODY)
    assert r.result["limits"]["memory"] == "rlimit"
    assert r.status == "exited" and r.result["exit_code"] == 1
    assert "MemoryError" in r.stderr


def _host_can_fork():
    return subprocess.run(["true"], timeout=5).returncode == 0


def test_fork_bomb_is_contained(cb, user):
    proc = subprocess.Popen(cb.command(["run", "--pids", "32", "--timeout", "3",
                                        "--result", "-", "--", "sh", "-c", FORK_BOMB],
                                       user), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    time.sleep(1)
    assert _host_can_fork()
    out, _ = proc.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "timeout"
    assert result["limits"]["pids"] == ("cgroup" if user is None else "rlimit")
    assert _host_can_fork()


def test_pids_limit_refuses_the_33rd_task(cb):
    r = cb.run("sh", "-c", "for i in $(seq 40); do sleep 2 & done; wait",
               policy=["--pids", "32", "--timeout", "10"])
    assert "fork" in r.stderr.lower()
    assert r.result["limits"]["pids"] == "cgroup"


def test_busy_loop_ends_at_timeout(cb, user):
    r = cb.run("sh", "-c", "while :; do :; done", policy=["--timeout", "0.5"], user=user)
    assert r.status == "timeout"
    assert r.returncode == 128 + 9
    assert 0.5 <= r.result["wall_time_s"] <= 0.8


def test_kill_grace_sends_sigterm_first(cb, user):
    r = cb.run("sh", "-c", "trap 'echo got TERM; exit 3' TERM; while :; do sleep 0.01; done",
               policy=["--timeout", "0.5", "--kill-grace", "2"], user=user)
    assert r.status == "timeout"
    assert "got TERM" in r.stdout
    assert r.result["signal"] == 15
    assert r.result["wall_time_s"] < 2


def test_kill_grace_ends_with_sigkill_when_ignored(cb):
    r = cb.run("sh", "-c", "trap '' TERM; while :; do sleep 0.01; done",
               policy=["--timeout", "0.3", "--kill-grace", "0.3"])
    assert r.status == "timeout"
    assert r.result["signal"] == 9
    assert 0.6 <= r.result["wall_time_s"] <= 1.0


def test_cpu_time_covers_the_whole_cell(cb):
    r = cb.run("sh", "-c", BUSY_FOUR, policy=["--cpu-time", "1"])
    assert r.status == "cpu-time"
    assert r.result["limits"]["cpu"] == "supervisor"
    # per-process limits would have let the four burn about 4 CPU-seconds
    used = r.result["cpu_user_s"] + r.result["cpu_system_s"]
    assert 1.0 <= used <= 1.3


def test_cpu_time_rlimit_fallback_rootless(cb):
    r = cb.run("sh", "-c", "while :; do :; done", policy=["--cpu-time", "1"], user=NOBODY)
    assert r.status == "cpu-time"
    assert r.result["limits"]["cpu"] == "rlimit"
    assert 0.9 <= r.result["cpu_user_s"] + r.result["cpu_system_s"] <= 2.1


def test_cpus_limit_throttles(cb):
    r = cb.run("sh", "-c", "while :; do :; done", policy=["--cpus", "0.25", "--timeout", "1"])
    assert r.status == "timeout"
    assert r.result["limits"]["cpu"] == "cgroup"
    assert r.result["cpu_user_s"] + r.result["cpu_system_s"] <= 0.4


def test_cpus_without_cgroup_fails_closed(cb):
    r = cb.run("true", policy=["--cpus", "0.5"], user=NOBODY)
    assert r.status == "setup-failed"
    assert r.result["error"]["step"] == "cgroup"
    assert r.returncode == 125


def test_output_flood_keeps_exactly_the_limit(cb, user):
    started = time.monotonic()
    r = cb.run("yes", policy=["--output-limit", "1M"], user=user)
    assert time.monotonic() - started < 5
    assert r.status == "output-limit"
    assert r.result["stdout_bytes"] == MiB
    assert len(r.stdout) == MiB
    assert r.result["stdout_dropped_bytes"] > 0


def test_output_truncate_lets_the_program_finish(cb, user):
    r = cb.run("sh", "-c", "head -c 3000000 /dev/zero; echo done >&2",
               policy=["--output-limit", "1M", "--output-overflow", "truncate"], user=user)
    assert r.status == "exited"
    assert r.result["stdout_bytes"] == MiB
    assert r.result["stdout_dropped_bytes"] == 3000000 - MiB
    assert r.stderr == "done\n"


def test_tmpfs_cap_gives_enospc_inside_only(cb, user):
    r = cb.run("sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=20 2>&1; ls /tmp",
               policy=["--tmpfs", "/tmp:8M"], user=user)
    assert "No space left on device" in r.stdout
    assert r.status == "exited"
    assert not subprocess.run(["test", "-e", "/tmp/fill"]).returncode == 0


def test_file_size_limit(cb):
    r = cb.run("sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=4; ls -l /tmp/big",
               policy=["--file-size", "1M"])
    # dd dies of SIGXFSZ; the shell reports it as 128 + 25
    assert "File size limit exceeded" in r.stderr
    assert " 1048576 " in r.stdout


def test_core_dumps_are_off(cb):
    r = cb.run("sh", "-c", "ulimit -c")
    assert r.stdout.strip() == "0"


@pytest.mark.parametrize("user_id", [None, NOBODY], ids=["root", "rootless"])
def test_thousand_cells_leave_nothing_behind(stress, user_id, workdir):
    """1,000 cells through one supervisor: normal, killed, oom and timeout endings."""
    mounts_before = open("/proc/self/mountinfo").read()
    cmd = [str(stress), "1000", "16"]
    if user_id is not None:
        cmd = ["setpriv", f"--reuid={user_id}", f"--regid={user_id}", "--clear-groups", "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["cells"] == 1000
    assert report["mismatches"] == 0
    assert report["fds_after"] == report["fds_before"]
    assert report["unreaped_children"] == 0
    assert open("/proc/self/mountinfo").read() == mounts_before
    zombies = subprocess.run(["ps", "-eo", "stat=,ppid="], capture_output=True, text=True).stdout
    assert not [z for z in zombies.splitlines() if z.startswith("Z") and z.split()[1] == str(report["pid"])]
