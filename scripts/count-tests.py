#!/usr/bin/env python3
"""Prints "PASSED FAILED" summed over a meson testlog.json: Criterion's
per-executable "Synthesis" counts when present, else the executable's result."""
import json
import re
import sys

passed = failed = 0
synth = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        try:
            t = json.loads(line)
        except ValueError:
            continue
        result = t.get("result", "")
        m = synth.search((t.get("stdout") or "") + (t.get("stderr") or ""))
        if m:
            passed += int(m.group(2))
            failed += int(m.group(3)) + int(m.group(4))
            if result not in ("OK", "SKIP") and int(m.group(3)) + int(m.group(4)) == 0:
                failed += 1  # crashed or timed out after its synthesis
        elif result in ("OK", "SKIP"):
            passed += 1
        else:
            failed += 1
print(passed, failed)
