#!/usr/bin/env python3
"""web-prober side by side with blackbox_exporter, on loopback only, measured in one run.

A benchmark, not a test: it prints what it measured and a verdict for each target, and exits
0 whatever the verdicts (non-zero only if something failed to run). Run by
scripts/bench-web-prober.sh.

accuracy    A server started here (a thread of this script) sends its answer exactly DELAY
            (50 ms) after the request reached its socket: the start is the kernel's receive
            timestamp (SO_TIMESTAMPNS), so the script's own wake-up latency does not count; it
            sleeps, then spins on the clock to the deadline, and the delay it kept is printed.
            Checked one at a time, BENCH_ACCURACY_CHECKS times each, after one warm-up check
            that is not counted:
              web-prober        that one target, PROBE_INTERVAL_SECS=0.2; the results are read
                                back from Kafka (kcat): phases.ttfb_seconds and total_seconds;
              blackbox_exporter GET /probe?module=http_2xx&target=URL, in a row:
                                probe_http_duration_seconds{phase="processing"} and
                                probe_duration_seconds.
            Compared: ttfb with "processing" (ours: request sent -> response headers; theirs:
            connection ready -> first response byte, so request written -> headers) and
            total_seconds with probe_duration_seconds (whole check). Printed: the error against
            the known delay (reported - 50 ms), median and p95, in ms.
            Target: web-prober's timing error <= 1 ms, judged on the median error of ttfb
            (p95 printed beside it).

throughput  nginx (one worker, no access log) answers "ok" on BENCH_TARGETS paths /t/0001..
            of one 127.0.0.1 port. Each prober is given BENCH_CONCURRENCY checks in flight:
              web-prober        a targets file of the BENCH_TARGETS URLs, every one always due
                                (PROBE_INTERVAL_SECS=0.01), PROBE_CONCURRENCY=C; every result
                                is published to Kafka (devbroker) as in production. Checks:
                                delta of sum(web_prober_checks_total) over the window.
              blackbox_exporter driven by wrk -t2 -cC, whose Lua script cycles through the same
                                URLs as ?target=; checks: wrk's completed requests (a 200 from
                                /probe is a probe done; non-2xx and socket errors are printed,
                                and probe_success is spot-checked on a few targets after).
            Both run BENCH_WARMUP s first (not counted), then BENCH_SECONDS s measured. CPU of
            the prober: utime+stime from /proc/PID/stat over the window; peak RSS: VmHWM from
            /proc/PID/status at the end; the same way for both (web-prober's own
            process_cpu_seconds_total is printed as a cross-check). nginx's own request counter
            (stub_status) over the window is printed as an independent count of the checks that
            reached the target. wrk and nginx (and devbroker on our side) run on the same 2
            cores and are not counted in the prober's CPU; their CPU is printed so the sharing
            can be judged: compare per-CPU-second numbers first, checks/s second.
            Target: web-prober's checks per CPU second >= 2x blackbox_exporter's.

Knobs (environment; flags of the same meaning override):
  BENCH_TARGETS=1000          URLs for the throughput part
  BENCH_CONCURRENCY=100       checks in flight, both probers
  BENCH_SECONDS=20            measured window of the throughput part, each prober
  BENCH_WARMUP=3              seconds before each window
  BENCH_ACCURACY_CHECKS=30    counted checks of the accuracy part, each prober

Needs: devbroker and web-prober binaries (--bin-dir), prometheus-blackbox-exporter, nginx,
wrk, kcat.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from procstat import CLK_TCK, free_port, parse_metrics, proc_cpu_seconds, proc_peak_rss  # noqa: E402
from stack import Stack as BaseStack, die_with_parent, wait_until  # noqa: E402

DELAY = 0.050
ACCURACY_TARGET_MS = 1.0
CPU_RATIO_TARGET = 2.0
def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric_sum(metrics, name, **labels):
    total = 0.0
    for key, value in metrics.items():
        if key.split("{", 1)[0] == name and all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += value
    return total


def by_label(metrics, name, label):
    out = {}
    for key, value in metrics.items():
        if key.split("{", 1)[0] == name:
            m = re.search(label + r'="([^"]*)"', key)
            out[m.group(1) if m else ""] = value
    return out


def tree_cpu_seconds(pid):
    """CPU of a process and its children that are still alive (nginx master + worker)."""
    total = proc_cpu_seconds(pid)
    try:
        for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
            total += proc_cpu_seconds(int(child))
    except OSError:
        pass
    return total


def machine_busy_seconds():
    """Busy CPU seconds of the whole machine, all cores (idle and iowait not counted)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


