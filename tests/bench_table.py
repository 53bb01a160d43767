#!/usr/bin/env python3
"""Collects the figures of one `tests/bench.sh` run into results.json and a table.

Inputs: OUT/ingest.json (bench_ingest), LOGS/rows (`NAME {json}` from each benchmark's
`BENCH {json}` lines), LOGS/NAME.time (`/usr/bin/time -f '%M %U %S %e'`: peak RSS KiB, user s,
system s, wall s). Ratio: gateway over reference in "higher is better" terms (a time is
inverted), so > 1 means the gateway beats the reference and 0.8 means 80% of it.
"""

import json
import os
import platform
import subprocess
import sys
import time

out_dir, logs = sys.argv[1], sys.argv[2]


def timing(name):
    try:
        kib, user, sys_s, wall = open(os.path.join(logs, name + ".time")).read().split()[-4:]
        return {"peak_rss_mb": int(kib) / 1024, "cpu_s": float(user) + float(sys_s), "wall_s": float(wall)}
    except (OSError, ValueError):
        return {}


rows_by_bench = {}
try:
    for line in open(os.path.join(logs, "rows")):
        name, _, js = line.partition(" ")
        try:
            rows_by_bench.setdefault(name, []).append(json.loads(js))
        except json.JSONDecodeError:
            pass
except OSError:
    pass

table = []


def add(bench, figure, value, unit, reference=None, ref_value=None, lower_is_better=False,
        rss=None, cpu=None, note=""):
    ratio = None
    if value and ref_value:
        ratio = ref_value / value if lower_is_better else value / ref_value
    t = timing(bench)
    table.append({
        "bench": bench, "figure": figure, "value": value, "unit": unit,
        "reference": reference, "reference_value": ref_value, "ratio": ratio,
        "lower_is_better": lower_is_better,
        "peak_rss_mb": rss if rss is not None else t.get("peak_rss_mb"),
        "cpu_s": cpu if cpu is not None else t.get("cpu_s"),
        "note": note,
    })


db_ref = next((r for r in rows_by_bench.get("db_writes", [])), None)
try:
    ing = json.load(open(os.path.join(out_dir, "ingest.json")))
    m = ing["median"]
    note = f'{ing["messages"]} msgs, {ing["devices"]} devices, median of {ing["rounds"]} rounds'
    add("ingest", "MQTT intake into the fsynced outbox", m["gateway_to_outbox_msg_per_s"], "msg/s",
        "mosquitto_sub draining the same backlog", m["reference_msg_per_s"],
        rss=ing["gateway_peak_rss_mb"], cpu=m["gateway_cpu_s"],
        note=note + f'; reference CPU {m["reference_cpu_s"]:.1f} s')
    add("ingest", "MQTT to database, end to end", m["gateway_to_database_msg_per_s"], "lines/s",
        "raw HTTP line-protocol poster" if db_ref else None, db_ref and db_ref["value"],
        rss=ing["gateway_peak_rss_mb"], cpu=m["gateway_cpu_s"],
        note=(f'poster CPU {db_ref["cpu_s"]:.1f} s' if db_ref else "no poster figure"))
except (OSError, KeyError, ValueError):
    pass

for name in ["vision", "outbox", "rules", "clues", "camera"]:
    for r in rows_by_bench.get(name, []):
        add(name, r["figure"], r["value"], r["unit"], r.get("reference"), r.get("reference_value"),
            r.get("lower_is_better", False))

mb = [r for r in rows_by_bench.get("modbus", []) if r.get("merge")]
ref = None
try:
    for line in open(os.path.join(logs, "modbus_reference.log")):
        if line.startswith("{"):
            ref = json.loads(line)
except OSError:
    pass
if mb:
    g = mb[-1]
    label = f'Modbus polling, {g["devices"]} devices x {g["registers"]} registers at 1 Hz'
    add("modbus", label + ": CPU", g["cpu_pct"], "% of a core", ref and ref["client"],
        ref and ref["cpu_pct"], lower_is_better=True)
    add("modbus", label + ": poll latency p50", g["p50_ms"], "ms", ref and ref["client"],
        ref and ref["p50_ms"], lower_is_better=True)

cpu_model = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
machine = {
    "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    "nproc": os.cpu_count(),
    "cpu": cpu_model,
    "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "kernel": platform.release(),
    "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip(),
}
failed = []
try:
    failed = open(os.path.join(logs, "failed")).read().split()
except OSError:
    pass
json.dump({"machine": machine, "rows": table, "failed": failed},
          open(os.path.join(out_dir, "results.json"), "w"), indent=1)


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


lines = [
    f'Measured {machine["date_utc"]} UTC on {machine["nproc"]} cores ({machine["cpu"]}, '
    f'{machine["mem_gib"]} GiB), commit {machine["git"]}; shared machine, one run.',
    "",
    "| benchmark | figure | reference | ratio | peak RSS MB | CPU s |",
    "|---|---|---|---|---|---|",
]
for r in table:
    ref = f'{fmt(r["reference_value"])} {r["unit"]} ({r["reference"]})' if r["reference_value"] else "-"
    ratio = f'{r["ratio"]:.2f}' if r["ratio"] else "-"
    lines.append(f'| {r["bench"]} | {r["figure"]}: **{fmt(r["value"])} {r["unit"]}** | {ref} | '
                 f'{ratio} | {fmt(r["peak_rss_mb"])} | {fmt(r["cpu_s"])} |')
lines.append("")
lines.append("Ratio: gateway / reference in higher-is-better terms (times inverted); peak RSS and "
             "CPU are the gateway's for ingest, else the benchmark process's.")
if failed:
    lines.append(f'FAILED: {", ".join(failed)}')
text = "\n".join(lines) + "\n"
open(os.path.join(out_dir, "table.md"), "w").write(text)
print()
print(text)
print(f'results: {os.path.join(out_dir, "results.json")}')
