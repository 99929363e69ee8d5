"""Find the models on disk and load each once per process.

A model is an Essentia model-zoo `.pb` with its `.json` sidecar. The sidecar, not
the file name, says what a model is: backbones by `inference.algorithm`, heads
(`TensorflowPredict2D`) by the backbone named in `inference.embedding_model`, and
labels by `classes` in output order. Anything that does not fit is skipped with a
reason, so one bad file never stops tagging.

With NOMARR_ENGINE=onnx (the default) each musicnn backbone and each head runs on
onnxruntime from its ONNX twin (tagging/onnx.py, made once per .pb in a child
process); a model without a twin runs on Essentia, and the log says so. Either
way the models are loaded once per process, on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagging import onnx, runtime
from tagging.models import WorkerState

log = logging.getLogger(__name__)

BACKBONE_ALGORITHMS = {
    "TensorflowPredictMusiCNN",
    "TensorflowPredictVGGish",
    "TensorflowPredictEffnetDiscogs",
    "TensorflowPredictMAEST",
}
HEAD_ALGORITHMS = {"TensorflowPredict2D"}
NEGATION_PREFIXES = ("non_", "not_", "non-", "not-", "non ", "not ", "no ")


def is_negation(label: str) -> bool:
    """`non_happy`, `not_danceable`: scored, but never a mood word."""
    return label.lower().startswith(NEGATION_PREFIXES)


class ModelError(Exception):
    """Why a model file cannot be used."""


@dataclass
class Head:
    """Something that turns a backbone's per-patch output into per-label scores.

    Either a classifier head file (`TensorflowPredict2D` on the embeddings) or a
    backbone's own `predictions` output (then `graph` is None).
    """

    stem: str
    labels: list[str]
    backbone: str
    graph: Path | None = None
    input_name: str = ""
    output_name: str = ""
    is_mood: bool = False
    onnx: Path | None = None  # its ONNX twin, when onnxruntime runs it
    _algorithm: Callable[[np.ndarray], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def is_two_class(self) -> bool:
        return len(self.labels) == 2

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Per-patch activations [patches, labels] from the backbone's embeddings."""
        if self._algorithm is None and self.onnx is not None:
            session = runtime.onnx_session(self.onnx, 1)
            feed, fetch = f"{self.input_name}:0", [f"{self.output_name}:0"]
            self._algorithm = lambda x: session.run(fetch, {feed: x})[0]
        if self._algorithm is None:
            es = runtime.essentia_standard()
            self._algorithm = es.TensorflowPredict2D(
                graphFilename=str(self.graph), input=self.input_name, output=self.output_name
            )
        out = np.asarray(self._algorithm(np.ascontiguousarray(embeddings, dtype=np.float32)))
        return out.reshape(out.shape[0], -1)


