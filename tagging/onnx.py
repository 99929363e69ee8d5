"""ONNX twins of Essentia's model files, so onnxruntime runs what users drop in.

Users keep installing Essentia's files (a `.pb` frozen graph and its `.json`
sidecar); onnxruntime runs the same graph 2-3x faster on a CPU. Each `.pb` gets a
twin `<stem>.<sha256 of the .pb, 16 hex>.onnx`, looked for beside the `.pb` (where
`install_models` and the image's build put them) and then in the cache folder
(NOMARR_ONNX_CACHE), where the ones made at run time go. A changed `.pb` has
another hash, so a stale twin is never used.

A twin is made by tf2onnx, which imports TensorFlow; that cannot live in a
process that imported Essentia (both register the same ops and abort). So the
conversion runs as its own process, `python -m tagging.onnx`, fed the jobs as
JSON on stdin and answering one line per model: `converted PATH`, or
`failed PATH: why`. Like tagging.convert, this module imports no Django and
nothing of Essentia, TensorFlow or onnxruntime at import time.

Where no twin can be made (no TensorFlow in the serving image, a graph tf2onnx
cannot convert), the model runs on Essentia as before, and the log says so once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Seconds the conversion process may take for all the models it is given.
CONVERT_TIMEOUT = 900
#: The ONNX opset the twins use (onnxruntime 1.22+ runs it on CPU and CUDA).
OPSET = 17


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def twin_name(pb: Path, digest: str) -> str:
    return f"{pb.stem}.{digest[:16]}.onnx"


def find_twin(pb: Path, digest: str, cache_dir: Path) -> Path | None:
    """The twin of this very .pb (by its hash), beside it or in the cache folder."""
    for folder in (pb.parent, cache_dir):
        candidate = folder / twin_name(pb, digest)
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


@dataclass
class Job:
    """One model to convert: the graph, its input and output tensor names, the target."""

    pb: Path
    inputs: list[str]
    outputs: list[str]
    target: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "pb": str(self.pb),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "target": str(self.target),
        }


def make_twins(jobs: list[Job], timeout: float = CONVERT_TIMEOUT) -> dict[Path, str]:
    """Convert in a child process; returns {pb: why} for each model left without a twin."""
    if not jobs:
        return {}
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tagging.onnx"],
            input=json.dumps([job.as_dict() for job in jobs]),
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {job.pb: f"the conversion took longer than {timeout:g} s" for job in jobs}
    except OSError as exc:
        return {job.pb: f"cannot start the conversion: {exc.strerror or exc}" for job in jobs}
    answered: dict[Path, str] = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "converted":
            answered[Path(rest)] = ""
        elif word == "failed":
            path, _, why = rest.partition(": ")
            answered[Path(path)] = why or "tf2onnx failed"
    errors = proc.stderr.strip().splitlines()
    crashed = errors[-1] if errors else f"exit status {proc.returncode}"
    failed: dict[Path, str] = {}
    for job in jobs:
        why = answered.get(job.pb, crashed)
        if why or not job.target.is_file():
            failed[job.pb] = why or "no twin was written"
    return failed


# --- a faster, equal graph --------------------------------------------------------------

#: Channels a convolution's output is padded to a multiple of, so onnxruntime's blocked
#: (NCHWc) kernels keep the whole conv -> pool chain in their layout (16: AVX-512's
#: block; a multiple of AVX2's 8).
CHANNEL_BLOCK = 16
#: In the name of each weight pool_first writes, so a rewritten graph is known as such.
POOLED_MARK = "__pool_first_"


def pool_first(model: Any) -> int:
    """Rewrite, in place, each `Conv -> Relu -> BatchNormalization -> MaxPool` chain of
    an onnx.ModelProto into `Conv -> MaxPool -> [Slice] -> [Mul by ±1] -> Relu ->
    BatchNormalization`, with the same outputs; returns how many chains it rewrote.

    musicnn pools each filter's output over the whole frequency axis, so its Relu and
    batch norm ran on every (time, frequency) cell (~30 % of a patch's time) for one
    value per time step. Both are monotonic per channel, so they commute with the max:
    Relu and an increasing batch norm (scale > 0) as they are; a channel whose scale is
    negative takes the min instead, which is minus the max of the negated filter (its
    weights and bias negated, exactly), given back its sign before the Relu. The
    convolution's channels are padded with zero filters to CHANNEL_BLOCK, and the
    padding sliced off after the pool."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    graph_outputs = {out.name for out in graph.output}

    def single(name: str, op: str) -> Any:
        node = producer.get(name)
        only = consumers.get(name) == 1 and name not in graph_outputs
        return node if node is not None and node.op_type == op and only else None

    def constant(name: str, value: Any) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    rewritten = 0
    unused: set[str] = set()
    for pool in list(graph.node):
        if pool.op_type != "MaxPool" or len(pool.output) != 1:
            continue
        norm = single(pool.input[0], "BatchNormalization")
        if norm is None or len(norm.output) != 1 or len(norm.input) != 5:
            continue
        if any(name not in inits for name in norm.input[1:]):
            continue
        relu = single(norm.input[0], "Relu")
        conv = single(relu.input[0], "Conv") if relu is not None else None
        if conv is None or len(conv.input) != 3 or any(n not in inits for n in conv.input[1:]):
            continue
        gamma, _, _, var = (numpy_helper.to_array(inits[name]) for name in norm.input[1:])
        epsilon = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + epsilon)
        weight = numpy_helper.to_array(inits[conv.input[1]])
        bias = numpy_helper.to_array(inits[conv.input[2]])
        channels = len(scale)
        if np.any(scale == 0) or not np.all(np.isfinite(scale)) or len(weight) != channels:
            continue
        if weight.dtype != np.float32 or bias.dtype != np.float32:
            continue
        groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
        sign = np.where(scale > 0, 1, -1).astype(weight.dtype)
        weight = weight * sign.reshape(-1, *[1] * (weight.ndim - 1))
        bias = bias * sign
        # (A grouped convolution keeps its channels: padding would regroup them.)
        padded = -(-channels // CHANNEL_BLOCK) * CHANNEL_BLOCK if groups == 1 else channels
        if padded > channels:
            weight = np.concatenate([weight, np.zeros((padded - channels, *weight.shape[1:]))])
            bias = np.concatenate([bias, np.zeros(padded - channels)])
        unused.update(conv.input[1:])
        out = pool.output[0]
        conv.input[1] = constant(f"{out}{POOLED_MARK}w", weight.astype(np.float32))
        conv.input[2] = constant(f"{out}{POOLED_MARK}b", bias.astype(np.float32))
        # conv -> pool -> [slice] -> [sign] -> relu -> norm (-> what the pool fed)
        pool.input[0], pool.output[0] = conv.output[0], f"{out}__pooled"
        steps, current = [], pool.output[0]
        if padded > channels:
            bounds = [
                constant(f"{out}__{what}", np.array([value], dtype=np.int64))
                for what, value in (("from", 0), ("to", channels), ("axis", 1))
            ]
            steps.append(helper.make_node("Slice", [current, *bounds], [f"{out}__sliced"]))
            current = f"{out}__sliced"
        if np.any(sign < 0):
            shape = [1, channels] + [1] * (weight.ndim - 2)
            factor = constant(f"{out}__sign", sign.astype(np.float32).reshape(shape))
            steps.append(helper.make_node("Mul", [current, factor], [f"{out}__signed"]))
            current = f"{out}__signed"
        relu.input[0], relu.output[0] = current, f"{out}__relu"
        norm.input[0], norm.output[0] = relu.output[0], out
        graph.node.remove(relu)
        graph.node.remove(norm)
        at = list(graph.node).index(pool) + 1
        for offset, node in enumerate([*steps, relu, norm]):
            graph.node.insert(at + offset, node)
        rewritten += 1
    still_used = {name for node in graph.node for name in node.input}
    still_used |= {value.name for value in graph.input}
    for init in [i for i in graph.initializer if i.name in unused - still_used]:
        graph.initializer.remove(init)
    return rewritten


def faster_graph(path: Path) -> bytes | None:
    """The ONNX file at path with pool_first applied, as bytes; None when there is
    nothing to rewrite (no MaxPool, or rewritten when it was made: the serving image's
    twins) or the onnx package is missing. Only then is onnx imported (about 1 s)."""
    data = path.read_bytes()
    if b"MaxPool" not in data or POOLED_MARK.encode() in data:
        return None
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load_from_string(data)
    if not pool_first(model):
        return None
    data: bytes = model.SerializeToString()
    return data


# --- the child process -----------------------------------------------------------------


def _convert(job: dict[str, object]) -> None:
    import tf2onnx
    from tensorflow.core.framework import graph_pb2

    from nomarr_site.atomic import write_atomically

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(Path(str(job["pb"])).read_bytes())
    inputs = [f"{name}:0" for name in job["inputs"]]  # type: ignore[attr-defined]
    outputs = [f"{name}:0" for name in job["outputs"]]  # type: ignore[attr-defined]
    model, _ = tf2onnx.convert.from_graph_def(
        graph, input_names=inputs, output_names=outputs, opset=OPSET
    )
    pool_first(model)  # the same outputs, in ~2/3 of the time (musicnn)
    write_atomically(Path(str(job["target"])), model.SerializeToString())


def folder_jobs(folder: Path) -> list[dict[str, object]]:
    """A twin beside each model in folder that has none yet (inputs and outputs from
    its sidecar), for `python -m tagging.onnx FOLDER` (the image's build)."""
    jobs: list[dict[str, object]] = []
    for pb in sorted(folder.glob("*.pb")):
        try:
            schema = json.loads(pb.with_suffix(".json").read_text(encoding="utf-8"))["schema"]
            inputs = [schema["inputs"][0]["name"]]
            outputs = [
                out["name"]
                for out in schema["outputs"]
                if out.get("output_purpose") in ("embeddings", "predictions")
            ]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue  # the catalog says why it skips such a file
        digest = sha256(pb)
        if outputs and find_twin(pb, digest, folder) is None:
            target = folder / twin_name(pb, digest)
            jobs.append(
                {"pb": str(pb), "inputs": inputs, "outputs": outputs, "target": str(target)}
            )
    return jobs


def main(argv: list[str]) -> int:
    """`python -m tagging.onnx < [{"pb", "inputs", "outputs", "target"}, ...]`, or
    `python -m tagging.onnx FOLDER`: a twin beside every model there."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    jobs = folder_jobs(Path(argv[0])) if argv else json.load(sys.stdin)
    writable = []
    for job in jobs:  # before TensorFlow's seconds of importing
        try:
            Path(job["target"]).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"failed {job['pb']}: cannot write its twin: {exc.strerror or exc}", flush=True)
        else:
            writable.append(job)
    jobs = writable
    if not jobs:
        return 0
    try:
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        for job in jobs:
            print(f"failed {job['pb']}: tf2onnx is not installed ({exc.name})", flush=True)
        return 0
    for job in jobs:
        try:
            _convert(job)
        except Exception as exc:
            message = " ".join(str(exc).split())[:300] or type(exc).__name__
            print(f"failed {job['pb']}: {type(exc).__name__}: {message}", flush=True)
        else:
            print(f"converted {job['pb']}", flush=True)
    return 0


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    sys.exit(main(sys.argv[1:]))