SO_TIMESTAMPNS = 35  # Linux; the ancillary message of the same number carries a timespec


class DelayServer:
    """HTTP/1.1 on 127.0.0.1 that sends 200 "ok" exactly `delay` after the request reached the
    socket, one thread per connection. The start is the kernel's receive timestamp of the
    request (SO_TIMESTAMPNS), so this script's own wake-up latency does not move the delay; the
    answer leaves when the realtime clock passes start + delay (sleep, then spin). Records the
    delay it kept (start to the send) and its wake-up latency (start to the read returning)."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                b"Connection: close\r\n\r\nok\n")

    def __init__(self, delay):
        self.delay_ns = round(delay * 1e9)
        self.kept = []
        self.wakeup = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # inherited when accepted
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            data, start = b"", None
            while b"\r\n\r\n" not in data:
                chunk, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16))
                if not chunk:
                    return
                if start is None:
                    got = time.time_ns()
                    for level, kind, payload in ancdata:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            sec, nsec = struct.unpack("qq", payload[:16])
                            start = sec * 1_000_000_000 + nsec
                    if start is None:
                        raise RuntimeError("no receive timestamp (SO_TIMESTAMPNS)")
                data += chunk
            deadline = start + self.delay_ns
            time.sleep(max(0, deadline - time.time_ns() - 2_000_000) / 1e9)
            while (now := time.time_ns()) < deadline:
                pass
            conn.sendall(self.RESPONSE)
            self.kept.append((now - start) / 1e9)
            self.wakeup.append((got - start) / 1e9)
            try:
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(1)
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def close(self):
        self.sock.close()


class Stack(BaseStack):
    """devbroker with the probes topic, and web-prober, blackbox_exporter and nginx."""

    def __init__(self, bin_dir):
        super().__init__(bin_dir, "web-probes", "bench-web-prober-")

    # --- the processes ---------------------------------------------------------------------

    def web_prober(self, targets_file, port, **settings):
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=self.bootstrap, PROBES_TOPIC="web-probes",
                   METRICS_ADDR=f"127.0.0.1:{port}", PROBE_TARGETS_FILE=targets_file,
                   RUST_LOG="warn")
        env.update({k: str(v) for k, v in settings.items()})
        p = self.start([os.path.join(self.bin_dir, "web-prober")], env=env)
        wait_until("web-prober", lambda: self.check_alive(p) or
                   "web_prober_targets" in http_get(f"http://127.0.0.1:{port}/metrics", 1))
        return p

    def blackbox(self, port):
        config = os.path.join(self.tmp, "blackbox.yml")
        with open(config, "w") as f:
            f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
                    "      preferred_ip_protocol: ip4\n      valid_status_codes: []\n")
        p = self.start(["prometheus-blackbox-exporter", f"--config.file={config}",
                        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
        wait_until("blackbox_exporter", lambda: self.check_alive(p) or
                   "blackbox" in http_get(f"http://127.0.0.1:{port}/metrics", 1))
        return p

    def nginx(self, port, status_port):
        root = os.path.join(self.tmp, "nginx")
        os.makedirs(os.path.join(root, "logs"), exist_ok=True)
        conf = os.path.join(root, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
worker_rlimit_nofile 8192;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location = /status {{ stub_status; }}
    }}
}}
""")
        p = self.start(["nginx", "-p", root, "-e", os.path.join(root, "error.log"), "-c", conf,
                        "-g", "daemon off;"])
        wait_until("nginx", lambda: self.check_alive(p) or
                   http_get(f"http://127.0.0.1:{port}/t/0001", 1) == "ok\n")
        return p


def nginx_requests(status_port):
    text = http_get(f"http://127.0.0.1:{status_port}/status")
    return int(text.splitlines()[2].split()[2])  # "accepts handled requests" line


def read_results(bootstrap):
    out = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", "web-probes", "-o", "beginning",
                          "-e", "-q", "-f", "%s\n"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"kcat failed: {out.stderr.strip()}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


# --- accuracy ------------------------------------------------------------------------------

