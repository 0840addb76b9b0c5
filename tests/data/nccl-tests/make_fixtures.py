#!/usr/bin/env python3
"""Writes the nccl-tests outputs beside this script (rewrites them whole; run from anywhere).

Each file is what nccl-tests 2.19.6 prints or writes, format for format: the stdout lines are the
printf formats of its src/util.cu (writeDeviceReport, writeResultHeader, writeBenchmarkLinePreamble,
writeBenchmarkLineBody with getFloatStr, writePerIterReport, writeTimestamp, writeResultFooter,
writeErrors) and the JSON is what its hand-written emitter produces (no spaces, "%lf" doubles,
booleans as the strings "true"/"false", '/' escaped, the root as the "%6i" string, out_of_place before
in_place, config.devices one per process, -I 1's *_per_iter objects with computeIterStats'
statistics). The numbers are synthetic, chosen to exercise compare's verdicts: see README.md.
This script is ours; it re-states those formats, it does not contain nccl-tests' code.
"""
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "2.19.6"
NCCL = 22703  # NCCL 2.27.3


def float_str(value, width):
    """getFloatStr: the widest of %.2f, %.1f, %.0f that fits `width`, else exponent notation."""
    for fmt in ("%*.2f", "%*.1f", "%*.0f"):
        text = fmt % (width, value)
        if len(text) <= width:
            return text
    return ("%*.1e" if width >= 7 else "%*.0e") % (width, value)


def g(value):
    """C's %6g."""
    return "%6g" % value


