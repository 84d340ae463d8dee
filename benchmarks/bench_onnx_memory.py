"""Peak memory of `gradlint model.onnx` on a ~500 MB model stored with external data.

Builds a wide MLP (fp32 Gemm layers, ~500 MB of weights) as an ONNX file whose weights live in
an external data file, in a temporary directory, written layer by layer so the benchmark itself
never holds the model. Then runs, each in a fresh subprocess, and reads its peak RSS
(resource.getrusage(RUSAGE_CHILDREN).ru_maxrss, measured by an intermediate process so each
number is one child's):

  baseline   python -c "import torch, onnx, gradlint.cli"      (the interpreter and libraries)
  no-probe   gradlint model.onnx --no-probe                   (load, convert, static rules)
  full       gradlint model.onnx                              (plus trace, probe and all rules)

and reports extra memory (peak - baseline) as a multiple of the model's size. The goal: the
load path holds each weight once (extra ~1x: the weights themselves), and the full run
stays within 2x.

    python benchmarks/bench_onnx_memory.py                 # ~500 MB, a few minutes on 2 cores
    python benchmarks/bench_onnx_memory.py --mb 100 --runs no-probe
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# As bench_speed.MEASURE: a child subreaper (Linux), so that gradlint's fork server, and with it
# the worker that lints the model, count in RUSAGE_CHILDREN once gradlint has exited.
MEASURE = """
import ctypes, os, resource, subprocess, sys
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, code)
"""


def build(directory: str, megabytes: float, width: int = 4096) -> tuple[str, int]:
    """Write model.onnx + weights.bin: Gemm/Relu layers of width x width fp32. Returns (path, bytes)."""
    import numpy as np
    from onnx import TensorProto, helper

    layer_bytes = width * width * 4 + width * 4
    layers = max(2, round(megabytes * 2**20 / layer_bytes))
    rng = np.random.default_rng(0)
    nodes, initializers, offset, previous = [], [], 0, "x"
    with open(os.path.join(directory, "weights.bin"), "wb") as data:
        for i in range(layers):
            weight = (rng.standard_normal((width, width), dtype=np.float32) * np.sqrt(2 / width)).astype(np.float32)
            bias = np.zeros(width, dtype=np.float32)
            for name, array in ((f"layers.{i}.weight", weight), (f"layers.{i}.bias", bias)):
                tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape,
                                     data_location=TensorProto.EXTERNAL)
                for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(array.nbytes))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
                data.write(array.tobytes())
                offset += array.nbytes
                initializers.append(tensor)
            del weight
            output = f"h{i}" if i < layers - 1 else "y"
            nodes.append(helper.make_node("Gemm", [previous, f"layers.{i}.weight", f"layers.{i}.bias"], [f"z{i}"],
                                          name=f"/layers/layers.{i}/Gemm", transB=1))
            if i < layers - 1:
                nodes.append(helper.make_node("Relu", [f"z{i}"], [output], name=f"/act_{i}/Relu" if i else "/act/Relu"))
                previous = output
            else:
                nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "wide_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = os.path.join(directory, "model.onnx")
    with open(path, "wb") as handle:
        handle.write(model.SerializeToString())
    return path, offset


def peak_rss(command: list[str]) -> tuple[int, int, float]:
    """(peak RSS in bytes, exit code, seconds) of `command` run in a fresh process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    rss, code = result.stdout.split()
    return int(rss), int(code), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=500, help="model size in MB (default 500)")
    parser.add_argument("--runs", nargs="+", default=["no-probe", "full"], choices=["no-probe", "full"])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradlint-bench-") as directory:
        path, size = build(directory, args.mb)
        gradlint = [sys.executable, "-m", "gradlint", path, "--isolated", "--format", "json"]
        commands = {
            "baseline": [sys.executable, "-c", "import torch, onnx, gradlint.cli"],
            "no-probe": [*gradlint, "--no-probe"],
            "full": gradlint,
        }
        base, _, _ = peak_rss(commands["baseline"])
        results = {"model_bytes": size, "baseline_rss_bytes": base, "runs": {}}
        for run in args.runs:
            rss, code, seconds = peak_rss(commands[run])
            results["runs"][run] = {"peak_rss_bytes": rss, "extra_bytes": rss - base,
                                    "extra_over_model": (rss - base) / size, "exit_code": code,
                                    "seconds": round(seconds, 1)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    mb = 2**20
    print(f"model: {size / mb:.0f} MB of fp32 weights in external data; baseline (import torch, onnx, gradlint): "
          f"{base / mb:.0f} MB peak RSS")
    for run, r in results["runs"].items():
        print(f"{run:>9}: peak {r['peak_rss_bytes'] / mb:.0f} MB, extra {r['extra_bytes'] / mb:.0f} MB = "
              f"{r['extra_over_model']:.2f}x the model ({r['seconds']}s, exit {r['exit_code']})")


if __name__ == "__main__":
    main()