def accuracy(stack, n):
    server = DelayServer(DELAY)
    url = f"http://127.0.0.1:{server.port}/delay"
    try:
        # web-prober: one target every 0.2 s; n + 1 checks, the first one not counted.
        targets = os.path.join(stack.tmp, "accuracy-targets.txt")
        with open(targets, "w") as f:
            f.write(url + "\n")
        port = free_port()
        p = stack.web_prober(targets, port, PROBE_INTERVAL_SECS=0.2, PROBE_TIMEOUT_SECS=5)

        def published():
            m = parse_metrics(http_get(f"http://127.0.0.1:{port}/metrics"))
            return metric_sum(m, "web_prober_results_published_total")
        # Polled rarely: this thread's work must not hold the GIL when the server's is due.
        deadline = time.time() + 0.2 * (n + 1) + 30
        time.sleep(0.2 * (n + 1))
        while True:
            stack.check_alive(p)
            if published() >= n + 1:
                break
            if time.time() > deadline:
                raise RuntimeError("web-prober did not publish its accuracy checks in time")
            time.sleep(0.5)
        stack.stop_one(p)
        results = [r for r in read_results(stack.bootstrap) if r["url"] == url]
        results.sort(key=lambda r: r["time"])
        if len(results) < n + 1:
            raise RuntimeError(f"only {len(results)} web-prober results in Kafka, wanted {n + 1}")
        results = results[1:n + 1]
        bad = [r for r in results if r["result"] != "ok"]
        if bad:
            raise RuntimeError(f"web-prober accuracy checks not ok: {bad[:3]}")
        ours_ttfb = [r["phases"]["ttfb_seconds"] for r in results]
        ours_total = [r["phases"]["total_seconds"] for r in results]
        server_kept_ours = server.kept[1:n + 1]

        # blackbox_exporter: n + 1 probes in a row, the first one not counted.
        server.kept.clear()
        bport = free_port()
        b = stack.blackbox(bport)
        probe = (f"http://127.0.0.1:{bport}/probe?module=http_2xx&target="
                 + urllib.parse.quote(url, safe=""))
        theirs_processing, theirs_total = [], []
        for i in range(n + 1):
            m = parse_metrics(http_get(probe))
            if metric_sum(m, "probe_success") != 1:
                raise RuntimeError(f"blackbox_exporter probe failed: {m}")
            if i:
                theirs_processing.append(metric_sum(m, "probe_http_duration_seconds",
                                                    phase="processing"))
                theirs_total.append(metric_sum(m, "probe_duration_seconds"))
        stack.stop_one(b)
        server_kept_theirs = server.kept[1:n + 1]
    finally:
        server.close()
    return {
        "n": n,
        "server_kept": server_kept_ours + server_kept_theirs,
        "rows": [
            ("ttfb vs processing", ours_ttfb, theirs_processing),
            ("total_seconds vs probe_duration", ours_total, theirs_total),
        ],
    }


# --- throughput ----------------------------------------------------------------------------

# wrk's script: each thread cycles through the /probe paths (one per target), the second
# thread starting half way; done() prints the totals as one JSON line.
WRK_LUA = """
local paths = {}
local f = assert(io.open("%(paths)s"))
for line in f:lines() do paths[#paths + 1] = line end
f:close()
local n = 0
local next_thread = 0
function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
end
function init(args)
  n = thread_number * math.floor(#paths / 2)
end
function request()
  n = n %% #paths + 1
  return wrk.format("GET", paths[n])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "status": %%d, "timeout": %%d}\\n', summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class Window:
    """CPU of the prober, nginx (master and worker), devbroker and the whole machine, and
    nginx's request count, sampled at both ends of a window."""

    def __init__(self, stack, prober, nginx, status_port):
        self.pids = {"prober": prober.pid, "nginx": nginx.pid, "devbroker": stack.devbroker.pid}
        self.status_port = status_port

    def sample(self):
        return {
            "t": time.monotonic(),
            "prober": proc_cpu_seconds(self.pids["prober"]),
            "nginx": tree_cpu_seconds(self.pids["nginx"]),
            "devbroker": proc_cpu_seconds(self.pids["devbroker"]),
            "machine": machine_busy_seconds(),
            "nginx_requests": nginx_requests(self.status_port),
        }

    @staticmethod
    def delta(a, b):
        return {k: b[k] - a[k] for k in a}


