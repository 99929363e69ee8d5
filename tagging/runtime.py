"""Import Essentia once, with TensorFlow set up the way Nomarr needs it.

TensorFlow reads its GPU settings when it first loads, so they are set here,
before Essentia (which bundles TensorFlow) is imported. On a machine with a GPU
the models run on it with memory grown on demand; without one they run on the
CPU. Nothing else in Nomarr imports essentia directly.

Essentia's resampler (libsamplerate, linked into Essentia's own library) is
reached here too, through ctypes, so that a track can be resampled in pieces
with the filter's state kept between them (see Resampler).

onnxruntime, which runs the models' ONNX twins (tagging/onnx.py), is set up here
as well (onnx_session): on the GPU through the CUDA provider when onnxruntime-gpu
and a GPU are there, on the CPU otherwise, and the log says which, once.
"""

import ctypes
import importlib
import logging
import os
import threading
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

_TF_ENV = {
    # Take GPU memory as needed instead of all of it at start (the original Nomarr did this).
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    # Give the GPU its own launch threads so CPU-side work does not starve it.
    "TF_GPU_THREAD_MODE": "gpu_private",
    # TensorFlow's start-up chatter (and a harmless "grad_a" complaint from the
    # zoo heads) is noise in a server log; real failures still raise in Python.
    "TF_CPP_MIN_LOG_LEVEL": "3",
}

log = logging.getLogger(__name__)

_essentia: ModuleType | None = None


def essentia() -> ModuleType:
    global _essentia
    if _essentia is None:
        for key, value in _TF_ENV.items():
            os.environ.setdefault(key, value)
        import essentia as module

        module.log.infoActive = False
        module.log.warningActive = False
        _essentia = module
    return _essentia


def essentia_standard() -> ModuleType:
    essentia()
    return importlib.import_module("essentia.standard")


# --- Essentia's resampler, in pieces ---------------------------------------------------

#: libsamplerate's SRC_SINC_MEDIUM_QUALITY: the quality Essentia's Resample and
#: MonoLoader use by default (Nomarr's pipeline has always asked for 1).
RESAMPLE_QUALITY = 1


class _SrcData(ctypes.Structure):
    """libsamplerate's SRC_DATA."""

    _fields_ = [
        ("data_in", ctypes.POINTER(ctypes.c_float)),
        ("data_out", ctypes.POINTER(ctypes.c_float)),
        ("input_frames", ctypes.c_long),
        ("output_frames", ctypes.c_long),
        ("input_frames_used", ctypes.c_long),
        ("output_frames_gen", ctypes.c_long),
        ("end_of_input", ctypes.c_int),
        ("src_ratio", ctypes.c_double),
    ]


_samplerate: ctypes.CDLL | None = None


def samplerate() -> ctypes.CDLL:
    """libsamplerate as Essentia links it, with the prototypes Resampler calls."""
    global _samplerate
    if _samplerate is None:
        lib = ctypes.CDLL(essentia()._essentia.__file__)
        lib.src_new.restype = ctypes.c_void_p
        lib.src_new.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.src_process.restype = ctypes.c_int
        lib.src_process.argtypes = [ctypes.c_void_p, ctypes.POINTER(_SrcData)]
        lib.src_delete.restype = ctypes.c_void_p
        lib.src_delete.argtypes = [ctypes.c_void_p]
        lib.src_strerror.restype = ctypes.c_char_p
        lib.src_strerror.argtypes = [ctypes.c_int]
        _samplerate = lib
    return _samplerate


