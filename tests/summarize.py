#!/usr/bin/env python3
"""Count every test case that ran: the TAP lines of each cmocka program (from
meson's testlog.json) and the pytest cases (from its JUnit XML). A program
that crashed before reporting all of its planned cases counts the missing
ones as failed. Prints a line per suite and, last, "N passed, N failed"."""
import json
import re
import sys
import xml.etree.ElementTree as ET


def tap_counts(path):
    passed = failed = 0
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"summary: cannot read {path}: {e}")
        return 0, 1
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout", "")
        ok = len(re.findall(r"^ok \d+", out, re.M))
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        plan = re.search(r"^1\.\.(\d+)", out, re.M)
        planned = int(plan.group(1)) if plan else 0
        missing = max(planned - ok - bad, 0)
        if t["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and bad + missing == 0:
            missing = 1  # crashed or failed without saying which case
        passed += ok
        failed += bad + missing
        status = "ok" if bad + missing == 0 else "FAILED"
        print(f"  unit {t['name']:<12} {ok} passed, {bad + missing} failed  [{status}]")
    return passed, failed


def junit_counts(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"summary: cannot read {path}: {e}")
        return 0, 1, 0
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = fails = skipped = 0
    for s in suites:
        total += int(s.get("tests", 0))
        fails += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    passed = total - fails - skipped
    print(f"  integration   {passed} passed, {fails} failed, {skipped} skipped")
    return passed, fails, skipped


def main():
    passed = failed = skipped = 0
    for arg in sys.argv[1:]:
        if arg.endswith(".json"):
            p, f = tap_counts(arg)
        else:
            p, f, s = junit_counts(arg)
            skipped += s
        passed += p
        failed += f
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
