"""The processes of one benchmark or comparison run: devbroker first, then whatever the script
starts, each logging to a file of the run's own folder, stopped in reverse order."""

import ctypes
import os
import shutil
import signal
import subprocess
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
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop(self, keep_tmp=False):
        for p in reversed(list(self.procs)):
            self.stop_one(p)
        if not keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
