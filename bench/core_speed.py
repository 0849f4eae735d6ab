"""Core speed: KayGraph against PocketFlow 0.0.3 on the same workloads, in one run.

    .venv/bin/python bench/core_speed.py [--rounds 5]

Prints microseconds per step (medians) for a 10,000-step two-node loop and a 100-node chain, the
ratio KayGraph/PocketFlow (goal <= 0.6), the cost of one attached listener, of a cancel token
plus the default executor (goal <= +5%), and
`import kaygraph` time against `import pocketflow` in fresh interpreters (goal < 0.4x).
PocketFlow is installed from PyPI into bench/.venvs/pocketflow on first use. Rounds alternate the
libraries so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _peers import median, peer_python

HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "_core_worker.py")


def run_worker(python: str, lib: str, workload: str, repeats: int, mode: str = "bare") -> list[float]:
    args = [python, WORKER, lib, workload, str(repeats), mode]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def import_time(python: str, module: str, runs: int) -> float:
    code = (
        "import time; t = time.perf_counter(); import " + module + "; print((time.perf_counter() - t) * 1000)"
    )
    samples = [
        float(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)
        for _ in range(runs)
    ]
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per workload")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per worker process")
    args = parser.parse_args()
    ours = sys.executable
    peer = peer_python("pocketflow", ["pocketflow==0.0.3"])
    print(f"KayGraph: {ours}\nPocketFlow 0.0.3: {peer}\n")
    print(f"{'workload':<22}{'KayGraph us/step':>18}{'PocketFlow us/step':>20}{'ratio':>8}")
    for workload, label in (("loop", "10,000-step loop"), ("chain", "100-node chain")):
        kay: list[float] = []
        pocket: list[float] = []
        for _ in range(args.rounds):
            kay += run_worker(ours, "kaygraph", workload, args.repeats)
            pocket += run_worker(peer, "pocketflow", workload, args.repeats)
        k, p = median(kay), median(pocket)
        print(f"{label:<22}{k:>18.3f}{p:>20.3f}{k / p:>8.2f}")
    listened: list[float] = []
    seams: list[float] = []
    bare: list[float] = []
    for _ in range(args.rounds):
        bare += run_worker(ours, "kaygraph", "loop", args.repeats)
        listened += run_worker(ours, "kaygraph", "loop", args.repeats, "listener")
        seams += run_worker(ours, "kaygraph", "loop", args.repeats, "seams")
    b, li, se = median(bare), median(listened), median(seams)
    print(f"\none on_node_end listener on the loop: {li:.3f} us/step vs {b:.3f} bare ({li / b:.2f}x)")
    print(
        f"cancel token + default executor on the loop: {se:.3f} us/step vs {b:.3f} bare "
        f"({(se / b - 1) * 100:+.1f}%, goal <= +5%)"
    )
    runs = max(10, args.rounds * 3)
    # pip byte-compiles an installed wheel (PocketFlow's venv has its .pyc); an editable checkout
    # under PYTHONDONTWRITEBYTECODE=1 would recompile KayGraph on every start. Compare like with like.
    import compileall

    compileall.compile_dir(str(HERE.parent / "kaygraph"), quiet=1)
    ki, pi = import_time(ours, "kaygraph", runs), import_time(peer, "pocketflow", runs)
    print(f"import kaygraph {ki:.1f} ms, import pocketflow {pi:.1f} ms: ratio {ki / pi:.2f} (goal < 0.4)")


if __name__ == "__main__":
    main()
