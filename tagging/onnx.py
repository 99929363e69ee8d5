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