class Resampler:
    """Mono float32 audio from input_rate to output_rate, fed in pieces of any size.

    The same converter Essentia's Resample and MonoLoader run (libsamplerate at
    RESAMPLE_QUALITY, with Essentia's single-precision rate ratio), kept running
    from piece to piece: the samples that come out are the very ones Resample
    gives for the whole track at once. Call it with each piece, then once with
    last=True (any piece, even an empty one) for the samples the filter still
    holds. Equal rates pass the samples through, as Resample does.
    """

    def __init__(self, input_rate: int, output_rate: int) -> None:
        # Essentia computes the ratio in single precision; so must we, to the sample.
        self.ratio = float(np.float32(output_rate) / np.float32(input_rate))
        self._state: int | None = None
        self._finished = False
        if input_rate != output_rate:
            lib = samplerate()
            error = ctypes.c_int(0)
            state = lib.src_new(RESAMPLE_QUALITY, 1, ctypes.byref(error))
            if not state:
                message = lib.src_strerror(error.value).decode()
                raise RuntimeError(
                    f"cannot resample {input_rate} Hz to {output_rate} Hz: {message}"
                )
            self._state = state
            weakref.finalize(self, lib.src_delete, state)

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._finished:
            raise RuntimeError("the resampler was already given its last piece")
        self._finished = last
        data = np.ascontiguousarray(samples, dtype=np.float32)
        if self._state is None:
            return data
        lib, pointer = samplerate(), ctypes.POINTER(ctypes.c_float)
        pieces = []
        while True:
            out = np.empty(int(len(data) * self.ratio) + 1024, dtype=np.float32)
            src = _SrcData(
                data.ctypes.data_as(pointer),
                out.ctypes.data_as(pointer),
                len(data),
                len(out),
                0,
                0,
                int(last),
                self.ratio,
            )
            code = lib.src_process(self._state, ctypes.byref(src))
            if code:
                raise RuntimeError(f"resampling failed: {lib.src_strerror(code).decode()}")
            pieces.append(out[: src.output_frames_gen])
            data = data[src.input_frames_used :]
            stalled = src.input_frames_used == 0 and src.output_frames_gen == 0
            if stalled and len(data):
                raise RuntimeError("resampling failed: the converter took no samples")
            if stalled or (not len(data) and not last):
                break
        return np.concatenate(pieces)


# --- onnxruntime ------------------------------------------------------------------------

#: cuDNN's convolution algorithm search: HEURISTIC picks at once; EXHAUSTIVE (the
#: default) benchmarks every algorithm on each new shape, stalling the first patches.
CUDNN_CONV_ALGO_SEARCH = "HEURISTIC"

_device_lock = threading.Lock()
_device_said: str | None = None  # the provider the log last named


def onnxruntime() -> Any:
    """The onnxruntime module (imported on first use; it has no type hints)."""
    import onnxruntime as module  # type: ignore[import-untyped]

    return module


def onnx_providers() -> list[Any]:
    """CUDA first when this onnxruntime has it (onnxruntime-gpu), then the CPU."""
    ort = onnxruntime()
    providers: list[Any] = []
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.append(
            (
                "CUDAExecutionProvider",
                {
                    "device_id": 0,
                    "cudnn_conv_algo_search": CUDNN_CONV_ALGO_SEARCH,
                    "arena_extend_strategy": "kSameAsRequested",
                },
            )
        )
    providers.append("CPUExecutionProvider")
    return providers


def onnx_session(path: Path, threads: int) -> Any:
    """An onnxruntime session on an ONNX file, set up as benchmarks/bench_pipeline.py
    measured best on a 2-core CPU.

    `threads` intra-op threads (1: each musicnn backbone runs in its own thread, so
    two backbones keep two cores busy), no spinning (a spinning thread takes the
    core that decoding needs), the CPU memory arena on (off, every run allocates
    and frees its buffers: ~30 % slower) with memory patterns, which the fixed
    batch shapes the pipeline feeds make reusable, so the arena does not grow.
    The graph is the twin's with its pools first (tagging.onnx.pool_first).
    """
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # A twin made before its graph was rewritten at conversion (tagging.onnx.pool_first)
    # is rewritten here, where the onnx package is at hand.
    from tagging import onnx as twins

    model = twins.faster_graph(path) or str(path)
    session = ort.InferenceSession(model, options, providers=onnx_providers())
    _say_device(session.get_providers()[0], threads)
    return session


def _say_device(provider: str, threads: int) -> None:
    global _device_said
    ort = onnxruntime()
    with _device_lock:
        if _device_said == provider:
            return
        _device_said = provider
    if provider == "CUDAExecutionProvider":
        log.info(
            "onnxruntime %s runs the models on the GPU (CUDA, cuDNN search %s)",
            ort.__version__,
            CUDNN_CONV_ALGO_SEARCH,
        )
    else:
        log.info(
            "onnxruntime %s runs the models on the CPU (%s intra-op thread%s per model)",
            ort.__version__,
            threads,
            "" if threads == 1 else "s",
        )
