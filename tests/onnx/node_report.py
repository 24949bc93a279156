"""Run the ONNX node conformance cases and print the per-op table for docs/onnx.md.

    PYTHONPATH=. python tests/onnx/node_report.py > /tmp/table.md
"""
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_backend_node import node_cases, run_case  # noqa: E402


def main() -> None:
    per_op = collections.defaultdict(collections.Counter)
    reasons = collections.Counter()
    for case, why in node_cases():
        ops = [n.op_type for n in case.model.graph.node]
        key = ops[0] if len(ops) == 1 else "(function bodies, several ops)"
        if why:
            per_op[key]["excluded"] += 1
            reasons[why] += 1
            continue
        try:
            run_case(case)
            per_op[key]["pass"] += 1
        except Exception:
            per_op[key]["fail"] += 1
    total = collections.Counter()
    print("| op | pass | fail | excluded |\n|---|---|---|---|")
    for op in sorted(per_op):
        c = per_op[op]
        total.update(c)
        print(f"| {op} | {c['pass']} | {c['fail']} | {c['excluded']} |")
    print(f"| **total** | **{total['pass']}** | **{total['fail']}** | **{total['excluded']}** |\n")
    print("| excluded because | cases |\n|---|---|")
    for why, n in reasons.most_common():
        print(f"| {why} | {n} |")


if __name__ == "__main__":
    main()
