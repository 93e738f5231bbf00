"""make bench: turn the measures' lines into one table and bench/results/latest.json.

    python3 report.py LINES-FILE JSON-FILE COMMAND QUICK SECONDS

It prints the table, writes JSON-FILE, and writes the same table as Markdown next to it
(latest.md), with the command, the machine and the date: the README's figures section is
that file.

LINES-FILE holds what the measure programs printed: "ROW {json}" lines (one result each)
and "MEMORY {json}" lines (one side of a memory measure: bench_core/bench_ruby/bench_python
run the workflow and the plain job in separate processes; they are paired here). A ratio is
1.0 when acidic_job does as well as its baseline and lower when it does worse; a row meets
its goal when its ratio is at least `goal`, or its figure at most `limit`.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from typing import Any, Dict, List, Optional

FULL_MEMORY_RUNS = 100_000  # the size


def machine() -> Dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        with open("/proc/meminfo") as f:
            mem_gb = int(f.readline().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": os.cpu_count(), "cpu": model, "memory_gb": round(mem_gb, 1),
            "kernel": platform.release(), "system": platform.platform()}


def memory_rows(sides: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    by: Dict[tuple, Dict[str, Dict[str, Any]]] = {}
    for s in sides:
        by.setdefault((s["from"], s["db"]), {})[s["side"]] = s
    rows = []
    for (lang, db), pair in by.items():
        acidic, plain = pair.get("acidic"), pair.get("plain")
        if acidic is None:
            continue
        note = (f"over {acidic['runs']:,} runs after {acidic['warm']:,} warm-up runs "
                f"(RSS {acidic['rss_mb']:.0f} MB; synchronous=OFF)")
        if acidic["runs"] + acidic["warm"] < FULL_MEMORY_RUNS:
            note += f"; fewer than {FULL_MEMORY_RUNS:,} runs"
        maps = acidic.get("weakmaps_per_job")
        if maps is not None:  # Ruby: what the interpreter keeps of each job's WeakMaps
            lost = maps * acidic["weakmap_bytes"] * acidic["runs"] / 2**20
            also = f" (the plain job: {plain['weakmaps_per_job']:g})" if plain else ""
            note += (f"; ActiveRecord makes {maps:g} ObjectSpace::WeakMaps a job{also}, and "
                     f"this Ruby keeps {acidic['weakmap_bytes']:.0f} bytes of RSS of each: "
                     f"{lost:.1f} MB over these runs")
        rows.append({"measure": "memory: RSS growth", "from": lang, "db": db,
                     "figure": acidic["growth_mb"],
                     "baseline": plain["growth_mb"] if plain else None, "unit": "MB",
                     "ratio": None, "goal": None, "limit": 5,
                     "runs": acidic["runs"] + acidic["warm"], "note": note})
    return rows


def met(row: Dict[str, Any]) -> Optional[bool]:
    if row.get("goal") is not None and row.get("ratio") is not None:
        return row["ratio"] >= row["goal"]
    if row.get("limit") is not None and row.get("figure") is not None:
        if row["figure"] > row["limit"]:
            return False
        if row.get("runs") is not None and row["runs"] < FULL_MEMORY_RUNS:
            return None  # under the limit, but on a smaller run than the goal's
        return True
    return None


def fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "n/a"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    if unit in ("ms", "ms/call"):
        return f"{value:.3f} {unit}" if value < 10 else f"{value:,.1f} {unit}"
    if unit == "statements":
        return f"{value:.0f}"
    return f"{value:.2f} {unit}"


def goal_text(row: Dict[str, Any]) -> str:
    if row.get("goal") is not None:
        return f">= {row['goal']:.2f}"
    if row.get("limit") is not None:
        return f"<= {row['limit']:g} {row['unit']}" if row["unit"] != "statements" else \
            f"{row['limit']:g}"
    return ""


def main() -> None:
    lines_file, json_file, command, quick, seconds = sys.argv[1:6]
    rows: List[Dict[str, Any]] = []
    sides: List[Dict[str, Any]] = []
    with open(lines_file) as f:
        for line in f:
            if line.startswith("ROW "):
                rows.append(json.loads(line[4:]))
            elif line.startswith("MEMORY "):
                sides.append(json.loads(line[7:]))
    rows.extend(memory_rows(sides))
    for row in rows:
        row["met"] = met(row)

    headers = ["measure", "from", "db", "acidic_job", "baseline", "ratio", "goal", "met"]
    table = []
    for r in rows:
        ratio = r.get("ratio")
        m = r["met"]
        table.append([r["measure"], r["from"], r["db"], fmt(r.get("figure"), r["unit"]),
                      fmt(r.get("baseline"), r["unit"]),
                      "" if ratio is None else f"{ratio:.2f}", goal_text(r),
                      "yes" if m else ("no" if m is False else ("?" if r.get("limit") is not None
                                                                 and r.get("figure") is not None
                                                                 else ""))])
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h)
              for i, h in enumerate(headers)]
    right = {3, 4, 5}

    def line(cells: List[str]) -> str:
        return "| " + " | ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                                 for i, c in enumerate(cells)) + " |"

    out: List[str] = [line(headers)]
    out.append("|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2))
                              for i, w in enumerate(widths)) + "|")
    out.extend(line(t) for t in table)
    out.append("")
    # each distinct note once, with the rows it belongs to
    notes: Dict[tuple, List[str]] = {}
    for r in rows:
        if r.get("note"):
            notes.setdefault((r["measure"], r["note"]), []).append(f"{r['from']} {r['db']}")
    for (measure, note), where in notes.items():
        out.append(f"- {measure} ({', '.join(where)}): {note}")
    out.append("")

    # The worst of the measures that have a goal: rows without one explain others (what a
    # commit writes, latencies) and are not judged.
    with_ratio = [r for r in rows if r.get("ratio") is not None and r.get("goal") is not None]
    worst = min(with_ratio, key=lambda r: r["ratio"]) if with_ratio else None
    judged = [r for r in rows if r["met"] is not None]
    met_count = sum(1 for r in judged if r["met"])
    if quick == "1":
        out.append("BENCH_QUICK=1: sizes scaled down (fewer rounds and runs, 100,000 finished "
                   "runs instead of 1,000,000, 10,000 memory runs, shorter worker rounds); run "
                   "`make bench` for the real figures.")
    out.append(f"goals met: {met_count} of {len(judged)} judged rows "
               f"({len(rows) - len(judged)} rows have no goal or no figure yet)")
    if worst:
        out.append(f"worst ratio among the goals: {worst['ratio']:.3f} ({worst['measure']}, {worst['from']}, "
                   f"{worst['db']})")
    print("\n".join(out))

    info = machine()
    date = datetime.datetime.now(datetime.timezone.utc)
    header = (f"`{command}` on {date:%Y-%m-%d}, {info['cores']} cores ({info['cpu']}), "
              f"{info['memory_gb']:g} GB, Linux {info['kernel']}, {int(seconds)} s. "
              "SQLite: WAL, synchronous=FULL; PostgreSQL 15: fsync on, loopback TCP. A ratio "
              "is acidic_job's figure over the baseline's measured in the same run (times: the "
              "baseline's over acidic_job's), so 1.0 means as fast and lower is worse.\n\n")
    with open(os.path.join(os.path.dirname(json_file) or ".", "latest.md"), "w") as f:
        f.write(header + "\n".join(out) + "\n")

    doc = {
        "command": command,
        "quick": quick == "1",
        "date": date.isoformat(timespec="seconds"),
        "duration_s": int(seconds),
        "machine": info,
        "ratio_convention": "1.0 = as good as the baseline measured in the same run; lower is worse",
        "rows": rows,
        "worst_ratio": worst,
        "goals_met": met_count,
        "goals_judged": len(judged),
    }
    os.makedirs(os.path.dirname(json_file) or ".", exist_ok=True)
    with open(json_file, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
