"""The load client processes of one bench run (tools/bench/loadgen.py, each its own process so it
never shares a GIL with the server it measures): start them, wait until every one is connected, say
go, sample the server's CPU and memory over the measured window, merge their results.
"""

import json
import math
import os
import subprocess
import sys
import time

from tools.bench import profile
from tools.bench.latency import percentile_ms
from tools.common import procstat
from tools.common.hubproc import REPO, repo_env


class BenchError(Exception):
    pass


class Clients:
    def __init__(self, tmp, tag, url, creds, cfg, procs):
        self.procs = []
        per = int(math.ceil(len(creds) / float(procs)))
        for i in range(procs):
            part = creds[i * per : (i + 1) * per]
            if not part:
                break
            err = open(os.path.join(tmp, "client-%s-%d.log" % (tag, i)), "w")
            p = subprocess.Popen(
                [sys.executable, "-m", "tools.bench.loadgen"],
                cwd=REPO,
                env=repo_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            c = dict(cfg, url=url, creds=part, seed=cfg.get("seed", 7) + i)
            p.stdin.write(json.dumps(c) + "\n")
            p.stdin.flush()
            self.procs.append((p, err))

    @property
    def pids(self):
        return [p.pid for p, _ in self.procs]

    def _read(self, p, what):
        line = p.stdout.readline()
        if not line:
            p.wait()
            raise BenchError("load client %d exited (%s) before %s; see its log" % (p.pid, p.returncode, what))
        return json.loads(line)

    def ready(self):
        return [self._read(p, "connecting") for p, _ in self.procs]

    def go(self):
        for p, _ in self.procs:
            p.stdin.write("go\n")
            p.stdin.flush()

    def results(self):
        out = [self._read(p, "its result") for p, _ in self.procs]
        for p, err in self.procs:
            p.wait(timeout=60)
            err.close()
        return out

    def kill(self):
        for p, err in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            err.close()


def merge(results):
    out = {}
    for key in (
        "connected",
        "refused",
        "dropped",
        "ops",
        "requests_sent",
        "errors",
        "unexpected",
        "lost",
        "reserved_ok",
        "reserve_conflicts",
        "reserved_ok_window",
        "positions_sent",
        "positions_acked",
    ):
        out[key] = sum(r[key] for r in results)
    out["duration_s"] = results[0]["duration_s"]
    out["elapsed_s"] = max(r["elapsed_s"] for r in results)
    barriers = [r["barrier_s"] for r in results if r["barrier_s"] is not None]
    out["barrier_s"] = max(barriers) if barriers else None
    out["client_cpu_pct"] = round(sum(r["client_cpu_pct"] for r in results), 1)
    out["error_samples"] = [s for r in results for s in r["error_samples"]][:5]
    if results[0].get("timeline") is not None:
        worst = {}
        for r in results:
            for sec, v in r["timeline"].items():
                worst[int(sec)] = max(worst.get(int(sec), 0.0), v)
        out["worst_ms_per_second"] = [worst.get(i, 0.0) for i in range(int(max(worst) + 1 if worst else 0))]
    hist = {}
    for r in results:
        for b, n in r["hist"].items():
            hist[int(b)] = hist.get(int(b), 0) + n
    for name, q in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99), ("p999_ms", 0.999), ("max_ms", 1.0)):
        out[name] = percentile_ms(hist, q)
    out["latency_samples"] = sum(hist.values())
    return out


def drive(tmp, tag, url, creds, cfg, procs, server_pid):
    """Connect, measure, and return the merged figures of one server."""
    clients = Clients(tmp, tag, url, creds, cfg, procs)
    try:
        ready = clients.ready()
        connected = sum(r["connected"] for r in ready)
        refused = sum(r["refused"] for r in ready)
        mem_ready = procstat.memory_mb(server_pid) if server_pid else None
        window = procstat.CpuWindow([server_pid] if server_pid else [])
        clients.go()
        window.start()
        # CPU over the measured window only (warmup excluded), sampled from this process.
        time.sleep(float(cfg.get("warmup", 0)))
        window.start()
        spy = None
        if cfg.get("profile") and server_pid:
            spy = profile.start(server_pid, cfg["duration"], cfg["profile"] + "." + tag)
        time.sleep(float(cfg["duration"]))
        cpu = window.stop()
        if spy is not None:
            spy.wait(timeout=60)
        mem_run = procstat.memory_mb(server_pid) if server_pid else None
        results = clients.results()
    except BaseException:
        clients.kill()
        raise
    m = merge(results)
    m["connect_s"] = max(r["connect_s"] for r in ready)
    if cfg.get("profile") and server_pid and os.path.exists(cfg["profile"] + "." + tag):
        m["profile"] = profile.summarize(cfg["profile"] + "." + tag)
        m["profile"]["file"] = cfg["profile"] + "." + tag
    m["refused"] = refused
    m["refused_samples"] = [s for r in ready for s in r["refused_samples"]][:5]
    m["connected"] = connected
    m["server_cpu_pct"] = cpu.get(server_pid) if server_pid else None
    m["server_rss_ready_mb"] = round(mem_ready["rss_mb"], 1) if mem_ready else None
    m["server_rss_mb"] = round(mem_run["rss_mb"], 1) if mem_run else None
    m["server_hwm_mb"] = round(mem_run["hwm_mb"], 1) if mem_run and "hwm_mb" in mem_run else None
    return m
