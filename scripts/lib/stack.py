"""The one supervisor of the scripts' processes: it starts them, waits for them, records how
they ended and stops them (SIGTERM, then SIGKILL).

Two users, one implementation:
  * the benchmark and comparison scripts (scripts/bench-web-prober.py,
    scripts/host-metrics-vs-node-exporter.py) import `Stack`: devbroker first, then whatever
    the script starts, each logging to a file of the run's own folder, children of the script
    (they get SIGTERM if it dies, even by SIGKILL), stopped in reverse order;
  * the native stack (scripts/lib/local-stack.sh) runs this file as a program:
        stack.py supervise PIDFILE RCFILE -- CMD [ARGS...]
    detached (nohup ... &), runs CMD, writes its pid to PIDFILE, waits, writes its exit status
    (128 + N for signal N, as a shell reports it) to RCFILE;
        stack.py stop NAME PID TIMEOUT
    stops a process of the native stack (which is not our child) the same way `Stack` stops
    its own.
It is Python, not the shell, that survived as the supervisor: the Python scripts need their
processes as objects (poll, wait, kill on their own death), which a shell function cannot hand
them, while the native stack only needs a detached waiter and a stop, which this file gives
the shell as two commands.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    """Children get SIGTERM if this script dies, even by SIGKILL (prctl PR_SET_PDEATHSIG)."""
    _libc.prctl(1, signal.SIGTERM)


def wait_until(what, ready, timeout=20):
    """Polls `ready()` (an OSError counts as not yet) until it is true or `timeout` passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout} s")


def warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def terminate(pid, timeout, gone, name=None):
    """SIGTERM to `pid`; SIGKILL if `gone(seconds)` (waits up to that long, true once the
    process has exited) is still false after `timeout` seconds. With a `name`, says so when it
    comes to SIGKILL. Returns False only if the process survived SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if gone(timeout):
        return True
    if name:
        warn(f"{name} (pid {pid}) still running {timeout:g}s after SIGTERM: SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    if gone(0.5):
        return True
    if name:
        warn(f"{name} (pid {pid}) survived SIGKILL")
    return False


def _child_gone(p):
    def gone(seconds):
        try:
            p.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    return gone


def _pid_gone(pid):
    def gone(seconds):
        deadline = time.monotonic() + seconds
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
    return gone


def shell_status(returncode):
    """A Popen return code as a shell reports it: 128 + N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Stack:
    """devbroker (one partition per topic in `topics`) and the processes started after it."""

    def __init__(self, bin_dir, topics, prefix):
        self.bin_dir = bin_dir
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        bootstrap_file = os.path.join(self.tmp, "bootstrap")
        self.devbroker = self.start([os.path.join(bin_dir, "devbroker"), "--topics", topics,
                                     "--partitions", "1", "--bootstrap-file", bootstrap_file])
        wait_until("devbroker", lambda: os.path.exists(bootstrap_file)
                   and os.path.getsize(bootstrap_file) > 0)
        self.bootstrap = open(bootstrap_file).read().strip()

    def log(self, name):
        return os.path.join(self.tmp, name + ".log")

    def start(self, argv, env=None, name=None):
        name = name or os.path.basename(argv[0])
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                             stderr=open(self.log(name), "a"), preexec_fn=die_with_parent)
        p.bench_name = name
        self.procs.append(p)
        return p

    def check_alive(self, p):
        if p.poll() is not None:
            tail = open(self.log(p.bench_name)).read()[-2000:]
            raise RuntimeError(f"{p.bench_name} exited with {p.returncode}:\n{tail}")

    def stop_one(self, p):
        if p.poll() is None:
            terminate(p.pid, 10, _child_gone(p))
            p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop(self, keep_tmp=False):
        for p in reversed(list(self.procs)):
            self.stop_one(p)
        if not keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def supervise(pidfile, rcfile, argv):
    """Runs argv (its output is ours: the caller points it at the log), records its pid, waits
    and records its exit status. Signals are the caller's: a stop signals the pid, not us."""
    def record(path, value):
        with open(path + ".new", "w") as f:
            f.write(f"{value}\n")
        os.replace(path + ".new", path)

    try:
        p = subprocess.Popen(argv)
    except OSError as e:
        # As a shell would: status 127, and a pid (ours) that is not CMD, so that the caller
        # sees CMD as gone at once.
        print(f"{argv[0]}: {e}", file=sys.stderr, flush=True)
        record(rcfile, 127)
        record(pidfile, os.getpid())
        return 127
    record(pidfile, p.pid)
    while True:
        try:
            rc = shell_status(p.wait())
            break
        except KeyboardInterrupt:
            continue
    record(rcfile, rc)
    return rc


def main(args):
    usage = ("usage: stack.py supervise PIDFILE RCFILE -- CMD [ARGS...]\n"
             "       stack.py stop NAME PID TIMEOUT")
    if len(args) >= 5 and args[0] == "supervise" and args[3] == "--":
        return supervise(args[1], args[2], args[4:])
    if len(args) == 4 and args[0] == "stop":
        pid = int(args[2])
        return 0 if terminate(pid, float(args[3]), _pid_gone(pid), name=args[1]) else 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