def throughput_ours(stack, urls, concurrency, seconds, warmup, nginx, status_port):
    targets = os.path.join(stack.tmp, "throughput-targets.txt")
    with open(targets, "w") as f:
        f.write("\n".join(urls) + "\n")
    port = free_port()
    p = stack.web_prober(targets, port, PROBE_INTERVAL_SECS=0.01, PROBE_TIMEOUT_SECS=5,
                         PROBE_CONCURRENCY=concurrency)

    def scrape():
        return parse_metrics(http_get(f"http://127.0.0.1:{port}/metrics"))
    wait_until("web-prober's targets", lambda: metric_sum(scrape(), "web_prober_targets") == len(urls))
    time.sleep(warmup)
    w = Window(stack, p, nginx, status_port)
    s0 = w.sample()
    m0 = scrape()
    time.sleep(seconds)
    s1 = w.sample()
    m1 = scrape()
    stack.check_alive(p)
    d = Window.delta(s0, s1)
    d["helper"] = d["devbroker"]
    checks = metric_sum(m1, "web_prober_checks_total") - metric_sum(m0, "web_prober_checks_total")
    by_result = {k: v - by_label(m0, "web_prober_checks_total", "result").get(k, 0)
                 for k, v in by_label(m1, "web_prober_checks_total", "result").items()}
    published = (metric_sum(m1, "web_prober_results_published_total")
                 - metric_sum(m0, "web_prober_results_published_total"))
    out = {
        "checks": checks,
        "ok": by_result.get("ok", 0),
        "not_ok": {k: v for k, v in by_result.items() if k != "ok" and v},
        "published": published,
        "delivery_errors": metric_sum(m1, "web_prober_delivery_errors_total"),
        "self_cpu": (metric_sum(m1, "process_cpu_seconds_total")
                     - metric_sum(m0, "process_cpu_seconds_total")),
        "rss": proc_peak_rss(p.pid),
        **d,
    }
    stack.stop_one(p)
    return out


