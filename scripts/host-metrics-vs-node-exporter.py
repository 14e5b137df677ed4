#!/usr/bin/env python3
"""host-metrics side by side with node_exporter, on this machine, in one run.

  agreement  (run by scripts/test.sh): the same host at the same moment, compared value by
             value; exits 1 if any difference is beyond its tolerance (printed with it).
  cost       (benchmark, scripts/bench-host-metrics.sh): CPU seconds per 1,000 samples against
             node_exporter's per 1,000 scrapes, and the peak RSS of both.

Tolerances (agreement):
  memory total          exact (both read MemTotal)
  memory available      within 1% of total (a few ms apart, the kernel moves it)
  load 1/5/15           within 0.01 (same /proc/loadavg; compared when the kernel did not
                        recompute it between the two reads)
  network bytes         per interface, within 64 KiB + 1% (counters read a few ms apart)
  CPU usage             over the same 10 s with a busy loop on one core: within 2 points
                        (both are the busy share of /proc/stat jiffies; ours averages the
                        nine 1 s samples inside the window, so other load at the edges counts)

Needs: devbroker and host-metrics binaries (--bin-dir), prometheus-node-exporter, kcat.
"""

import argparse
import datetime
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from procstat import free_port, parse_metrics, proc_cpu_seconds, proc_peak_rss, proc_rss  # noqa: E402
from stack import Stack as BaseStack  # noqa: E402

NODE_COLLECTORS = [  # the same ground host-metrics covers
    "cpu", "cpufreq", "loadavg", "meminfo", "filesystem", "diskstats", "netdev", "stat",
]


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return parse_metrics(text)


def series(metrics, name, **labels):
    """Values of `name` whose labels include `labels`, keyed by the full sample name."""
    found = {}
    for key, value in metrics.items():
        base = key.split("{", 1)[0]
        if base != name:
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            found[key] = value
    return found


def one(metrics, name, **labels):
    values = list(series(metrics, name, **labels).values())
    if len(values) != 1:
        raise SystemExit(f"expected one {name}{labels}, found {len(values)}")
    return values[0]


def label(key, name):
    m = re.search(name + r'="([^"]*)"', key)
    return m.group(1) if m else None


def wait_http(port, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer on :{port}")


class Stack(BaseStack):
    """devbroker with the host-metrics topic, and host-metrics and node_exporter."""

    def __init__(self, bin_dir):
        super().__init__(bin_dir, "host-metrics", "hm-vs-node-")

    def host_metrics_env(self, port, **extra):
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=self.bootstrap, HOST_ID="side-by-side",
                   METRICS_ADDR=f"127.0.0.1:{port}", RUST_LOG="warn")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def node_exporter(self, port, collectors=None):
        argv = ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"]
        if collectors:
            argv.append("--collector.disable-defaults")
            argv += [f"--collector.{c}" for c in collectors]
        p = self.start(argv)
        wait_http(port, "node_exporter")
        return p


def read_samples(bootstrap):
    out = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", "host-metrics", "-o", "beginning",
                          "-e", "-q", "-f", "%s\n"], capture_output=True, text=True, timeout=60)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def value(sample, metric, device=""):
    for v in sample["metrics"]:
        if v["metric"] == metric and v.get("device", "") == device:
            return v["value"]
    return None


def node_cpu_busy(metrics):
    """(busy, total) CPU seconds over all cores; idle and iowait count as not busy."""
    busy = total = 0.0
    for key, v in series(metrics, "node_cpu_seconds_total").items():
        total += v
        if label(key, "mode") not in ("idle", "iowait"):
            busy += v
    return busy, total


