#!/usr/bin/env python3
"""Turns one perf/run.sh run (its work folder) into the results files:
OUT/STAMP.md (machine, versions, command, tables, per-request numbers, the
targets, hot spots), OUT/STAMP.tsv (raw rows) and OUT/STAMP.png (gnuplot).
Prints the markdown to stdout."""
import argparse
import os
import shutil
import subprocess
import sys

TARGET_LABEL = {
    "direct": "direct to the upstream",
    "ringway-uring": "ringway, io_uring",
    "ringway-epoll": "ringway, epoll",
    "nginx": "nginx",
    "haproxy": "HAProxy",
    "h2o": "h2o",
    "caddy": "Caddy",
}
TARGET_COLOR = {
    "direct": 0x999999,
    "ringway-uring": 0xD62728,
    "ringway-epoll": 0xFF9896,
    "nginx": 0x2CA02C,
    "haproxy": 0x1F77B4,
    "h2o": 0x9467BD,
    "caddy": 0x17BECF,
}
CHART_LABEL = {"direct": "direct", "ringway-uring": "rw uring", "ringway-epoll": "rw epoll",
               "nginx": "nginx", "haproxy": "HAProxy", "h2o": "h2o", "caddy": "Caddy"}
SCENARIOS = [
    ("small", "Small body: GET /, 12-byte answer"),
    ("1k", "1 KiB answer: GET /1k"),
    ("64k", "64 KiB answer: GET /64k"),
    ("post16k", "16 KiB request body: POST /post"),
    ("c10k", "10,000 concurrent keep-alive connections: GET /"),
    ("newconn", "A new connection per request: GET / with Connection: close"),
    ("jwt", "JWT: GET / with an HS256 bearer token verified by the proxy"),
    ("ratelimit", "Rate limit: GET / under a per-client-address limit that never trips"),
    ("metrics", "Metrics: GET / while the metrics endpoint is scraped every second"),
]


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt_int(x):
    return "{:,.0f}".format(x) if x is not None else "—"


def fmt_ms(us):
    if us is None:
        return "—"
    ms = us / 1000.0
    if ms < 10:
        return "%.2f ms" % ms
    if ms < 100:
        return "%.1f ms" % ms
    return "%.0f ms" % ms


def fmt_ratio(x):
    return "%.2f×" % x if x is not None else "—"


