"""What the benchmark scripts read about processes and exporters, in one place."""

import os
import socket

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_metrics(text):
    """Prometheus text format to {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def proc_cpu_seconds(pid):
    """User + system CPU seconds of a process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _status_bytes(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def proc_rss(pid):
    """Resident set size now, bytes (VmRSS)."""
    return _status_bytes(pid, "VmRSS:")


def proc_peak_rss(pid):
    """Peak resident set size, bytes (VmHWM)."""
    return _status_bytes(pid, "VmHWM:")