def agreement(args):
    stack = Stack(args.bin_dir)
    failures = []
    rows = []

    def check(what, ours, theirs, tolerance):
        diff = abs(ours - theirs)
        ok = diff <= tolerance
        rows.append((what, ours, theirs, diff, tolerance, ok))
        if not ok:
            failures.append(what)

    try:
        node_port, hm_port = free_port(), free_port()
        stack.node_exporter(node_port, NODE_COLLECTORS)
        stack.start([os.path.join(args.bin_dir, "host-metrics")],
                    env=stack.host_metrics_env(hm_port, SAMPLE_INTERVAL_SECS=1))
        wait_http(hm_port, "host-metrics")
        time.sleep(2.5)

        # Memory and load: node_exporter read just before and just after one of our samples.
        # The kernel recomputes the load every 5 s; a pair it changed in between is retried.
        for _ in range(10):
            before = scrape(node_port)
            count = one(scrape(hm_port), "host_metrics_samples_total")
            while one(scrape(hm_port), "host_metrics_samples_total") == count:
                time.sleep(0.02)
            ours, theirs = scrape(hm_port), scrape(node_port)
            if all(one(before, f"node_load{n}") == one(theirs, f"node_load{n}") for n in (1, 5, 15)):
                break
        total = one(theirs, "node_memory_MemTotal_bytes")
        check("memory total (bytes)", one(ours, "host_metrics_memory_total_bytes"), total, 0)
        check("memory available (bytes)", one(ours, "host_metrics_memory_available_bytes"),
              one(theirs, "node_memory_MemAvailable_bytes"), 0.01 * total)
        for n in ("1", "5", "15"):
            check(f"load{n}", one(ours, f"host_metrics_load{n}"), one(theirs, f"node_load{n}"), 0.01)

        # CPU over the same 10 s, with one core kept busy.
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.5)
            t0 = time.time()
            busy0, total0 = node_cpu_busy(scrape(node_port))
            time.sleep(10)
            busy1, total1 = node_cpu_busy(scrape(node_port))
            t1 = time.time()
        finally:
            burner.kill()
            burner.wait()
        node_cpu = 100.0 * (busy1 - busy0) / (total1 - total0)

        # Network: the latest published sample's absolute counters against node_exporter's,
        # read right after.
        time.sleep(1.5)
        samples = read_samples(stack.bootstrap)
        theirs = scrape(node_port)
        latest = max(samples, key=lambda s: s["time"])
        interfaces = sorted({v["device"] for v in latest["metrics"]
                             if v["metric"] == "network_receive_bytes" and v.get("device")})
        if not interfaces:
            failures.append("no interface reported")
        for nic in interfaces:
            for ours_name, node_name in (("network_receive_bytes", "node_network_receive_bytes_total"),
                                         ("network_transmit_bytes", "node_network_transmit_bytes_total")):
                node_value = one(theirs, node_name, device=nic)
                check(f"{ours_name} {nic}", value(latest, ours_name, nic), node_value,
                      65536 + 0.01 * node_value)

        def in_window(s):
            # Each sample covers the second before its time: the window's first second is
            # left out, and nothing after t1 (the busy loop stops right after it).
            t = datetime.datetime.fromisoformat(s["time"].replace("Z", "+00:00")).timestamp()
            return t0 + 1 <= t <= t1
        window = [value(s, "cpu_usage") for s in samples if in_window(s)]
        if len(window) < 5:
            failures.append(f"only {len(window)} samples in the CPU window")
        else:
            check("CPU usage % (10 s, one core busy)", sum(window) / len(window), node_cpu, 2.0)
    finally:
        stack.stop()

    print(f"{'value':<40} {'host-metrics':>16} {'node_exporter':>16} {'diff':>12} {'tolerance':>12}")
    for what, ours, theirs, diff, tol, ok in rows:
        print(f"{what:<40} {ours:>16.2f} {theirs:>16.2f} {diff:>12.2f} {tol:>12.2f}  {'ok' if ok else 'FAIL'}")
    if failures:
        print("disagreement: " + ", ".join(failures))
        return 1
    print(f"host-metrics agrees with node_exporter on {len(rows)} values")
    return 0


def run_to_exit(argv, env):
    """Runs a process to its exit: (peak RSS bytes, wall seconds). Its CPU time lands in
    RUSAGE_CHILDREN when poll() reaps it (see children_cpu).

    The peak is the highest VmHWM read every 2 ms while it ran. Not wait4's ru_maxrss: Linux
    carries the pre-exec high-water mark of the forked child into it, so it reports this
    Python process's own RSS (~20 MiB) for any smaller program started from here.
    """
    started = time.time()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        try:
            peak = max(peak, proc_peak_rss(p.pid))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.002)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} exited with {p.returncode}")
    return peak, time.time() - started


