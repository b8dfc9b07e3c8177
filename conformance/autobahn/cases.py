"""List the Autobahn case ids of a selection, one a line (run with wstest's Python 2.7).

  cases.py SELECTION...

A selection word is one of:
  quick   groups 1-10 (every case without compression, 301) plus the five smallest
          message sizes of every 12.x / 13.x sub-group (60 cases with permessage-deflate)
  all     all 517 cases
  N | N.M | N.M.K   a group, a sub-group or one case ("9", "12.1", "7.13.2")
The ids come from wstest's own case table, in wstest's order.
"""
import sys

from autobahntestsuite.case import (Cases, CaseSetname, CaseBasename, CaseCategories,
                                    CaseSubCategories)
from autobahntestsuite.caseset import CaseSet

QUICK = ["1", "2", "3", "4", "5", "6", "7", "9", "10"] + [
    "%s.%d" % (sub, size)
    for sub in ["12.1", "12.2", "12.3", "12.4", "12.5",
                "13.1", "13.2", "13.3", "13.4", "13.5", "13.6", "13.7"]
    for size in range(1, 6)]


def main(words):
    cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    all_ids = [cs.caseClasstoId(c) for c in cs.Cases]
    patterns = []
    for w in words:
        if w == "quick":
            patterns.extend(QUICK)
        elif w in ("all", "*"):
            patterns.append("*")
        else:
            patterns.append(w)
    chosen = set()
    for p in patterns:
        if p == "*":
            hits = all_ids
        else:
            hits = [i for i in all_ids if i == p or i.startswith(p + ".")]
        if not hits:
            sys.stderr.write("cases.py: no case matches %r\n" % p)
            return 2
        chosen.update(hits)
    for i in all_ids:
        if i in chosen:
            sys.stdout.write(i + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["quick"]))
