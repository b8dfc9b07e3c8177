#!/usr/bin/env python3
"""Prints the `codec` benchmark results as the Markdown tables of docs/bench-ws-codec.md.

Reads criterion's estimates (median) from target/criterion after
`cargo bench -p switchboard-ws --bench codec`. For each group and size it prints time per
operation and throughput of every implementation, and the ratio of ours to the fastest
peer doing the same kind of work (> 1.00 means we are slower): `*/stream` rows against
`*/stream` rows, `@14` rows against `@14` rows, `*/primitive` rows against nothing.

Usage: python3 crates/ws/benches/table.py [target/criterion]
"""

import glob
import json
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "target", "criterion"
)


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def fmt_thrpt(tp, ns):
    if not tp:
        return ""
    if "Bytes" in tp:
        gib = tp["Bytes"] / ns * 1e9 / (1 << 30)
        return f"{gib:.2f} GiB/s" if gib >= 1 else f"{gib * 1024:.0f} MiB/s"
    if "Elements" in tp:
        return f"{tp['Elements'] / ns * 1e3:.1f} M/s"
    return ""


def main():
    rows = {}
    for path in glob.glob(os.path.join(ROOT, "**", "new", "benchmark.json"), recursive=True):
        with open(path) as f:
            b = json.load(f)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            est = json.load(f)
        ns = est["median"]["point_estimate"]
        key = (b["group_id"], b["value_str"] or "")
        rows.setdefault(key, []).append((b["function_id"] or b["value_str"], ns, b.get("throughput")))
    order = ["mask", "header", "parse_unmask", "encode", "recv_100", "connection", "fanout_1000"]
    for group in order:
        keys = sorted((k for k in rows if k[0] == group), key=lambda k: size_key(k[1]))
        if not keys:
            continue
        print(f"\n### {group}\n")
        print("| case | implementation | time/op | throughput | ours ÷ fastest peer |")
        print("|---|---|---:|---:|---:|")
        for key in keys:
            entries = sorted(rows[key], key=lambda e: e[1])
            peers = [e for e in entries if not e[0].startswith("switchboard-ws") and e[0] != "byte-loop"]
            for name, ns, tp in entries:
                ratio = ""
                same = [p_ns for p, p_ns, _ in peers if kind(p) == kind(name)]
                if same and name.startswith("switchboard-ws") and kind(name) != "primitive":
                    ratio = f"{ns / min(same):.2f}"
                print(f"| {key[1]} | {name} | {fmt_time(ns)} | {fmt_thrpt(tp, ns)} | {ratio} |")


def kind(name):
    """Rows are compared only with peers doing the same kind of work."""
    if "@" in name:
        return name[name.index("@"):]
    for k in ("stream", "primitive"):
        if name.endswith("/" + k):
            return k
    return ""


def size_key(s):
    for unit, mult in (("KiB", 1024), ("B", 1)):
        if s.endswith(unit) and s[: -len(unit)].isdigit():
            return (0, int(s[: -len(unit)]) * mult, s)
    return (1, 0, s)


if __name__ == "__main__":
    main()