def children_cpu():
    """User + system CPU seconds of every reaped child so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cost(args):
    n = args.samples
    stack = Stack(args.bin_dir)
    agent = args.agent_bin or os.path.join(args.bin_dir, "host-metrics")
    results = []
    try:
        # host-metrics: N samples back to back (as node_exporter's N scrapes are), then N
        # samples one every 10 ms; each delivered to Kafka, then it exits. CPU of the whole
        # process life, start-up included.
        for label, interval in (("back to back", 0.001), ("every 10 ms", 0.01)):
            before = children_cpu()
            peak, wall = run_to_exit([agent], stack.host_metrics_env(
                free_port(), SAMPLE_INTERVAL_SECS=interval, SAMPLE_MAX_COUNT=n))
            results.append((f"host-metrics, {label} (sample + JSON + Kafka)",
                            children_cpu() - before, peak, wall))

        # node_exporter: N scrapes in a row, its own CPU from /proc (the scraper's not counted).
        for name, collectors in (("node_exporter (same collectors)", NODE_COLLECTORS),
                                 ("node_exporter (default collectors)", None)):
            port = free_port()
            proc = stack.node_exporter(port, collectors)
            before = proc_cpu_seconds(proc.pid)
            started = time.time()
            for _ in range(n):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
            elapsed = time.time() - started
            results.append((name + " per scrape", proc_cpu_seconds(proc.pid) - before,
                            proc_peak_rss(proc.pid), elapsed))
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        # Steady state, side by side: a sample and a scrape every second for 20 s; the plain
        # release build of host-metrics beside the deployed one, for comparison.
        builds = [("host-metrics", agent)]
        release = os.path.join(args.bin_dir, "host-metrics")
        if os.path.realpath(release) != os.path.realpath(agent):
            builds.append(("host-metrics (release build)", release))
        running = []
        for name, path in builds:
            port = free_port()
            running.append((name, stack.start([path], env=stack.host_metrics_env(
                port, SAMPLE_INTERVAL_SECS=1)), port))
        node_port = free_port()
        node = stack.node_exporter(node_port, NODE_COLLECTORS)
        for _, _, port in running:
            wait_http(port, "host-metrics")
        for _ in range(20):
            urllib.request.urlopen(f"http://127.0.0.1:{node_port}/metrics", timeout=10).read()
            time.sleep(1)
        steady = [(name, proc_rss(p.pid)) for name, p, _ in running]
        steady.append(("node_exporter (same collectors)", proc_rss(node.pid)))
    finally:
        stack.stop()

    print(f"{n} samples / scrapes, one run, {os.cpu_count()} cores; host-metrics: {agent}")
    print(f"{'':<56} {'CPU s per 1,000':>16} {'peak RSS MiB':>13} {'wall s':>8}")
    for name, cpu, rss, wall in results:
        print(f"{name:<56} {cpu * 1000 / n:>16.3f} {rss / 2**20:>13.1f} {wall:>8.2f}")
    print("steady state (a sample / a scrape per second, 20 s, side by side): RSS MiB "
          + ", ".join(f"{name} {rss / 2**20:.1f}" for name, rss in steady))
    ours_cpu, ours_rss = results[0][1], results[0][2]
    same_cpu, same_rss = results[2][1], results[2][2]
    print(f"ratio host-metrics (back to back) / node_exporter (same collectors): CPU {ours_cpu / same_cpu:.2f}, "
          f"peak RSS {ours_rss / same_rss:.2f}, steady RSS {steady[0][1] / steady[-1][1]:.2f}  "
          "(target: at most 0.5 each)")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["agreement", "cost"])
    parser.add_argument("--bin-dir", default="target/release")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--agent-bin", help="the host-metrics binary to cost (default: --bin-dir's)")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    return agreement(args) if args.mode == "agreement" else cost(args)


if __name__ == "__main__":
    sys.exit(main())
