#!/usr/bin/env python3
"""Turn a wstest report into one verdict per case and compare it with the committed one.

Usage:
  verdicts.py REPORT_DIR --cases FILE --expected EXPECTED.json --label autobahn-server
              [--update]

wstest gives every case two grades: "behavior" (what was exchanged) and
"behaviorClose" (how it ended). They are folded into one verdict:

  OK             behavior OK and behaviorClose OK or INFORMATIONAL
  INFORMATIONAL  behavior INFORMATIONAL (7.1.6, 7.13.*: nothing to get wrong)
  NON-STRICT     behavior NON-STRICT, or OK with close WRONG CODE / FAILED BY CLIENT
  UNIMPLEMENTED  12.* / 13.* run without permessage-deflate negotiated
  FAILED         anything else, or the case is missing from the report

A case passes when its verdict is OK or INFORMATIONAL and equals the verdict committed in
EXPECTED.json (case id -> verdict). Every other case fails, and every difference from the
committed file is listed, so a regression and an unexplained improvement both show.
--update rewrites EXPECTED.json with this run's verdicts (cases not run are kept).

The last line is "<label>: N passed, M failed"; exit status 0 only when M is 0.
Python 3 standard library only.
"""
import argparse
import collections
import json
import os
import sys

PASSING = ("OK", "INFORMATIONAL")
ORDER = ("OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "FAILED")


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def verdict(entry):
    """Fold wstest's (behavior, behaviorClose) of one case into one verdict."""
    if entry is None:
        return "FAILED"
    behavior, close = entry.get("behavior"), entry.get("behaviorClose")
    if behavior == "UNIMPLEMENTED":
        return "UNIMPLEMENTED"
    if behavior == "INFORMATIONAL" and close in ("OK", "INFORMATIONAL"):
        return "INFORMATIONAL"
    if behavior in ("OK", "NON-STRICT") and close in ("OK", "INFORMATIONAL"):
        return behavior
    if behavior in ("OK", "NON-STRICT", "INFORMATIONAL") and \
            close in ("WRONG CODE", "FAILED BY CLIENT", "NON-STRICT"):
        return "NON-STRICT"
    return "FAILED"


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report_dir")
    ap.add_argument("--cases", required=True, help="case ids that were run, one a line")
    ap.add_argument("--expected", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--update", action="store_true")
    a = ap.parse_args()

    with open(a.cases) as f:
        cases = sorted({line.strip() for line in f if line.strip()}, key=case_key)
    index = read_json(os.path.join(a.report_dir, "index.json"), {})
    # one agent per run; take whichever the report has
    results = next(iter(index.values()), {}) if index else {}
    if not index:
        print("no report in %s (wstest did not finish): every case counts as failed"
              % a.report_dir)

    got = {c: verdict(results.get(c)) for c in cases}
    expected = read_json(a.expected, {})

    by_group = collections.OrderedDict()
    for c in cases:
        by_group.setdefault(c.split(".")[0], collections.Counter())[got[c]] += 1
    print("%-6s %6s" % ("group", "cases") + "".join(" %13s" % v for v in ORDER))
    total = collections.Counter()
    for g, cnt in by_group.items():
        total.update(cnt)
        print("%-6s %6d" % (g, sum(cnt.values())) + "".join(" %13d" % cnt[v] for v in ORDER))
    print("%-6s %6d" % ("all", len(cases)) + "".join(" %13d" % total[v] for v in ORDER))

    details = {}
    for c in cases:
        e = results.get(c) or {}
        details[c] = {"verdict": got[c], "behavior": e.get("behavior"),
                      "behaviorClose": e.get("behaviorClose"),
                      "remoteCloseCode": e.get("remoteCloseCode"),
                      "duration_ms": e.get("duration")}
    with open(os.path.join(a.report_dir, "verdicts.json"), "w") as f:
        json.dump(details, f, indent=1, sort_keys=True)

    diffs = [c for c in cases if expected.get(c) != got[c]]
    if diffs:
        print("differences from %s (%d):" % (os.path.basename(a.expected), len(diffs)))
        for c in diffs[:40]:
            d = details[c]
            print("  %-9s expected %-13s got %-13s (behavior=%s close=%s code=%s)"
                  % (c, expected.get(c, "-"), got[c], d["behavior"], d["behaviorClose"],
                     d["remoteCloseCode"]))
        if len(diffs) > 40:
            print("  ... and %d more (see %s/verdicts.json)" % (len(diffs) - 40, a.report_dir))

    if a.update:
        merged = dict(expected)
        merged.update(got)
        with open(a.expected, "w") as f:
            json.dump({c: merged[c] for c in sorted(merged, key=case_key)}, f, indent=1)
            f.write("\n")
        print("updated %s with %d verdicts" % (a.expected, len(got)))
        expected = merged

    passed = sum(1 for c in cases if got[c] in PASSING and expected.get(c) == got[c])
    failed = len(cases) - passed
    print("%s: %d passed, %d failed" % (a.label, passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