def throughput_theirs(stack, urls, concurrency, seconds, warmup, nginx, status_port):
    bport = free_port()
    b = stack.blackbox(bport)
    paths = os.path.join(stack.tmp, "wrk-paths.txt")
    with open(paths, "w") as f:
        for u in urls:
            f.write("/probe?module=http_2xx&target=" + urllib.parse.quote(u, safe="") + "\n")
    lua = os.path.join(stack.tmp, "rotate.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA % {"paths": paths})
    threads = max(1, min(2, concurrency))

    def wrk(duration):
        """Runs wrk; its result line and its CPU seconds (rusage of its whole life)."""
        argv = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "10s",
                "-s", lua, f"http://127.0.0.1:{bport}"]
        out = open(stack.log("wrk"), "w+")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             preexec_fn=die_with_parent)
        p.bench_name = "wrk"
        stack.procs.append(p)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        stack.procs.remove(p)
        out.seek(0)
        text = out.read()
        line = [ln for ln in text.splitlines() if ln.startswith("WRK ")]
        if p.returncode != 0 or not line:
            raise RuntimeError(f"wrk failed ({p.returncode}):\n{text}")
        return json.loads(line[0][4:]), usage.ru_utime + usage.ru_stime

    wrk(warmup)
    stack.check_alive(b)
    w = Window(stack, b, nginx, status_port)
    s0 = w.sample()
    r, wrk_cpu = wrk(seconds)
    s1 = w.sample()
    d = Window.delta(s0, s1)
    d["helper"] = wrk_cpu
    d["t"] = r["duration_us"] / 1e6  # wrk's own window
    stack.check_alive(b)
    spot = []
    for u in urls[:: max(1, len(urls) // 5)][:5]:
        m = parse_metrics(http_get(f"http://127.0.0.1:{bport}/probe?module=http_2xx&target="
                                   + urllib.parse.quote(u, safe="")))
        spot.append(metric_sum(m, "probe_success"))
    errors = {k: r[k] for k in ("connect", "read", "write", "status", "timeout") if r[k]}
    out = {"checks": r["requests"], "errors": errors, "spot": spot, "rss": proc_peak_rss(b.pid),
           **d}
    stack.stop_one(b)
    return out


# --- report --------------------------------------------------------------------------------

def fmt(v, spec):
    return format(v, spec) if v is not None else "-"


def report(args, acc, ours, theirs, versions):
    print(f"web-prober vs blackbox_exporter {versions['blackbox']}, loopback only, "
          f"{os.cpu_count()} cores, load average at start {versions['load']}")
    print()
    kept = [k * 1000 for k in acc["server_kept"]]
    print(f"ACCURACY: {acc['n']} checks each, one at a time, of a server that answers "
          f"{DELAY * 1000:.0f} ms after the request reached it")
    print(f"  delay the server kept (request received -> answer sent): median "
          f"{statistics.median(kept):.3f} ms, max {max(kept):.3f} ms")
    if max(kept) > 1000 * DELAY + 0.5:
        print("  NOTE: the server itself answered late at least once: the machine was busy "
              "(the worst errors below may be the machine's, not the probers')")
    print(f"  {'error vs 50 ms (reported - 50), ms':<44} {'web-prober':>14} {'blackbox_exporter':>18}")
    for name, o, t in acc["rows"]:
        eo = [(v - DELAY) * 1000 for v in o]
        et = [(v - DELAY) * 1000 for v in t]
        print(f"  {name + ', median':<44} {statistics.median(eo):>+14.3f} {statistics.median(et):>+18.3f}")
        print(f"  {name + ', p95':<44} {pct(eo, 95):>+14.3f} {pct(et, 95):>+18.3f}")
        print(f"  {name + ', min .. max':<44} {min(eo):>+6.3f} ..{max(eo):>+6.3f} "
              f"{min(et):>+8.3f} ..{max(et):>+7.3f}")
    print()

    print(f"THROUGHPUT: {len(args.urls)} targets on nginx (1 worker), {args.concurrency} checks "
          f"in flight, {args.seconds} s measured after {args.warmup} s warm-up, each prober alone")
    rows = []

    def row(name, o, t, spec):
        rows.append((name, fmt(o, spec), fmt(t, spec)))
    per_cpu = {}
    for who, r in (("ours", ours), ("theirs", theirs)):
        per_cpu[who] = r["checks"] / r["prober"] if r["prober"] else float("inf")
    row("checks", ours["checks"], theirs["checks"], ",.0f")
    row("checks/s", ours["checks"] / ours["t"], theirs["checks"] / theirs["t"], ",.0f")
    row("requests seen by nginx/s", ours["nginx_requests"] / ours["t"],
        theirs["nginx_requests"] / theirs["t"], ",.0f")
    row("prober CPU s (utime+stime)", ours["prober"], theirs["prober"], ".2f")
    row("prober CPU s per 1,000 checks", 1000 * ours["prober"] / ours["checks"],
        1000 * theirs["prober"] / theirs["checks"], ".4f")
    row("checks per prober CPU second", per_cpu["ours"], per_cpu["theirs"], ",.0f")
    row("peak RSS MiB (VmHWM)", ours["rss"] / 2**20, theirs["rss"] / 2**20, ".1f")
    row("nginx CPU s", ours["nginx"], theirs["nginx"], ".2f")
    rows.append(("driver/sink CPU s (devbroker | wrk)", f"{ours['helper']:.2f}",
                 f"{theirs['helper']:.2f}"))
    row("whole machine busy CPU s", ours["machine"], theirs["machine"], ".2f")
    rows.append(("  of it, other than the above", "%.2f" % (ours["machine"] - ours["prober"]
                 - ours["nginx"] - ours["helper"]), "%.2f" % (theirs["machine"] - theirs["prober"]
                 - theirs["nginx"] - theirs["helper"])))
    print(f"  {'':<44} {'web-prober':>14} {'blackbox_exporter':>18}")
    for name, o, t in rows:
        print(f"  {name:<44} {o:>14} {t:>18}")
    ok_share = ours["ok"] / ours["checks"] if ours["checks"] else 0
    print(f"  web-prober: {ok_share:.2%} of checks ok"
          + (f", others {ours['not_ok']}" if ours["not_ok"] else "")
          + f"; {ours['published']:,.0f} results delivered to Kafka in the window, "
          f"{ours['delivery_errors']:.0f} delivery errors in all; own process_cpu_seconds_total "
          f"{ours['self_cpu']:.2f} s")
    print(f"  blackbox_exporter: wrk errors {theirs['errors'] or 'none'}; probe_success on "
          f"{len(theirs['spot'])} targets checked after: {theirs['spot']}")
    print("  (nginx, wrk and devbroker share the same cores and are not counted as the prober's "
          "CPU; compare checks per CPU second first)")
    for name, r in (("web-prober", ours), ("blackbox_exporter", theirs)):
        other = r["machine"] - r["prober"] - r["nginx"] - r["helper"]
        if other > 0.1 * r["t"] * os.cpu_count():
            print(f"  NOTE: other processes on this machine took {other:.1f} CPU s during "
                  f"{name}'s window: its checks/s is lowered by that, and the comparison is less "
                  "clean; run again on a quiet machine")
    print()

    ratio = per_cpu["ours"] / per_cpu["theirs"]
    ttfb_err = [(v - DELAY) * 1000 for v in acc["rows"][0][1]]
    med = statistics.median(ttfb_err)
    p95 = pct([abs(e) for e in ttfb_err], 95)
    print(f"checks per CPU second, web-prober / blackbox_exporter: {ratio:.2f}x")
    print(f"verdict: timing error <= {ACCURACY_TARGET_MS:g} ms: "
          f"{'met' if abs(med) <= ACCURACY_TARGET_MS else 'NOT met'} "
          f"(web-prober ttfb median error {med:+.3f} ms, p95 |error| {p95:.3f} ms)")
    print(f"verdict: >= {CPU_RATIO_TARGET:g}x blackbox_exporter's checks per CPU second: "
          f"{'met' if ratio >= CPU_RATIO_TARGET else 'NOT met'} ({ratio:.2f}x)")


def env_int(name, default):
    return int(os.environ.get(name, default))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", default="target/release")
    parser.add_argument("--targets", type=int, default=env_int("BENCH_TARGETS", 1000))
    parser.add_argument("--concurrency", type=int, default=env_int("BENCH_CONCURRENCY", 100))
    parser.add_argument("--seconds", type=int, default=env_int("BENCH_SECONDS", 20))
    parser.add_argument("--warmup", type=int, default=env_int("BENCH_WARMUP", 3))
    parser.add_argument("--accuracy-checks", type=int, default=env_int("BENCH_ACCURACY_CHECKS", 30))
    parser.add_argument("--keep-tmp", action="store_true", help="keep the logs and configs")
    args = parser.parse_args()
    if args.targets < 1 or args.concurrency < 1 or args.seconds < 1 or args.accuracy_checks < 2:
        parser.error("targets, concurrency, seconds >= 1 and accuracy checks >= 2")
    for tool in ("prometheus-blackbox-exporter", "nginx", "wrk", "kcat"):
        if not shutil.which(tool):
            parser.error(f"{tool} not found (scripts/bench-web-prober.sh installs it)")
    for binary in ("web-prober", "devbroker"):
        if not os.access(os.path.join(args.bin_dir, binary), os.X_OK):
            parser.error(f"no {binary} in {args.bin_dir}")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    versions = {
        "blackbox": subprocess.run(["prometheus-blackbox-exporter", "--version"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True).stdout.split()[2],
        "load": open("/proc/loadavg").read().split()[0],
    }
    sys.setswitchinterval(0.0002)  # the delay server's thread gets the GIL back quickly
    stack = Stack(args.bin_dir)
    try:
        acc = accuracy(stack, args.accuracy_checks)
        port, status_port = free_port(), free_port()
        args.urls = [f"http://127.0.0.1:{port}/t/{i:04d}" for i in range(1, args.targets + 1)]
        nginx = stack.nginx(port, status_port)
        ours = throughput_ours(stack, args.urls, args.concurrency, args.seconds, args.warmup,
                               nginx, status_port)
        theirs = throughput_theirs(stack, args.urls, args.concurrency, args.seconds, args.warmup,
                                   nginx, status_port)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        print(f"benchmark failed: {e}\n(logs kept in {stack.tmp})", file=sys.stderr)
        stack.stop(keep_tmp=True)
        return 1
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP
        stack.stop()
        raise
    stack.stop(keep_tmp=args.keep_tmp)
    if args.keep_tmp:
        print(f"(logs and configs kept in {stack.tmp})")
    report(args, acc, ours, theirs, versions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