def iter_stats(times):
    """computeIterStats: sorted; p50 = sorted[n/2]; p95/p99 by nearest rank; population stdev."""
    s = sorted(times)
    n = len(s)
    idx = lambda p: min(n - 1, (n * p + 99) // 100 - 1)
    avg = sum(s) / n
    stdev = math.sqrt(sum((t - avg) ** 2 for t in s) / n)
    return dict(min=s[0], max=s[-1], p50=s[n // 2], p95=s[idx(95)], p99=s[idx(99)], avg=avg, stdev=stdev)


class Lcg:
    """A small deterministic generator, so the fixtures are the same on every run."""

    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return (self.x >> 11) / float(1 << 53)


def process_times(rng, mean, procs, iters, straggler=None):
    """Per-process per-iteration times around `mean`; `straggler` = (process, iteration, factor)."""
    rows = []
    for p in range(procs):
        row = []
        for i in range(iters):
            t = mean * (0.9 + 0.2 * rng.next())
            if straggler and straggler[0] == p and straggler[1] == i:
                t *= straggler[2]
            row.append(round(t, 3))
        rows.append(row)
    return rows


# ---- stdout ----------------------------------------------------------------------------------

def header(program, ranks, min_b, max_b, factor, iters, warmup, per_iter_skip=None, per_iter=False, tag=""):
    out = []
    out.append("# nccl-tests version %s nccl-headers=%d nccl-library=%d" % (VERSION, NCCL, NCCL))
    out.append("# Collective test starting: %s" % program)
    out.append("# nThread %d nGpus %d minBytes %d maxBytes %d step: %d(%s) warmup iters: %d iters: %d agg iters: %d validation: %d graph: %d unalign: %d"
               % (1, 1, min_b, max_b, factor, "factor", warmup, iters, 1, 1, 0, 0))
    if per_iter:
        line = "# Per-Iteration Report: CUDA event timing; i_* uses max over process rows"
        if per_iter_skip:
            line += "; summary skips first %d iterations" % per_iter_skip
        out.append(line + " ")
    out.append("#")
    out.append("# Using devices")
    for r, (host, dev, bus, name) in enumerate(ranks):
        out.append("#  Rank %2d Group %2d Pid %6d on %10s device %2d [%04x:%02x:%02x] %s"
                   % (r, 0, 4242 + r, host, dev, 0, bus, 0, name))
    return out


def heading(per_iter, timestamps, cputime=False):
    ts_lbl = "timestamp" if timestamps else ""
    ts_pad = 19 if timestamps else 0
    ts_fmt = "%Y-%m-%d %H:%M:%S" if timestamps else ""
    t = "cputime" if cputime else "time"
    out = ["#"]
    if per_iter:
        out.append("# %10s  %12s  %8s  %6s  %6s              out-of-place (+ per-iteration)                                in-place (+ per-iteration)" % ("", "", "", "", ""))
        out.append(("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %7s  %7s  %7s  %7s  %6s  %6s  %6s  %7s  %7s  %7s  %7s %*s")
                   % ("size", "count", "type", "redop", "root", t, "algbw", "busbw", "#wrong", "i_min", "i_max", "i_p99", "i_cv%",
                      t, "algbw", "busbw", "#wrong", "i_min", "i_max", "i_p99", "i_cv%", ts_pad, ts_lbl))
        out.append(("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %7s  %7s  %7s  %7s  %6s  %6s  %6s  %7s  %7s  %7s  %7s %*s")
                   % ("(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(us)", "(us)", "(%)",
                      "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(us)", "(us)", "(%)", ts_pad, ts_fmt))
    else:
        out.append("# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          " % ("", "", "", "", ""))
        out.append("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s %*s"
                   % ("size", "count", "type", "redop", "root", t, "algbw", "busbw", "#wrong", t, "algbw", "busbw", "#wrong", ts_pad, ts_lbl))
        out.append("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s %*s"
                   % ("(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "", ts_pad, ts_fmt))
    return out


def body(time_us, algbw, busbw, wrong):
    text = "  %7s  %6s  %6s" % (float_str(time_us, 7), float_str(algbw, 6), float_str(busbw, 6))
    return text + ("  %6s" % g(wrong) if wrong is not None else "    N/A")


def per_iter_cols(stats, times):
    cv = stats["stdev"] / stats["avg"] * 100.0 if stats["avg"] > 0 else 0.0
    return "  %7s  %7s  %7s  %7s" % (float_str(stats["min"], 7), float_str(stats["max"], 7), float_str(stats["p99"], 7), float_str(cv, 7))


def footer(program, wrong_checks, avg_bw):
    return ["# %-20s : %d %s" % ("Out of bounds values", wrong_checks, "FAILED" if wrong_checks else "OK"),
            "# %-20s : %s %s" % ("Avg bus bandwidth", "%g" % avg_bw, ""),
            "#",
            "# Collective test concluded: %s" % program,
            "#",
            ""]


# ---- JSON ------------------------------------------------------------------------------------

def jstr(s):
    out = []
    for c in s:
        if c in '"\\/':
            out.append("\\" + c)
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def jval(v):
    if v is None:
        return "null"
    if isinstance(v, bool):  # jsonBool writes a string
        return jstr("true" if v else "false")
    if isinstance(v, int):
        return "%d" % v
    if isinstance(v, float):
        return '"nan"' if v != v else "%f" % v
    if isinstance(v, str):
        return jstr(v)
    if isinstance(v, list):
        return "[" + ",".join(jval(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(jstr(k) + ":" + jval(x) for k, x in v.items()) + "}"
    raise TypeError(v)


def bw(size, time_us, factor):
    algbw = size / 1e9 / (time_us * 1e-6)
    return algbw, algbw * factor


# ---- the fixtures ----------------------------------------------------------------------------

SIZES = [32768, 65536, 131072, 262144]
VM4 = [("vm", r, 0x18 + 0x10 * r, "NVIDIA H200") for r in range(4)]


def all_reduce_log():
    """all_reduce_perf -b 32K -e 256K -f 2 -n 10 on 4 ranks: times close to base_4ranks.json's."""
    times = {32768: (121.9, 126.3), 65536: (102.4, 147.1), 131072: (204.0, 1208.4), 262144: (370.6, 262.5)}
    out = header("all_reduce_perf", VM4, SIZES[0], SIZES[-1], 2, 10, 1)
    out += heading(False, False)
    factor = 2 * 3 / 4
    busbws = []
    for size in SIZES:
        line = "%12d  %12d  %8s  %6s  %6s" % (size, size // 4, "float", "sum", "%6i" % -1)
        for t in times[size]:
            a, b = bw(size, t, factor)
            busbws.append(b)
            line += body(t, a, b, 0)
        out.append(line)
    out += footer("all_reduce_perf", 0, sum(busbws) / len(busbws))
    return "\n".join(out)


def all_gather_json():
    """all_gather_perf -b 32K -e 256K -f 2 -n 10 -I 1 -K 1 -J ... on 4 ranks over 2 hosts, about 0.4 x
    base_4ranks.json's times (an older, faster history), rank 2 straggling at iteration 3 of 64K."""
    rng = Lcg(19)
    means = {32768: (18.0, 28.5), 65536: (35.0, 29.0), 131072: (34.3, 42.2), 262144: (47.5, 43.0)}
    devices = [dict(rank=r, group=0, pid=5000 + r, hostname=h, device=r % 2, device_hex="0000:%02x:00" % (0x18 + 0x10 * (r % 2)),
                    device_info="NVIDIA H200") for r, h in enumerate(["node1", "node1", "node2", "node2"])]
    results = []
    busbws = []
    for size in SIZES:
        count = size // 4 // 4
        r = dict(size=size, count=count, type="float", redop="none", root="%6i" % -1)
        for key, mean in zip(("out_of_place", "in_place"), means[size]):
            straggler = (2, 3, 4.0) if size == 65536 and key == "out_of_place" else None
            rows = process_times(rng, mean, 4, 10, straggler)
            times = [max(rows[p][i] for p in range(4)) for i in range(10)]
            stats = iter_stats(times[1:])
            a, b = bw(size, mean, 3 / 4)
            busbws.append(b)
            r[key] = dict(time=mean, alg_bw=a, bus_bw=b, nwrong=0.0)
            r[key + "_per_iter"] = dict(skipped_iterations=1, min_us=stats["min"], max_us=stats["max"], avg_us=stats["avg"],
                                        p50_us=stats["p50"], p95_us=stats["p95"], p99_us=stats["p99"], stdev_us=stats["stdev"],
                                        cv_pct=stats["stdev"] / stats["avg"] * 100.0, times_us=times, per_process_max_times_us=rows)
        r["actual_iterations"] = 10
        r["experiment_name"] = ""
        results.append(r)
    doc = dict(version=3, start_time="2025-06-01 10:00:00",
               args=["./build/all_gather_perf", "-b", "32K", "-e", "256K", "-f", "2", "-n", "10", "-I", "1", "-K", "1", "-J", "history/all_gather.json"],
               env=["NCCL_DEBUG=WARN", "PATH=/usr/local/bin:/usr/bin"], nccl_version=NCCL,
               config=dict(nthreads=1, ngpus=1, minimum_bytes=SIZES[0], maximum_bytes=SIZES[-1], step_factor=2, warmup_iters=1,
                           iterations=10, aggregated_iterations=1, validation=1, graph=0, blocking_collectives=False,
                           per_iter_timing=True, per_iter_skip=1, parallel_init=False, devices=devices),
               results=results, out_of_bounds=dict(count=0, okay=True),
               average_bus_bandwidth=dict(bandwidth=sum(busbws) / len(busbws), okay="unchecked"),
               errors=[""], end_time="2025-06-01 10:00:02")
    return jval(doc)


def tagged_log():
    """mpirun --tag-output of two tests on 2 ranks, -I 1 -S 1, with NCCL INFO lines in between."""
    rng = Lcg(7)
    ranks = [("node1", 0, 0x18, "NVIDIA H200"), ("node1", 1, 0x2a, "NVIDIA H200")]
    lines = []
    for program, factor, redop in (("all_reduce_perf", 1.0, "sum"), ("sendrecv_perf", 1.0, "sum")):
        lines += header(program, ranks, 1024, 4096, 2, 8, 1, per_iter=True)
        lines.append("node1:4242:4242 [0] NCCL INFO NCCL version 2.27.3+cuda12.9")
        lines += heading(True, True)
        busbws = []
        for k, size in enumerate([1024, 2048, 4096]):
            line = "%12d  %12d  %8s  %6s  %6s" % (size, size // 4, "float", redop, "%6i" % -1)
            for mean in (9.0 + k, 9.5 + k):
                rows = process_times(rng, mean, 2, 8)
                times = [max(rows[p][i] for p in range(2)) for i in range(8)]
                stats = iter_stats(times)
                a, b = bw(size, mean, factor)
                busbws.append(b)
                line += body(mean, a, b, 0) + per_iter_cols(stats, times)
            line += "%21s" % ("2025-06-01 10:00:%02d" % k)
            lines.append(line)
        lines += footer(program, 0, sum(busbws) / len(busbws))
    return "\n".join("[1,0]<stdout>:" + l if not l.startswith("node1:") else l for l in lines)


def old_log():
    """nccl-tests 2.10's columns (no root, `error` max delta, no test name line), 4 ranks."""
    out = ["# nThread 1 nGpus 1 minBytes 32768 maxBytes 262144 step: 2(factor) warmup iters: 5 iters: 20 validation: 1 ",
           "#",
           "# Using devices"]
    for r in range(4):
        out.append("#   Rank %2d Pid %6d on %10s device %2d [0x%02x] %s" % (r, 4000 + r, "vm", r, 0x18 + r, "Tesla V100-SXM2-32GB"))
    out.append("#")
    out.append("#                                                       out-of-place                       in-place          ")
    out.append("#       size         count      type   redop     time   algbw   busbw  error     time   algbw   busbw  error")
    out.append("#        (B)    (elements)                       (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       ")
    for size, t in zip(SIZES, (30.1, 33.5, 40.2, 55.9)):
        a, b = bw(size, t, 1.5)
        out.append("%12d  %12d  %8s  %6s  %7s  %6s  %6s  %5.0e  %7s  %6s  %6s  %5.0e"
                   % (size, size // 4, "float", "sum", float_str(t, 7), float_str(a, 6), float_str(b, 6), 0.0,
                      float_str(t, 7), float_str(a, 6), float_str(b, 6), 0.0))
    out += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 4.21 ", "#", ""]
    return "\n".join(out)


def died_json():
    """all_reduce_perf -J whose run died during its third row: nccl-tests never closed the document."""
    doc = dict(version=3, start_time="2025-06-02 09:00:00", args=["./all_reduce_perf", "-b", "32K", "-e", "256K", "-J", "r.json"],
               env=[], nccl_version=NCCL,
               config=dict(nthreads=1, ngpus=1, minimum_bytes=32768, maximum_bytes=262144, step_factor=2, warmup_iters=1,
                           iterations=20, aggregated_iterations=1, validation=1, graph=0, blocking_collectives=False,
                           per_iter_timing=False, per_iter_skip=0, parallel_init=False,
                           devices=[dict(rank=r, group=0, pid=6000 + r, hostname="vm", device=r, device_hex="0000:%02x:00" % (0x18 + r),
                                         device_info="NVIDIA H200") for r in range(4)]),
               results=[])
    for size, t in zip(SIZES[:3], (119.0, 99.0, 201.0)):
        a, b = bw(size, t, 1.5)
        doc["results"].append(dict(size=size, count=size // 4, type="float", redop="sum", root="%6i" % -1,
                                   out_of_place=dict(time=t, alg_bw=a, bus_bw=b, nwrong=0.0),
                                   in_place=dict(time=t, alg_bw=a, bus_bw=b, nwrong=0.0),
                                   actual_iterations=20, experiment_name=""))
    full = jval(doc)
    # Cut inside the third result's in-place object, as a crash loses the rest of stdio's buffer.
    cut = full.rindex('"in_place"') + len('"in_place":{"time":20')
    return full[:cut]


def main():
    files = {
        "all_reduce_perf_4ranks.log": all_reduce_log() + "\n",
        "all_gather_perf_4ranks_I1.json": all_gather_json(),
        "all_reduce_sendrecv_2ranks_tagged_I1_S1.log": tagged_log() + "\n",
        "all_reduce_perf_2.10.log": old_log(),
        "all_reduce_perf_died.json": died_json(),
    }
    for name, text in files.items():
        with open(os.path.join(HERE, name), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
