#!/usr/bin/env python3
"""gatednet benchmark orchestrator: runs every workload against its peers, side by side.

Each side of a comparison runs in its own fresh interpreter (its peer's venv); after the
warm-up the sides alternate run by run (A B B A ...) so both see the same machine load, and
ratios are medians of the same rounds. Writes results.md (a markdown table) and results.csv.
Usage: see benchmarks/README.md (normally through run.sh).
"""
import argparse
import csv
import datetime
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "harness")
sys.path.insert(0, HARNESS)
import workloads as W  # noqa: E402

WORKER = {"gatednet": "worker_gatednet.py", "torch": "worker_torch.py",
          "numpy": "worker_numpy.py", "neural-tangents": "worker_nt.py"}


def base_side(side):
    """'neural-tangents/3' (one configuration of a peer) -> 'neural-tangents'."""
    return side.split("/")[0]


# --------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------

class Worker:
    """One side of a comparison in its own interpreter, paced over stdin/stdout."""

    def __init__(self, side, python, task, log, timeout):
        self.side, self.timeout, self.result, self.stopped = side, timeout, None, False
        env = dict(os.environ, BENCH_INTERACTIVE="1")
        self.p = subprocess.Popen([python, os.path.join(HARNESS, WORKER[base_side(side)]), json.dumps(task)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                  text=True, env=env, cwd=HARNESS)
        self.q = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.q.put(line)
        self.q.put(None)

    def _until(self, *marks):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = self.q.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.kill(f"timed out after {self.timeout:.0f} s")
                return None, None
            if line is None:
                if self.result is None:
                    self.result = {"error": f"worker exited (status {self.p.wait()}) without a result"}
                return None, None
            if line.startswith("@@RESULT@@"):
                self.result = json.loads(line[len("@@RESULT@@"):])
                return "RESULT", self.result
            for m in marks:
                if line.startswith(m):
                    return m, line[len(m):].strip()

    def kill(self, why):
        if self.p.poll() is None:
            self.p.kill()
        self.result = {"error": why}

    def ready(self):
        mark, _ = self._until("@@READY@@")
        return mark == "@@READY@@"

    def run_once(self):
        self.p.stdin.write("run\n")
        self.p.stdin.flush()
        mark, val = self._until("@@TIME@@")
        return float(val) if mark == "@@TIME@@" else None

    def finish(self):
        if self.result is None and self.p.poll() is None:
            try:
                self.p.stdin.write("end\n")
                self.p.stdin.close()
            except BrokenPipeError:
                pass
            self._until()
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
        return self.result or {"error": "no result"}


def run_sides(sides, runs, log, timeout, slow_seconds=None, min_runs=3):
    """sides: list of (side, python or unavailable-reason dict, task). Returns {side: result}.
    Warm-ups run one side after the other; timed runs alternate A B, B A, ...
    If slow_seconds is given, a side whose remaining runs would take longer than that (judged
    from its runs so far) stops after min_runs while the others go on: reported as fewer runs."""
    results, live = {}, []
    for side, python, task in sides:
        if isinstance(python, dict):
            results[side] = python
            continue
        log.write(f"\n===== {side}: {json.dumps(task)}\n")
        log.flush()
        w = Worker(side, python, dict({"runs": runs}, **task), log, timeout)
        if w.ready():
            live.append(w)
        else:
            results[side] = w.finish()
    spent = {id(w): [] for w in live}
    for r in range(runs):
        order = live if r % 2 == 0 else live[::-1]
        for w in order:
            if w.result is None and not w.stopped:
                t = w.run_once()
                if t is not None:
                    spent[id(w)].append(t)
                done = spent[id(w)]
                if (slow_seconds and len(done) >= min_runs
                        and statistics.mean(done) * (runs - len(done)) > slow_seconds):
                    log.write(f"{w.side}: stopping after {len(done)} runs, too slow for the time budget\n")
                    w.stopped = True
                    results[w.side] = w.finish()  # its memory is freed before the next side runs
            if len(live) > 1:
                time.sleep(0.05)  # let the other side's BLAS/OpenMP threads go idle
    for w in live:
        if w.side not in results:
            results[w.side] = w.finish()
    return results


def run_single(side, python, task, log, timeout):
    """A non-paced call (info queries)."""
    env = dict(os.environ)
    env.pop("BENCH_INTERACTIVE", None)
    try:
        p = subprocess.run([python, os.path.join(HARNESS, WORKER[side]), json.dumps(task)],
                           stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                           cwd=HARNESS, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in p.stdout.splitlines()[::-1]:
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    return {"error": f"no result (exit {p.returncode})"}


# --------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------

def plan(args):
    """List of comparisons: dict(id, group, label, size, unit, tasks{side: task}, target,
    ref (GEMM shapes for the peak fraction), flops (gatednet useful flops per run))."""
    smoke = args.smoke
    P = []
    n_train = 512 if smoke else args.train_samples
    batches = [32] if smoke else [32, 256]
    for regime in W.REGIMES:
        for b in batches:
            t = {"workload": "train", "regime": regime, "batch": b, "n": n_train}
            steps = -(-n_train // b)
            P.append(dict(id=f"train_{regime}_b{b}", group="1 training", unit="samples/s",
                          label=f"train {regime}, batch {b}", size=f"{n_train} samples",
                          tasks={"gatednet": t, "torch": t}, target=2.0 if b == 32 else 1.2,
                          ref=W.train_shapes(regime, b),
                          flops=W.flops(W.train_shapes(regime, b)) / b * n_train,
                          steps=steps))
    n_inf = 500 if smoke else 10000
    for regime in W.REGIMES:
        t = {"workload": "infer", "regime": regime, "n": n_inf}
        P.append(dict(id=f"infer_{regime}", group="2 inference", unit="samples/s",
                      label=f"inference {regime}", size=f"{n_inf} test inputs",
                      tasks={"gatednet": t, "torch": t}, target=2.0,
                      ref=W.infer_shapes(regime, min(n_inf, 2048)),
                      flops=W.flops(W.infer_shapes(regime, n_inf))))
    for n in ([300] if smoke else [2000, 5000, 10000]):
        wd = os.path.join(args.scratch, f"weights_npk_{n}")
        pairs = None
        P.append(dict(id=f"npk_{n}", group="3 FC NPK", unit="s", label="FC NPK (w=128, 5 gate layers)",
                      size=f"n={n}", tasks={"gatednet": {"workload": "npk", "n": n, "weights_dir": wd},
                                            "numpy": {"workload": "npk", "n": n, "weights_dir": wd,
                                                      "pairs": pairs}},
                      target=3.0 if n == 10000 else None, mem_target=1.1,
                      ref=W.npk_ref_shapes(n), flops=W.npk_flops(n), check="npk"))
    for n in ([100] if smoke else [500, 1000, 5000]):  # targets at 1000 and 5000
        t = {"workload": "ntk_empirical", "n": n,
             "weights_dir": os.path.join(args.scratch, f"weights_ntk_{n}")}
        # neural-tangents' three implementations, each jitted and compiled ahead of time (no
        # warm-up call needed); the target applies to the fastest. Implementation 1 needs up
        # to a minute per call: the slow-rounds rule stops it after 3 rounds.
        tasks = {"gatednet": t}
        for impl in (args.nt_implementations[-1:] if smoke else args.nt_implementations):
            tasks[f"neural-tangents/{impl}"] = dict(t, implementation=impl, warmup=0)
        sh = W.ntk_ref_shapes(n)
        P.append(dict(id=f"ntk_empirical_{n}", group="4 NTK", unit="s",
                      label="empirical NTK, ReLU MLP (sum over 10 outputs)", size=f"n={n}",
                      tasks=tasks, target=None if n == 500 else 3.0, best_of=True, check="kernel", ref=sh, scale_n=n, min_runs=1,
                      slow_seconds=min(args.slow_seconds, 60),
                      flops=W.ntk_empirical_flops(n),
                      runs=args.runs if smoke else min(args.runs, 5 if n <= 1000 else 3)))
    n = 200 if smoke else 2000
    t = {"workload": "ntk_infinite", "n": n, "depth": 6}
    P.append(dict(id=f"ntk_infinite_{n}", group="4 NTK", unit="s", label="infinite-width NTK, depth 6",
                  size=f"n={n}", tasks={"gatednet": t, "neural-tangents": t}, target=1.0,
                  check="kernel", ref=[(min(n, 2048), min(n, 2048), W.D_IN)],
                  flops=n * (n + 1) / 2 * 2.0 * W.D_IN))
    conv_batches = [(8, 1)] if smoke else [(32, 3), (128, 2)]  # (batch, steps per timed run)
    for regime in (["fixed_hard"] if smoke else ["fixed_hard", "decoupled_soft"]):
        for b, steps in conv_batches:
            ct = {"workload": "conv_train", "batch": b, "steps": steps, "regime": regime}
            sh = W.conv_train_shapes(regime, b)
            P.append(dict(id=f"conv_train_{regime}_b{b}", group="5 conv DGN", unit="samples/s",
                          label=f"GCONV DGN training {regime} (28x28x1)",
                          size=f"batch {b} x {steps} steps",
                          tasks={"gatednet": ct, "torch": ct}, target=1.0, ref=sh,
                          flops=W.flops(sh) * steps, runs=min(args.runs, 5)))
    # in memory up to 10000, then a memory-mapped file from 10000 (both at 10000: the file's
    # own cost is visible apart from the n² law)
    sizes = ([(300, False), (600, True)] if smoke else
             [(1000, False), (2000, False), (5000, False), (10000, False), (10000, True),
              (15000, True), (20000, True)])
    for n, mm in sizes:
        t = {"workload": "scaling", "n": n, "mmap_from": n if mm else n + 1,
             "scratch": args.scratch, "band": 1024 if smoke else 4096}
        P.append(dict(id=f"scaling_{n}" + ("_mmap" if mm else ""), group="6 NPK scaling", unit="s",
                      label="FC NPK scaling", size=f"n={n}", tasks={"gatednet": t}, target=None,
                      ref=W.npk_ref_shapes(n), flops=W.npk_flops(n), scaling=n))
    for c in P:  # how each peer is configured (each worker picks and reports its best)
        for side, task in c["tasks"].items():
            if base_side(side) == "torch":
                task["compile"] = args.torch_compile
            if base_side(side) == "numpy":
                task["forms"] = args.numpy_forms
    if args.only:
        keep = args.only.split(",")
        P = [c for c in P if any(k in c["id"] for k in keep)]
    if args.skip:
        drop = args.skip.split(",")
        P = [c for c in P if not any(k in c["id"] for k in drop)]
    return P


# --------------------------------------------------------------------------------------
# Interpreters / peers
# --------------------------------------------------------------------------------------

def probe_python(python, module, code=None):
    if not python or not os.path.exists(python):
        return f"interpreter {python} missing"
    try:
        p = subprocess.run([python, "-c", code or f"import {module}"], capture_output=True, text=True,
                           timeout=300)
    except subprocess.TimeoutExpired:
        return f"import {module} timed out"
    if p.returncode != 0:
        return f"import {module} failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return None


def interpreters(args):
    """side -> python path, or an {"unavailable": reason} dict (reported in the table)."""
    out = {"gatednet": sys.executable}
    venv_t = os.path.join(HERE, ".venv-torch", "bin", "python")
    venv_nt = os.path.join(HERE, ".venv-nt", "bin", "python")
    install_log = {}
    for name in ("torch", "nt"):
        p = os.path.join(args.scratch_root, f"install-{name}.status")
        if os.path.exists(p):
            install_log[name] = open(p).read().strip()
    if args.smoke:
        out["torch"] = {"unavailable": "not run in smoke mode"}
        out["neural-tangents"] = {"unavailable": "not run in smoke mode"}
        why = probe_python(sys.executable, "numpy")
        out["numpy"] = {"unavailable": f"numpy not importable ({why})"} if why else sys.executable
        return out
    why = probe_python(venv_t, "torch")
    out["torch"] = {"unavailable": f"not installed: {install_log.get('torch', why)}"} if why else venv_t
    why = probe_python(venv_t, "numpy")
    out["numpy"] = {"unavailable": f"not installed: {why}"} if why else venv_t
    # as worker_nt.py imports it: nt's TensorFlow bridge stood in for (installed --no-deps)
    why = probe_python(venv_nt, "neural_tangents", code=(
        "import sys, types\ntry:\n    import tensorflow\nexcept ImportError:\n"
        "    sys.modules['neural_tangents.experimental'] = types.ModuleType('x')\n"
        "import neural_tangents"))
    out["neural-tangents"] = ({"unavailable": f"not installed: {install_log.get('nt', why)}"}
                              if why else venv_nt)
    return out


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

def fmt_num(v, unit):
    if v is None:
        return "–"
    if unit == "samples/s":
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_mem(b):
    if b is None:
        return "–"
    return f"{b / 2**20:.0f} MiB" if b < 2**30 else f"{b / 2**30:.2f} GiB"


def stats(res, unit, items):
    """(median, lo, hi) in the unit (throughput from the *fastest*/slowest run for lo/hi)."""
    t = res.get("times") or []
    if not t:
        return None
    med, lo, hi = statistics.median(t), min(t), max(t)
    if unit == "samples/s":
        return items / med, items / hi, items / lo
    return med, lo, hi


def describe_failure(res):
    if res is None:
        return "not run"
    if "unavailable" in res:
        return res["unavailable"]
    if "error" in res:
        return "ERROR: " + res["error"]
    if not res.get("times"):
        return "no timed runs"
    return None


def items_of(c, res):
    return (res or {}).get("items") or 1


def build_rows(P, results, gemm):
    rows = []
    for c in P:
        n_before = len(rows)
        r = results.get(c["id"], {})
        gn = r.get("gatednet")
        gfail = describe_failure(gn)
        gs = None if gfail else stats(gn, c["unit"], items_of(c, gn))
        peers = [s for s in c["tasks"] if s != "gatednet"] or [None]
        for peer in peers:
            row = dict(id=c["id"], group=c["group"], workload=c["label"], size=c["size"],
                       unit=c["unit"], target=c.get("target"), load=r.get("_load"))
            row["gn_status"] = gfail or "ok"
            if gs:
                row.update(gn_median=gs[0], gn_min=gs[1], gn_max=gs[2], gn_runs=len(gn["times"]))
            row["gn_peak_bytes"] = (gn or {}).get("peak_bytes")
            if gn and gn.get("output_bytes"):
                row["output_bytes"] = gn["output_bytes"]
                if row["gn_peak_bytes"]:
                    row["gn_peak_over_output"] = row["gn_peak_bytes"] / gn["output_bytes"]
            if gs and c.get("flops") and gn.get("times"):
                med_t = statistics.median(gn["times"])
                row["gn_gflops"] = c["flops"] / med_t / 1e9
                ref = statistics.median(gn["after"]) if gn.get("after") else gemm.get(c["id"])
                if ref:
                    row["sgemm_gflops_same_shapes"] = ref
                    row["fraction_of_sgemm"] = row["gn_gflops"] / ref
            if gn and "mode" in gn:
                row["mode"] = gn["mode"]
            if gn and "check_rel_err" in gn:
                row["check_rel_err"] = gn["check_rel_err"]
            if peer:
                pr = r.get(peer)
                pfail = describe_failure(pr)
                row["peer"] = peer
                row["peer_status"] = pfail or "ok"
                row["peer_config"] = (pr or {}).get("config")
                if not pfail:
                    ps = stats(pr, c["unit"], items_of(c, pr))
                    row.update(peer_median=ps[0], peer_min=ps[1], peer_max=ps[2],
                               peer_runs=len(pr["times"]))
                    row["peer_peak_bytes"] = pr.get("peak_bytes")
                    gt, pt = gn.get("times") or [], pr.get("times") or []
                    if gs and gt and len(gt) == len(pt):
                        # median over rounds of the within-round time ratio (same load)
                        row["paired_ratio"] = statistics.median(
                            (p / it_p) / (g / it_g) for g, p, it_g, it_p in
                            zip(gt, pt, [items_of(c, gn)] * len(gt), [items_of(c, pr)] * len(pt)))
                    if gs:
                        # speed-up of gatednet over the peer: ratio of the medians
                        if c["unit"] == "samples/s":
                            row["ratio"] = gs[0] / ps[0]
                        else:
                            row["ratio"] = ps[0] / gs[0]
                    if gn and pr.get("samples") and gn.get("samples"):
                        want = {(i, j): v for i, j, v in gn["samples"]}
                        errs = [abs(v - want[(i, j)]) / max(abs(want[(i, j)]), 1e-30)
                                for i, j, v in pr["samples"] if (i, j) in want]
                        if errs:
                            row["check_rel_err"] = max(errs)
            rows.append(row)
        if c.get("best_of"):  # the target applies to the fastest configuration of the peer
            mine = [x for x in rows if x["id"] == c["id"]]
            ok = [x for x in mine if x.get("ratio") is not None]
            best = min(ok, key=lambda x: x["ratio"]) if ok else None
            for x in mine:
                x["fastest_peer"] = x is best
                if best is not None and x is not best:
                    x["target"] = None
        for row in rows[n_before:]:
            tgt = row.get("target")
            if tgt is not None:
                row["met"] = ("yes" if row.get("ratio", 0) >= tgt else "NO") if "ratio" in row else "n/a"
            if c.get("mem_target") and row.get("gn_peak_over_output") is not None:
                row["mem_met"] = "yes" if row["gn_peak_over_output"] <= c["mem_target"] else "NO"
    return rows


CSV_FIELDS = ["id", "group", "workload", "size", "unit", "load", "gn_status", "gn_median", "gn_min",
              "gn_max", "gn_runs", "peer", "peer_status", "peer_median", "peer_min", "peer_max",
              "peer_runs", "peer_config", "fastest_peer", "ratio", "paired_ratio", "target", "met", "gn_peak_bytes", "peer_peak_bytes",
              "output_bytes", "gn_peak_over_output", "mem_met", "gn_gflops",
              "sgemm_gflops_same_shapes", "fraction_of_sgemm", "check_rel_err", "mode"]


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def markdown(rows, machine, args, elapsed):
    L = []
    L.append(f"# gatednet benchmarks{' (smoke)' if args.smoke else ''}\n")
    L.append(f"Run {machine['date']} in {elapsed / 60:.1f} min. Each number is the median of "
             f"{args.runs} timed runs after a warm-up (min–max in brackets); the two sides of a "
             "comparison run in separate processes and alternate run by run, so the ratio compares "
             "runs made under the same machine load. Ratio = gatednet's speed over the peer's "
             "(> 1: gatednet faster).\n")
    L.append("**Machine.** " + machine["line"] + "\n")
    for k in ("gatednet", "blas", "peers"):
        if machine.get(k):
            L.append(f"- {machine[k]}")
    L.append("")
    L.append("| workload | size | gatednet | peer | peer configuration | peer result | ratio | target | met | gatednet peak mem | peer peak mem | gatednet GFLOP/s (% of sgemm) | load |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        unit = r["unit"]
        if r["gn_status"] == "ok":
            g = f"{fmt_num(r['gn_median'], unit)} {unit} ({fmt_num(r['gn_min'], unit)}–{fmt_num(r['gn_max'], unit)})"
            if r.get("gn_runs") != args.runs:
                g += f" [{r.get('gn_runs')} runs]"
        else:
            g = r["gn_status"]
        if r.get("peer"):
            p = (f"{fmt_num(r['peer_median'], unit)} ({fmt_num(r['peer_min'], unit)}–{fmt_num(r['peer_max'], unit)})"
                 if r["peer_status"] == "ok" else r["peer_status"])
            if r["peer_status"] == "ok" and r.get("peer_runs") != args.runs:
                p += f" [{r.get('peer_runs')} runs]"
        else:
            p = "–"
        ratio = f"**{r['ratio']:.2f}×**" if r.get("ratio") is not None else "–"
        spread = [r.get("gn_max", 0) / r["gn_min"] if r.get("gn_min") else 1,
                  r.get("peer_max", 0) / r["peer_min"] if r.get("peer_min") else 1]
        if r.get("ratio") is not None and max(spread) > 1.5:
            ratio += " ~"  # a side's slowest run was > 1.5x its fastest: load noise
        tgt = f"≥ {r['target']:g}×" if r.get("target") is not None else "–"
        met = r.get("met", "–")
        gm = fmt_mem(r.get("gn_peak_bytes"))
        if r.get("gn_peak_over_output") is not None:
            gm += f" ({r['gn_peak_over_output']:.2f}× output{', ' + r['mode'] if r.get('mode') else ''})"
        elif r.get("mode"):
            gm += f" ({r['mode']})"
        frac = "–"
        if r.get("gn_gflops") is not None:
            frac = f"{r['gn_gflops']:.0f}"
            if r.get("fraction_of_sgemm") is not None:
                frac += f" ({100 * r['fraction_of_sgemm']:.0f}% of {r['sgemm_gflops_same_shapes']:.0f})"
        peer = r.get("peer") or "–"
        if r.get("fastest_peer"):
            peer += " (fastest)"
        cfg = (r.get("peer_config") or "–").replace("|", "/")
        L.append(f"| {r['workload']} | {r['size']} | {g} | {peer} | {cfg} | {p} | {ratio} | "
                 f"{tgt} | {met} | {gm} | {fmt_mem(r.get('peer_peak_bytes'))} | {frac} | {r.get('load') or '–'} |")
    L.append("")
    scal = [r for r in rows if r["group"] == "6 NPK scaling" and r["gn_status"] == "ok"]
    if scal:
        L.append("**NPK scaling (n² law).** Time per kernel entry should stay flat as n grows:\n")
        L.append("| n | seconds | ns per entry (n²/2 computed) | peak memory | mode |")
        L.append("|---|---|---|---|---|")
        for r in scal:
            n = int(r["size"].split("=")[1])
            L.append(f"| {n} | {r['gn_median']:.3g} | {1e9 * r['gn_median'] / (n * n / 2):.2f} | "
                     f"{fmt_mem(r.get('gn_peak_bytes'))} | {r.get('mode', '')} |")
        L.append("")
    checks = [r for r in rows if r.get("check_rel_err") is not None]
    if checks:
        L.append("**Cross-checks.** " + "; ".join(
            f"{r['id']}: max relative difference {r['check_rel_err']:.1e}" for r in checks) + ".\n")
    L.append("*~* after a ratio: one side's slowest run took more than 1.5× its fastest (the "
             "machine's load changed during the comparison); read that ratio with care.\n")
    L.append("*load*: the 1-minute load average when the comparison started (2 cores; the harness itself accounts for about 1–2, more means "
             "other processes competed for the CPUs).\n")
    L.append("Peak memory is the growth of the process's peak RSS (VmHWM, reset just before the "
             "call) over its RSS before the call, in the first (warm-up) run, including the "
             "output buffer. GFLOP/s counts useful flops (symmetric kernels: one triangle); the "
             "sgemm peak is OpenBLAS (the library gatednet links) running the same GEMM shapes "
             "back to back with the same thread count, measured in the same run.")
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------------------
# Machine line
# --------------------------------------------------------------------------------------

def machine_info(args, interp, log):
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                          "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    m = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
         "cpu": cpu, "cores": os.cpu_count(), "env": env}
    probe = ["gn_kernel", "gn_gates_packed"] + sorted({f for f in args.probe})
    gi = run_single("gatednet", sys.executable, {"workload": "info", "probe": probe}, log, 300)
    m["gatednet_info"] = gi
    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../Sources"],
                               capture_output=True, text=True).stdout.strip()
        m["commit"] = commit + (" + uncommitted engine changes" if dirty else "")
    except OSError:
        m["commit"] = "?"
    ob = gi.get("openblas") if isinstance(gi, dict) else None
    m["line"] = (f"{cpu}, {m['cores']} cores; threads {args.threads}; "
                 f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={env['OPENBLAS_L2_SIZE']}")
    m["gatednet"] = (f"gatednet {gi.get('version', '?')} (commit {m['commit']}), {gi.get('path', '?')}"
                     if isinstance(gi, dict) and "version" in gi else f"gatednet: {gi}")
    m["blas"] = (f"BLAS under gatednet: {ob[1]}, kernel (core) **{ob[0]}**, {ob[2]} threads"
                 if ob else "BLAS under gatednet: could not query OpenBLAS")
    peers = []
    for side, task in (("numpy", {"workload": "info"}), ("torch", {"workload": "info"}),
                       ("neural-tangents", {"workload": "info"})):
        py = interp.get(side)
        if isinstance(py, dict):
            peers.append(f"{side}: {py['unavailable']}")
            continue
        r = run_single(side, py, task, log, 600)
        m[side + "_info"] = r
        if "error" in r:
            peers.append(f"{side}: info failed ({r['error']})")
        elif side == "numpy":
            peers.append(f"numpy {r['version']} with {r['blas'].get('name')} {r['blas'].get('version')} "
                         f"(its own OpenBLAS; sgemm 2048×2048×784 {r['sgemm_gflops_2048x2048x784']:.0f} GFLOP/s)")
        elif side == "torch":
            peers.append(f"torch {r['version']} ({r['threads']} threads; {'; '.join(r['blas'])}; "
                         f"sgemm 2048×2048×784 {r['sgemm_gflops_2048x2048x784']:.0f} GFLOP/s)")
        else:
            peers.append(f"neural-tangents {r.get('nt')} on jax {r.get('jax')} / jaxlib {r.get('jaxlib')}, "
                         f"numpy {r.get('numpy')}")
    m["peers"] = "Peers: " + "; ".join(peers)
    return m


# --------------------------------------------------------------------------------------

def write_outputs(P, results, gemm, machine, args, t_start):
    rows = build_rows(P, results, gemm)
    md = markdown(rows, machine, args, time.time() - t_start)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    write_csv(rows, os.path.join(args.out, "results.csv"))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": machine, "results": results, "gemm": gemm}, f, indent=1, default=str)
    return rows, md


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run, gatednet (+numpy)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per side (default 7; smoke 1)")
    ap.add_argument("--only", default=None, help="comma-separated id substrings to run")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="output directory")
    ap.add_argument("--train-samples", type=int, default=15000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nt-implementations", default="1,2,3",
                    help="neural-tangents NtkImplementations of empirical_ntk_fn to run (each reported)")
    ap.add_argument("--torch-compile", choices=("auto", "on", "off"), default="auto",
                    help="auto: time eager and torch.compile per workload and keep the faster")
    ap.add_argument("--numpy-forms", default="plain,tiled",
                    help="numpy NPK forms to try; the faster is timed")
    ap.add_argument("--skip", default=None, help="comma-separated id substrings to leave out")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per worker step")
    ap.add_argument("--slow-seconds", type=float, default=240,
                    help="stop a comparison's timed rounds at 3 if the rest would take longer")
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.smoke else 7)
    args.nt_implementations = [int(v) for v in args.nt_implementations.split(",") if v]
    args.out = os.path.abspath(args.out)  # workers run in harness/: relative paths would move
    os.makedirs(args.out, exist_ok=True)
    args.scratch_root = args.out
    args.scratch = tempfile.mkdtemp(prefix="scratch-", dir=args.out)
    args.probe = ["gn_ntk_empirical", "gn_ntk_infinite", "gn_conv_network_create"]
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BENCH_THREADS"):
        os.environ.setdefault(k, str(args.threads))
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true "
                          f"intra_op_parallelism_threads={args.threads}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.smoke:
        os.environ["BENCH_SMOKE"] = "1"
    t_start = time.time()
    log = open(os.path.join(args.out, "workers.log"), "w")
    interp = interpreters(args)
    machine = machine_info(args, interp, log)
    P = plan(args)
    print(machine["line"])
    for k in ("gatednet", "blas", "peers"):
        print(machine[k])
    gemm = {}
    results = {}
    history = {}  # (group, label, side) -> (n, median seconds) of sized comparisons
    for c in P:
        sides = []
        for s in c["tasks"]:
            task = c["tasks"][s]
            if s == "gatednet" and c.get("ref"):  # GEMM-only speed measured after each run
                task = dict(task, ref_shapes=c["ref"], ref_seconds=0.01 if args.smoke else 0.1)
            sides.append((s, interp[base_side(s)], task))
        load = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
        for i, (s, py, task) in enumerate(sides):  # too slow at this size, judged from a smaller one
            prev = history.get((c["group"], c["label"], s))
            if prev and c.get("scale_n") and not isinstance(py, dict) and not args.smoke:
                n0, t0 = prev
                guess = t0 * (c["scale_n"] / n0) ** 2
                if guess * c.get("min_runs", 3) > c.get("slow_seconds", args.slow_seconds):
                    sides[i] = (s, {"unavailable": (
                        f"not run: {t0:.3g} s a call at n={n0}, so about {guess:.0f} s at n={c['scale_n']} "
                        f"by the n² law; {c.get('min_runs', 3)} runs exceed this comparison's "
                        f"{c.get('slow_seconds', args.slow_seconds):.0f} s budget")}, task)
        results[c["id"]] = run_sides(sides, c.get("runs", args.runs), log, args.timeout,
                                     slow_seconds=None if args.smoke else c.get("slow_seconds", args.slow_seconds),
                                     min_runs=c.get("min_runs", 3))
        for s, r in results[c["id"]].items():
            if c.get("scale_n") and isinstance(r, dict) and r.get("times"):
                history[(c["group"], c["label"], s)] = (c["scale_n"], statistics.median(r["times"]))
        results[c["id"]]["_load"] = load
        brief = []
        for s, r in results[c["id"]].items():
            if s.startswith("_"):
                continue
            fail = describe_failure(r)
            brief.append(f"{s}: {fail[:80]}" if fail else
                         f"{s}: {statistics.median(r['times']):.4g}s"
                         + (f" [{r['config']}]" if r.get("config") else ""))
        print(f"[{time.time() - t_start:6.0f}s] {c['id']:28s} " + " | ".join(brief), flush=True)
        # the outputs so far, rewritten after every comparison (an interrupted run keeps them)
        write_outputs([q for q in P if q["id"] in results], results, gemm, machine, args, t_start)
    rows, md = write_outputs(P, results, gemm, machine, args, t_start)
    shutil.rmtree(args.scratch, ignore_errors=True)
    print()
    print(md)
    bad = [r for r in rows if r["gn_status"].startswith("ERROR")]
    if bad:
        print("gatednet errors:", ", ".join(r["id"] for r in bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
