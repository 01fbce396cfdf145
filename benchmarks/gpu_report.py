"""Write docs/benchmarks-gpu.md from the GPU check's results (benchmarks/gpu_check.sh).

Usage::

    python benchmarks/gpu_report.py RESULTS.json OUT.md [JUNIT.xml ...]

``RESULTS.json`` is what ``benchmarks/gpu.py --json`` wrote; the JUnit files
(pytest ``--junitxml``) add a line per test run. Needs only the standard library.
"""

import json
import sys
import xml.etree.ElementTree as ET


def _tests(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return f"`{path}`: no results ({exc})"
    suites = [root] if root.tag == "testsuite" else list(root)
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in
             ("tests", "failures", "errors", "skipped")}
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    name = suites[0].get("name", "pytest") if suites else "pytest"
    return (f"{name} (`{path.rsplit('/', 1)[-1]}`): {passed} passed, {count['failures']} "
            f"failed, {count['errors']} errors, {count['skipped']} skipped")


def markdown(report, junit=()):
    lines = [f"# GPU benchmarks: {report['device']}", "",
             f"Measured by `benchmarks/gpu_check.sh` on {report['time']}: fastinit "
             f"{report['fastinit']}, CuPy {report['cupy']}, Python {report['python']}. "
             f"All rows fill the same float32 buffer of {report['size']:.3g} elements "
             f"({4 * report['size'] / 1e9:.1f} GB); median of the runs, CUDA events.", "",
             "| implementation | ms | GB/s | % of `fill` |", "| --- | ---: | ---: | ---: |"]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['name']} | error: {r['error'][:80]} | | |")
        else:
            lines.append(f"| {r['name']} | {r['seconds'] * 1e3:.2f} | {r['gb_per_s']:.1f} | "
                         f"{100 * r.get('fraction_of_fill_bandwidth', 0):.1f} |")
    memory = report.get("memory")
    if memory:
        lines += ["", f"Memory: a `device=\"cuda\"` call peaks at {memory['pool_peak_bytes']:,} "
                      f"bytes of CuPy's pool for a {memory['output_bytes']:,}-byte output. "
                      "Bit-identical to the NumPy backend on a prefix: "
                      f"{report.get('bit_identical_prefix')}."]
    if report.get("orthogonal"):
        lines += ["", "Orthogonal initialization, float32:", "",
                  "| shape | implementation | ms | vs torch | max abs(QᵀQ − I) |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for r in report["orthogonal"]:
            if "error" in r:
                lines.append(f"| {r['shape']} | {r['name']} | error: {r['error'][:60]} | | |")
            else:
                ratio = f"{r['vs_torch']:.2f}x" if "vs_torch" in r else ""
                lines.append(f"| {r['shape']} | {r['name']} | {r['seconds'] * 1e3:.2f} | "
                             f"{ratio} | {r['max_gram_error']:.2e} |")
    if junit:
        lines += ["", "Tests run in the same session:", ""]
        lines += [f"- {_tests(path)}" for path in junit]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        report = json.load(f)
    with open(argv[1], "w", encoding="utf-8") as f:
        f.write(markdown(report, argv[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