def fmt_bytes(b):
    if b is None:
        return "—"
    return "{:,.0f} B".format(b) if abs(b) < 10240 else "%.1f KiB" % (b / 1024.0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stamp", required=True)
    a = p.parse_args()
    W = a.work
    meta = {k: v for k, v in (r[:2] for r in read_tsv(os.path.join(W, "meta.tsv")) if len(r) >= 2)}

    rows = {}
    order = []
    for r in read_tsv(os.path.join(W, "rows.tsv")):
        sc, tg, status = r[0], r[1], r[2]
        if tg not in order:
            order.append(tg)
        if status == "skipped":
            rows[(sc, tg)] = {"skipped": r[3] if len(r) > 3 else "not supported"}
            continue
        if status != "ok":
            rows[(sc, tg)] = {"failed": r[3] if len(r) > 3 else "failed"}
            continue
        keys = ["rps", "p50", "p99", "p999", "sockerr", "statuserr", "requests", "duration_us", "cpu", "upcpu", "rss_kb",
                "wrkcpu", "other"]
        rows[(sc, tg)] = dict(zip(keys, map(num, r[3:])))
    metrics = {}
    for r in read_tsv(os.path.join(W, "metrics.tsv")):
        r += [""] * (4 - len(r))
        metrics[(r[0], r[1])] = (num(r[2]), r[3])

    md = []
    add = md.append
    add("# ringway benchmark, %s" % meta.get("date", a.stamp))
    add("")
    add("Machine: %s, %s cores, %s, %s, %s." % (meta.get("cpu", "?"), meta.get("cores", "?"),
                                                  meta.get("kernel", "?"), meta.get("memory", "?"), meta.get("os", "?")))
    add("")
    if rows:
        add("Command: `%s` (%s s of wrk per row after a %s s warm-up; %s s in all)." % (
            meta.get("command", "perf/run.sh"), meta.get("duration", "?"), meta.get("warmup", "?"), meta.get("elapsed", "?").split()[0]))
    else:
        add("Command: `%s` (%s s in all)." % (meta.get("command", "perf/run.sh"), meta.get("elapsed", "?").split()[0]))
    add("")
    add("Versions: ringway %s; nginx %s; HAProxy %s%s%s; %s; %s; %s." % (
        meta.get("ringway", "?"), meta.get("nginx", "?"), meta.get("haproxy", "not installed"),
        "; h2o %s" % meta["h2o"].replace("h2o version ", "") if "h2o" in meta else "",
        "; Caddy %s" % meta["caddy"].split()[0] if "caddy" in meta else "",
        meta.get("wrk", "wrk ?"), meta.get("valgrind", "valgrind ?"), meta.get("strace", "strace ?")))
    add("")
    add("Set-up: one upstream (nginx, 1 worker, fixed bodies, keep-alive) on 127.0.0.1; every proxy with one "
        "worker (thread) in front of it; %s.%s Load average %s. Open-file limit %s." % (
            meta.get("pinning", "?"),
            (" wrk `-t%s -c%s -d%ss --latency` for every row (`-c%s` in the 10,000-connection scenario)." % (
                meta.get("wrk_threads", "1"), meta.get("wrk_conns", "64"), meta.get("duration", "?"),
                meta.get("c10k_conns", "10000"))) if rows else "",
            meta.get("loadavg", "?"), meta.get("nofile", "?")))
    add("")
    add("This is a shared machine: %s. A row during which other processes used %.2f cores or more is "
        "measured again once after waiting for quiet; a row still disturbed is marked ⚠ (the tsv has the "
        "CPU of wrk, the upstream and everything else for every row)." % (meta.get("other_load", "?"), num(meta.get("max_other")) or 0.25))
    add("")
    if rows:
        add("Columns: requests/s over the run; latency percentiles from wrk's histogram (p99.9 from a Lua `done()` hook); "
            "errors = socket errors (connect, read, write, timeout) + non-2xx/3xx answers; × nginx = requests/s over "
            "nginx's in the same scenario; CPU = cores the server under test used during the run (the proxy; the "
            "upstream for the direct row); req/s per core = requests/s ÷ that CPU.")
        add("")

    # ---------------------------------------------------------------- scenario tables
    max_other = num(meta.get("max_other")) or 0.25
    chart = []
    for sc, title in SCENARIOS:
        present = [tg for tg in order if (sc, tg) in rows]
        if not present:
            continue
        base = rows.get((sc, "nginx"), {}).get("rps")
        conns = meta.get("c10k_conns", "10000") if sc == "c10k" else meta.get("wrk_conns", "64")
        add("## %s, %s connections" % (title, "{:,}".format(int(conns))))
        add("")
        head = "| target | requests/s | p50 | p99 | p99.9 | errors | × nginx | CPU | req/s per core |"
        sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        if sc == "c10k":
            head += " peak RSS |"
            sep += "---:|"
        add(head)
        add(sep)
        blk = []
        for tg in present:
            r = rows[(sc, tg)]
            if "skipped" in r:
                add("| %s | n/a: %s | | | | | | | |" % (TARGET_LABEL.get(tg, tg), r["skipped"]))
                continue
            if "failed" in r:
                line = "| %s | failed: %s | | | | | | | |" % (TARGET_LABEL.get(tg, tg), r["failed"])
                if sc == "c10k":
                    line += " |"
                add(line)
                blk.append((tg, 0))
                continue
            err = (r["sockerr"] or 0) + (r["statuserr"] or 0)
            ratio = r["rps"] / base if base else None
            per_core = r["rps"] / r["cpu"] if r["cpu"] else None
            flag = " ⚠" if (r.get("other") or 0) >= max_other else ""
            line = "| %s%s | %s | %s | %s | %s | %s | %s | %.2f | %s |" % (
                TARGET_LABEL.get(tg, tg), flag, fmt_int(r["rps"]), fmt_ms(r["p50"]), fmt_ms(r["p99"]), fmt_ms(r["p999"]),
                fmt_int(err), fmt_ratio(ratio), r["cpu"] or 0, fmt_int(per_core))
            if sc == "c10k":
                line += " %.1f MiB |" % ((r["rss_kb"] or 0) / 1024.0)
            add(line)
            blk.append((tg, r["rps"]))
        add("")
        chart.append((sc, title, blk))

    # ---------------------------------------------------------------- per-request numbers
    mtargets = []
    for (m, tg) in metrics:
        if tg not in mtargets:
            mtargets.append(tg)
    mtargets.sort(key=lambda t: list(TARGET_LABEL).index(t) if t in TARGET_LABEL else 99)
    if metrics:
        add("## Per request, with public tools")
        add("")
        kinds = {k for (k, _) in metrics}
        if kinds & {"instructions", "syscalls_strace", "syscalls_perf"}:
            add("Instructions and syscalls: a fixed count of %s GET / requests (small body) over %s keep-alive "
                "connections from `perf/loadgen.py`, one request in flight per connection; \"under wrk\" is the "
                "small-body wrk load instead (%s s), divided by wrk's request count." % (
                    "{:,}".format(int(meta.get("fixed_requests", "0"))), meta.get("fixed_conns", "64"), meta.get("duration", "?")))
            add("")
        if "idle_rss" in kinds:
            add("RSS per idle connection: VmRSS of the proxy's processes after a warm-up, then again with %s "
                "connections open, each having sent one request and read the answer%s, divided by the "
                "connections held." % ("{:,}".format(int(meta.get("idle_conns", "10000"))),
                                       (" (at most %s at a time, as in the warm-up, so pooled per-request state is "
                                        "already counted before)" % meta["idle_batch"]) if "idle_batch" in meta else ""))
            add("")
        add("| measure | " + " | ".join(TARGET_LABEL.get(t, t) for t in mtargets) + " |")
        add("|---|" + "---:|" * len(mtargets))
        names = [
            ("instructions", "user-space instructions / request (callgrind, start-up subtracted)", fmt_int),
            ("syscalls_strace", "syscalls / request (`strace -c -f`)", lambda v: "%.2f" % v if v is not None else "—"),
            ("syscalls_perf", "syscalls / request (`perf stat -e raw_syscalls:sys_enter`, no ptrace)",
             lambda v: "%.2f" % v if v is not None else "—"),
            ("syscalls_wrk", "syscalls / request under wrk, 64 connections (`perf stat`)",
             lambda v: "%.2f" % v if v is not None else "—"),
            ("idle_rss", "RSS per idle keep-alive connection (%s connections)" % "{:,}".format(int(meta.get("idle_conns", "10000"))), fmt_bytes),
        ]
        for key, label, f in names:
            if not any(k == key for (k, _) in metrics):
                continue
            cells = []
            for t in mtargets:
                v = metrics.get((key, t))
                cells.append(f(v[0]) if v and v[0] is not None else ("failed" if v else "—"))
            add("| %s | %s |" % (label, " | ".join(cells)))
        add("")
        if ("instructions", "ringway-uring") not in metrics and ("instructions", "ringway-epoll") in metrics:
            add("ringway's instruction count is taken on epoll: under valgrind 3.19 the io_uring worker serves "
                "requests, but its blocking `io_uring_enter` holds valgrind's thread lock, so the control thread "
                "never runs and SIGTERM is never handled. The request path above the event loop (parser, router, "
                "proxy) is the same code on both backends.")
            add("")
        details = []
        for key, label in (("instructions", "callgrind"), ("syscalls_strace", "strace, per request"),
                           ("syscalls_perf", "perf stat"), ("syscalls_wrk", "perf stat under wrk"), ("idle_rss", "idle RSS")):
            for t in mtargets:
                v = metrics.get((key, t))
                if v and v[1]:
                    details.append("- %s, %s: %s" % (label, TARGET_LABEL.get(t, t), v[1]))
        if details:
            add("<details><summary>raw numbers</summary>")
            add("")
            md.extend(details)
            add("")
            add("</details>")
            add("")

    # ---------------------------------------------------------------- targets
    def row(sc, tg, k):
        r = rows.get((sc, tg))
        return r.get(k) if r and "failed" not in r and "skipped" not in r else None

    def mval(k, t):
        v = metrics.get((k, t))
        return v[0] if v else None

    checks = []
    u, n, h = row("small", "ringway-uring", "rps"), row("small", "nginx", "rps"), row("small", "haproxy", "rps")
    if u and n:
        checks.append(("throughput ≥ 1.5× nginx (small body, 64 connections)", "%.2f×" % (u / n), u / n >= 1.5))
    if u and h:
        checks.append(("throughput ≥ 1.7× HAProxy", "%.2f×" % (u / h), u / h >= 1.7))
    up, np_ = row("small", "ringway-uring", "p99"), row("small", "nginx", "p99")
    if up and np_:
        checks.append(("p99 no worse than nginx", "%s vs %s" % (fmt_ms(up), fmt_ms(np_)), up <= np_))
    ins = mval("instructions", "ringway-uring") or mval("instructions", "ringway-epoll")
    if ins is not None:
        checks.append(("≤ 8,000 user-space instructions per proxied request", fmt_int(ins) + (
            " (epoll)" if mval("instructions", "ringway-uring") is None else ""), ins <= 8000))
    for key, label in (("syscalls_strace", "strace, fixed count"), ("syscalls_perf", "perf stat, fixed count"),
                       ("syscalls_wrk", "perf stat under wrk, 64 connections")):
        s = mval(key, "ringway-uring")
        if s is not None:
            checks.append(("≤ 0.5 syscalls per request on io_uring (%s)" % label, "%.2f" % s, s <= 0.5))
    ri, ni = mval("idle_rss", "ringway-uring"), mval("idle_rss", "nginx")
    if ri is not None:
        ok = ri <= 2048 and (ni is None or ri < ni)
        checks.append(("≤ 2 KiB RSS per idle keep-alive connection on io_uring, below nginx",
                       "%s vs nginx %s" % (fmt_bytes(ri), fmt_bytes(ni)), ok))
    d, dc = row("64k", "direct", "rps"), row("64k", "direct", "cpu")
    r64, rc = row("64k", "ringway-uring", "rps"), row("64k", "ringway-uring", "cpu")
    if d and dc and r64 and rc:
        eff = (r64 / rc) / (d / dc)
        checks.append(("64 KiB bodies within 10% of direct per core used",
                       "%s vs %s req/s per core (%.0f%%); throughput %.0f%% of direct" % (
                           fmt_int(r64 / rc), fmt_int(d / dc), eff * 100, r64 / d * 100), eff >= 0.9))
    if checks:
        add("## Targets (ringway on io_uring unless said otherwise)")
        add("")
        add("| target | measured | met |")
        add("|---|---|---|")
        for label, val, ok in checks:
            add("| %s | %s | %s |" % (label, val, "yes" if ok else "**no**"))
        add("")

    # ---------------------------------------------------------------- hot spots
    def block(fname, title, note):
        path = os.path.join(W, fname)
        if os.path.exists(path) and os.path.getsize(path) > 0:
            add(title)
            add("")
            if note:
                add(note)
                add("")
            add("```")
            with open(path) as f:
                md.extend(l.rstrip() for l in f)
            add("```")
            add("")

    block("hotspots.callgrind.ringway", "## Hot spots: ringway, callgrind (self instructions, epoll)",
          "`callgrind_annotate --inclusive=no` over the %s-request run (start-up included, a small share), "
          "build-perf-g (the release build with -g)." % "{:,}".format(int(meta.get("fixed_requests", "0"))))
    block("hotspots.callgrind.ringway.incl", "## Hot spots: ringway, callgrind (inclusive)", "")
    block("hotspots.callgrind.nginx", "## For comparison: nginx, callgrind (self instructions)", "")
    block("hotspots.perf.dso", "## Where ringway's CPU time goes: io_uring, perf record (by object)",
          "`perf record -e cpu-clock -F 999 -p <ringway>` during a %s s small-body wrk run (cpu-clock: this VM has "
          "no hardware counters): ringway's threads, kernel work done in their context included." % meta.get("duration", "?"))
    block("hotspots.perf.ringway", "## ringway io_uring, perf record (by symbol)", "")

    if chart:
        add("![requests per second](%s.png)" % a.stamp)
        add("")

    text = "\n".join(md).rstrip() + "\n"
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, a.stamp + ".md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, a.stamp + ".tsv"), "w") as f:
        f.write("# scenario\ttarget\tstatus\trps\tp50_us\tp99_us\tp999_us\tsocket_errors\tstatus_errors\trequests\t"
                "duration_us\tserver_cpu\tupstream_cpu\trss_peak_kb\twrk_cpu\tother_cpu\n")
        with open(os.path.join(W, "rows.tsv")) as g:
            f.write(g.read())
        f.write("# metric\ttarget\tvalue\tdetail\n")
        with open(os.path.join(W, "metrics.tsv")) as g:
            f.write(g.read())

    # ---------------------------------------------------------------- chart
    if chart and shutil.which("gnuplot"):
        dat = os.path.join(W, "chart.dat")
        with open(dat, "w") as f:
            for sc, title, blk in chart:
                for tg, rps in blk:
                    f.write('"%s" %.1f %d\n' % (CHART_LABEL.get(tg, tg), rps,
                                                 TARGET_COLOR.get(tg, 0x444444)))
                f.write("\n\n")
        cols = 3 if len(chart) > 4 else min(len(chart), 2)
        rws = (len(chart) + cols - 1) // cols
        gp = ['set terminal pngcairo size %d,%d font "sans,10"' % (max(560 * cols, 900), 360 * rws + 70),
              'set output "%s"' % os.path.join(a.out, a.stamp + ".png"),
              'set multiplot layout %d,%d title "ringway benchmark %s: requests/s, one worker per proxy\\n%s" noenhanced' % (
                  rws, cols, meta.get("date", a.stamp), "%s, %s cores, %s; %s" % (
                      meta.get("cpu", "?"), meta.get("cores", "?"), meta.get("kernel", "?"), meta.get("pinning", ""))),
              'set style fill solid 0.85 border -1', 'set boxwidth 0.7', 'set yrange [0:*]', 'unset key',
              'set grid ytics', 'set xtics scale 0 noenhanced font ",8"', 'set format y "%.0s%c"', 'set offsets 0.5,0.5,graph 0.1,0']
        for i, (sc, title, blk) in enumerate(chart):
            gp.append('set title "%s" noenhanced' % title.replace('"', "'"))
            gp.append('plot "%s" index %d using 0:2:3:xtic(1) with boxes lc rgb variable, '
                      '"" index %d using 0:2:(sprintf("%%.0f", $2)) with labels offset 0,0.7 font ",8"' % (dat, i, i))
        gp.append("unset multiplot")
        with open(os.path.join(W, "chart.gp"), "w") as f:
            f.write("\n".join(gp) + "\n")
        r = subprocess.run(["gnuplot", os.path.join(W, "chart.gp")], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            print("report: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