@dataclass
class Backbone:
    """A feature extractor: audio in, per-patch embeddings (and maybe predictions) out."""

    stem: str
    graph: Path
    algorithm: str
    sample_rate: int
    input_name: str
    embeddings_output: str
    predictions_output: str | None
    heads: list[Head] = field(default_factory=list)
    onnx: Path | None = None  # its ONNX twin, when onnxruntime runs it (musicnn only)
    onnx_threads: int = 1
    _algorithms: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_musicnn(self) -> bool:
        return self.algorithm == "TensorflowPredictMusiCNN"

    def outputs(self) -> list[str]:
        names = [self.embeddings_output]
        if self.predictions_output:
            names.append(self.predictions_output)
        return names

    def run_patches(self, patches: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """MusiCNN only: run the graph on mel patches [n, 187, 96] in batches, one pass
        giving every output we need."""
        if self.onnx is not None:
            return self._run_onnx(patches, batch_size)
        es = runtime.essentia_standard()
        if "patches" not in self._algorithms:
            self._algorithms["patches"] = es.TensorflowPredict(
                graphFilename=str(self.graph), inputs=[self.input_name], outputs=self.outputs()
            )
        predict = self._algorithms["patches"]
        results: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs()}
        for start in range(0, len(patches), batch_size):
            pool = runtime.essentia().Pool()
            pool.set(
                self.input_name, np.ascontiguousarray(patches[start : start + batch_size, None])
            )
            out = predict(pool)
            for name in results:
                value = np.asarray(out[name])
                results[name].append(value.reshape(value.shape[0], -1))
        return {name: np.concatenate(chunks) for name, chunks in results.items()}

    def _run_onnx(self, patches: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """run_patches on onnxruntime. Every batch has the same shape (the last one
        padded with zeros, and the padding's outputs dropped), so the session's memory
        pattern is reused and its arena does not grow."""
        if "onnx" not in self._algorithms:
            assert self.onnx is not None
            self._algorithms["onnx"] = runtime.onnx_session(self.onnx, self.onnx_threads)
        session = self._algorithms["onnx"]
        names = self.outputs()
        fetch, feed = [f"{name}:0" for name in names], f"{self.input_name}:0"
        results: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for start in range(0, len(patches), batch_size):
            batch = np.ascontiguousarray(patches[start : start + batch_size], dtype=np.float32)
            size = len(batch)
            if size < batch_size:
                batch = np.concatenate(
                    [batch, np.zeros((batch_size - size, *batch.shape[1:]), np.float32)]
                )
            for name, value in zip(names, session.run(fetch, {feed: batch}), strict=True):
                results[name].append(value[:size].reshape(size, -1))
        return {name: np.concatenate(chunks) for name, chunks in results.items()}

    def run_audio(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Any backbone: Essentia's own algorithm on the decoded audio, once per output.

        Slower than run_patches, but right for every backbone the zoo has."""
        es = runtime.essentia_standard()
        results = {}
        for name in self.outputs():
            if name not in self._algorithms:
                self._algorithms[name] = getattr(es, self.algorithm)(
                    graphFilename=str(self.graph), output=name
                )
            value = np.asarray(self._algorithms[name](audio))
            results[name] = value.reshape(value.shape[0], -1)
        return results


@dataclass
class Catalog:
    """Every usable backbone with its heads, and every skipped file with why."""

    backbones: list[Backbone]
    skipped: list[tuple[str, str]]
    fingerprint: str
    #: The fingerprint of the backbones alone: what their embeddings depend on. A head
    #: added, downloaded or taught changes `fingerprint` (files are tagged again) but
    #: not this (the stored embeddings stay valid).
    backbones_fingerprint: str = ""

    @property
    def heads(self) -> list[Head]:
        return [head for backbone in self.backbones for head in backbone.heads]


def _read_sidecar(pb: Path) -> dict[str, Any]:
    sidecar = pb.with_suffix(".json")
    if not sidecar.exists():
        raise ModelError(f"no sidecar {sidecar.name}")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"sidecar {sidecar.name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"sidecar {sidecar.name} is not a JSON object")
    return data


def _output(sidecar: dict[str, Any], purpose: str) -> str | None:
    for out in sidecar.get("schema", {}).get("outputs", []) or []:
        if isinstance(out, dict) and out.get("output_purpose") == purpose and out.get("name"):
            return str(out["name"])
    return None


def _classes(sidecar: dict[str, Any]) -> list[str]:
    classes = sidecar.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ModelError("sidecar has no list of classes")
    if len(set(classes)) != len(classes):
        raise ModelError("sidecar repeats a class")
    return classes


def _input(sidecar: dict[str, Any]) -> str:
    inputs = sidecar.get("schema", {}).get("inputs") or []
    if not inputs or not isinstance(inputs[0], dict) or not inputs[0].get("name"):
        raise ModelError("sidecar names no input")
    return str(inputs[0]["name"])


def is_mood_head(stem: str, mood_prefixes: list[str]) -> bool:
    """Mood heads give mood words; the rest (gender, tonality, genre) are scores only."""
    return any(stem.lower().startswith(prefix) for prefix in mood_prefixes)


def discover(model_dirs: list[Path], mood_prefixes: list[str]) -> Catalog:
    """Read every sidecar under model_dirs and wire heads to their backbones."""
    skipped: list[tuple[str, str]] = []
    backbones: dict[str, Backbone] = {}
    heads: list[tuple[Path, dict[str, Any]]] = []
    digest = hashlib.sha256()
    seen: set[str] = set()

    files = sorted(pb for folder in model_dirs if folder.is_dir() for pb in folder.glob("*.pb"))
    for pb in files:
        if pb.stem in seen:
            skipped.append((str(pb), f"another {pb.stem}.pb came first"))
            continue
        try:
            if pb.stat().st_size == 0:
                raise ModelError("model file is empty")
            sidecar = _read_sidecar(pb)
            inference = sidecar.get("inference") or {}
            algorithm = inference.get("algorithm")
            if algorithm in BACKBONE_ALGORITHMS:
                embeddings = _output(sidecar, "embeddings")
                if not embeddings:
                    raise ModelError(
                        "backbone sidecar has no output with output_purpose 'embeddings'"
                    )
                backbone = Backbone(
                    stem=pb.stem,
                    graph=pb,
                    algorithm=algorithm,
                    sample_rate=int(inference.get("sample_rate", 16000)),
                    input_name=_input(sidecar),
                    embeddings_output=embeddings,
                    predictions_output=_output(sidecar, "predictions"),
                )
                if backbone.predictions_output:
                    backbone.heads.append(
                        Head(stem=pb.stem, labels=_classes(sidecar), backbone=pb.stem)
                    )
                backbones[pb.stem] = backbone
            elif algorithm in HEAD_ALGORITHMS:
                _classes(sidecar)
                heads.append((pb, sidecar))
            else:
                raise ModelError(f"unsupported inference.algorithm {algorithm!r}")
        except ModelError as exc:
            skipped.append((str(pb), str(exc)))
            continue
        except OSError as exc:
            skipped.append((str(pb), f"cannot read: {exc.strerror or exc}"))
            continue
        seen.add(pb.stem)

    for pb, sidecar in heads:
        parent = ((sidecar.get("inference") or {}).get("embedding_model") or {}).get("model_name")
        if parent not in backbones:
            skipped.append((str(pb), f"its backbone {parent!r} is not installed"))
            continue
        output = _output(sidecar, "predictions")
        if not output:
            skipped.append(
                (str(pb), "head sidecar has no output with output_purpose 'predictions'")
            )
            continue
        backbones[parent].heads.append(
            Head(
                stem=pb.stem,
                labels=_classes(sidecar),
                backbone=parent,
                graph=pb,
                input_name=_input(sidecar),
                output_name=output,
                is_mood=is_mood_head(pb.stem, mood_prefixes),
            )
        )

    ordered = [backbones[stem] for stem in sorted(backbones)]
    sound = hashlib.sha256()
    for backbone in ordered:
        sound.update(backbone.stem.encode())
        sound.update(_file_digest(backbone.graph))
        backbone.heads.sort(key=lambda head: head.stem)
        for head in backbone.heads:
            digest.update(head.stem.encode())
            digest.update("\0".join(head.labels).encode())
            if head.graph is not None:
                digest.update(_file_digest(head.graph))
        digest.update(backbone.stem.encode())
        digest.update(_file_digest(backbone.graph))
    return Catalog(
        backbones=ordered,
        skipped=skipped,
        fingerprint=f"nomarr1-{digest.hexdigest()[:12]}",
        backbones_fingerprint=f"sound1-{sound.hexdigest()[:12]}" if ordered else "",
    )


def _file_digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def attach_twins(
    catalog: Catalog, cache_dir: Path, threads: int = 1, beside: bool = False
) -> list[str]:
    """Give every musicnn backbone and every head its ONNX twin, making the missing
    ones (in a child process, into cache_dir, or with beside beside their .pb, as
    install_models does). Returns the stems left on Essentia, having logged once why."""
    wanted: list[tuple[Backbone | Head, onnx.Job]] = []
    for backbone in catalog.backbones:
        models: list[Backbone | Head] = [backbone] if backbone.is_musicnn else []
        models += [head for head in backbone.heads if head.graph is not None]
        for model in models:
            pb = model.graph
            assert pb is not None
            digest = onnx.sha256(pb)
            twin = onnx.find_twin(pb, digest, pb.parent if beside else cache_dir)
            if isinstance(model, Backbone):
                model.onnx_threads = threads
                inputs, outputs = [model.input_name], model.outputs()
            else:
                inputs, outputs = [model.input_name], [model.output_name]
            if twin is not None:
                model.onnx = twin
            else:
                target = (pb.parent if beside else cache_dir) / onnx.twin_name(pb, digest)
                wanted.append((model, onnx.Job(pb, inputs, outputs, target)))
    if wanted:
        started = time.monotonic()
        failed = onnx.make_twins([job for _, job in wanted])
        made = [model.stem for model, job in wanted if job.pb not in failed]
        for model, job in wanted:
            if job.pb not in failed:
                model.onnx = job.target
        if made:
            log.info(
                "models: made the ONNX twins of %s in %.0f s (into %s)",
                ", ".join(made),
                time.monotonic() - started,
                ", ".join(sorted({str(job.target.parent) for _, job in wanted})),
            )
        if failed:
            reasons = sorted(set(failed.values()))
            log.warning(
                "models: no ONNX twin for %s (%s): they run on Essentia",
                ", ".join(model.stem for model, job in wanted if job.pb in failed),
                "; ".join(reasons),
            )
    return [model.stem for model, job in wanted if model.onnx is None]


_lock = threading.Lock()
_catalog: Catalog | None = None


def get_catalog() -> Catalog:
    """The process's catalog, discovered on first use and then reused."""
    global _catalog
    with _lock:
        if _catalog is None:
            from django.conf import settings

            _catalog = discover(settings.NOMARR_MODELS_DIRS, settings.NOMARR_MOOD_HEADS)
            if settings.NOMARR_ENGINE == "onnx":
                attach_twins(_catalog, settings.NOMARR_ONNX_CACHE, settings.NOMARR_ONNX_THREADS)
            log.info(
                "models: %d backbones, %d heads, %d skipped (%s)",
                len(_catalog.backbones),
                len(_catalog.heads),
                len(_catalog.skipped),
                _catalog.fingerprint,
            )
        return _catalog


def refresh_catalog() -> Catalog:
    """Forget loaded models so the next use reads the models folder again (and which
    models generation that was read for: current_catalog records it after)."""
    global _catalog, _loaded_generation
    with _lock:
        _catalog = None
        _loaded_generation = None
    return get_catalog()


# --- the current model set ------------------------------------------------------------

_loaded_generation: int | None = None


def current_catalog() -> Catalog:
    """The catalog of the model set in use now, for jobs and scans alike.

    This process's cached catalog, read again from disk when a models refresh
    anywhere (the shared WorkerState.models_generation, bumped by
    `tagging.jobs.refresh_models`) has moved since this process loaded it."""
    global _loaded_generation
    generation = WorkerState.get().models_generation
    if generation != _loaded_generation:
        catalog = refresh_catalog()
        _loaded_generation = generation
        return catalog
    return get_catalog()


def embedding_version(catalog: Catalog | None = None) -> str | None:
    """What a stored embedding was heard with: the backbones and the patch hop (the
    embeddings are means over patches), not the heads; None when no backbone is
    installed. Embeddings of another version are stale."""
    from django.conf import settings

    catalog = catalog or current_catalog()
    if not catalog.backbones_fingerprint:
        return None
    return f"{catalog.backbones_fingerprint}-h{settings.NOMARR_PATCH_HOP}"


def current_version() -> str | None:
    """The current model set's version (what a tagged file carries as nom_version),
    or None when no head is installed, so nothing can be tagged."""
    catalog = current_catalog()
    return catalog.fingerprint if catalog.heads else None
