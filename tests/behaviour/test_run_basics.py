"""`cellblock run` as a user drives it: output, exit status, results, errors."""
import json
import signal
import subprocess
import time

import pytest


def test_echo_prints_and_reports(cb, user):
    r = cb.run("echo", "hello", user=user)
    assert r.returncode == 0
    assert r.stdout == "hello\n"
    assert r.status == "exited"
    assert r.result["exit_code"] == 0
    assert r.result["stdout_bytes"] == 6
    assert r.result["error"] is None


def test_exit_code_is_passed_through(cb, user):
    r = cb.run("sh", "-c", "exit 7", user=user)
    assert r.returncode == 7
    assert r.result["exit_code"] == 7


def test_death_by_signal_is_128_plus_n(cb, user):
    r = cb.run("sh", "-c", "kill -SEGV $$", user=user)
    assert r.status == "signaled"
    assert r.result["signal"] == signal.SIGSEGV
    assert r.returncode == 128 + signal.SIGSEGV


def test_missing_program_is_127(cb, user):
    r = cb.run("no-such-program", user=user)
    assert r.returncode == 127
    assert r.status == "exec-failed"
    assert r.result["error"]["errno"] == "ENOENT"


def test_unexecutable_program_is_126(cb, user):
    r = cb.run("/etc/passwd", user=user)
    assert r.returncode == 126
    assert r.status == "exec-failed"
    assert r.result["error"]["errno"] == "EACCES"


def test_setup_failure_names_the_step(cb, user):
    r = cb.run("true", policy=["--ro-bind", "/no/such/dir"], user=user)
    assert r.returncode == 125
    assert r.status == "setup-failed"
    assert r.result["error"]["step"] == "mount-sources"
    assert r.result["error"]["errno"] == "ENOENT"
    assert "/no/such/dir" in r.result["error"]["message"]


def test_python_runs(cb, user):
    r = cb.run("python3", "-c", "print(sum(range(10)))", user=user)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "45\n"


def test_stdin_reaches_the_program(cb, user):
    r = cb.run("cat", user=user, input="data in\n")
    assert r.stdout == "data in\n"


def test_environment_is_empty_by_default(cb, user):
    r = cb.run("env", user=user, env={"PATH": "/usr/bin:/bin", "SECRET_TOKEN": "hunter2"})
    assert r.returncode == 0
    assert "SECRET_TOKEN" not in r.stdout
    assert r.stdout.strip() == ""


def test_env_option_sets_and_copies(cb):
    r = cb.run("env", policy=["--env", "A=1", "--env", "COPIED"],
               env={"PATH": "/usr/bin:/bin", "COPIED": "yes"})
    assert sorted(r.stdout.split()) == ["A=1", "COPIED=yes"]


def test_identity_inside_is_not_root(cb, user):
    r = cb.run("id", "-u", user=user)
    assert r.stdout.strip() == "1000"


def test_hostname_is_the_cells(cb):
    r = cb.run("hostname", policy=["--hostname", "grader-7"])
    assert r.stdout.strip() == "grader-7"


def test_writable_bind_and_chdir(cb, user, scratch):
    r = cb.run("sh", "-c", "echo out > result.txt", user=user,
               policy=["--bind", f"{scratch}:/work", "--chdir", "/work"])
    assert r.returncode == 0, r.stderr
    assert (scratch / "result.txt").read_text() == "out\n"


def test_ro_bind_is_readable(cb, user, scratch):
    (scratch / "in.txt").write_text("input\n")
    (scratch / "in.txt").chmod(0o644)
    r = cb.run("cat", "/in/in.txt", user=user, policy=["--ro-bind", f"{scratch}:/in"])
    assert r.stdout == "input\n"


def test_profile_file_and_override(cb, scratch):
    profile = scratch / "p.json"
    profile.write_text(json.dumps({"hostname": "from-profile", "env": {"X": "1"}}))
    r = cb.run("sh", "-c", "hostname; echo $X", policy=["--profile", str(profile), "--env", "X=2"])
    assert r.stdout.split() == ["from-profile", "2"]


@pytest.mark.parametrize("args, needle", [
    (["run", "true"], "--"),
    (["run", "--no-such-option", "--", "true"], "unknown option"),
    (["run", "--memory", "12Q", "--", "true"], "memory"),
    (["run", "--net", "internet", "--", "true"], "net"),
    (["run", "--"], "no program"),
    (["frobnicate"], "unknown command"),
    ([], "no command"),
    (["run", "--seccomp", "none", "--", "true"], "unsafe"),
])
def test_misuse_exits_2_with_usage(cb, args, needle):
    p = cb.raw(*args)
    assert p.returncode == 2
    assert needle in p.stderr
    assert "usage:" in p.stderr


def test_invalid_profile_names_the_field(cb, scratch):
    profile = scratch / "bad.json"
    profile.write_text(json.dumps({"pids": "many"}))
    p = cb.raw("run", "--profile", str(profile), "--", "true")
    assert p.returncode == 2
    assert "pids" in p.stderr


def test_unknown_profile_key_is_refused(cb, scratch):
    profile = scratch / "bad.json"
    profile.write_text(json.dumps({"memroy": "64M"}))
    p = cb.raw("run", "--profile", str(profile), "--", "true")
    assert p.returncode == 2
    assert "memroy" in p.stderr


def test_sigterm_is_passed_to_the_program(cb, user):
    proc = subprocess.Popen(cb.command(["run", "--", "sh", "-c",
                                        "trap 'echo got TERM; exit 3' TERM; "
                                        "echo ready; while :; do sleep 0.05; done"], user),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert "got TERM" in out
    assert proc.returncode == 3


def test_sigint_stops_a_plain_program(cb):
    proc = subprocess.Popen(cb.command(["run", "--", "sleep", "30"]))
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 128 + signal.SIGINT


def _sleepers(marker):
    """Live `sleep MARKER` processes on the host (zombies do not count)."""
    out = subprocess.run(["ps", "-eo", "stat=,comm=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if line.split()[1] == "sleep" and marker in line and not line.startswith("Z")]


def _wait_until(predicate, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_cell_dies_with_a_killed_cellblock(cb, user):
    marker = "3141.5926"
    proc = subprocess.Popen(cb.command(["run", "--", "sh", "-c",
                                        f"sleep {marker} & sleep {marker}"], user))
    try:
        assert _wait_until(lambda: len(_sleepers(marker)) == 2)
        proc.kill()
        proc.wait()
        assert _wait_until(lambda: _sleepers(marker) == [])
    finally:
        proc.kill()
        proc.wait()


def test_check_reports_and_succeeds(cb):
    p = cb.raw("check", "--json")
    report = json.loads(p.stdout)
    assert p.returncode == 0, p.stdout
    assert report["enforceable"] is True
    assert report["landlock_abi"] >= 1
    assert report["trial_cell"] == "ok"


def test_a_reader_that_goes_away_stops_the_program_as_a_pipeline_would(cb, scratch):
    """`cellblock run -- yes | head -1`: yes gets SIGPIPE, and the result is still written."""
    result_path = scratch / "r.json"
    proc = subprocess.Popen(cb.command(["run", "--result", str(result_path), "--", "yes"]),
                            stdout=subprocess.PIPE)
    assert proc.stdout.read(4) == b"y\ny\n"
    proc.stdout.close()
    assert proc.wait(timeout=10) == 128 + signal.SIGPIPE
    result = json.loads(result_path.read_text())
    assert result["status"] == "signaled" and result["signal"] == signal.SIGPIPE
