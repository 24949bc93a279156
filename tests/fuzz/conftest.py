"""Print how many cases each fuzz property ran (and how they ended) at the end of the run."""
from fuzz.strategies import STATS


def pytest_terminal_summary(terminalreporter):
    if not STATS:
        return
    terminalreporter.section("fuzz cases")
    for prop, counts in sorted(STATS.items()):
        rest = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if k != "cases")
        terminalreporter.write_line(f"{prop}: {counts['cases']} cases ({rest})")
