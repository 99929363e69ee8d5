# Nomarr for NVIDIA GPUs: the image built from ../Dockerfile with onnxruntime-gpu (the
# CUDA execution provider) in place of the CPU-only onnxruntime, and the CUDA 12 and
# cuDNN 9 libraries it loads (the host gives only the driver, through the NVIDIA
# container toolkit: `docker run --gpus all`).
#
#   docker build --network host -t nomarr .
#   docker build --network host -f docker/gpu.Dockerfile -t nomarr:gpu .
#
# What it changes: the backbones and heads run on the GPU through their ONNX twins
# (NOMARR_ENGINE=onnx; one log line at the first job says "on the GPU (CUDA ...)"),
# cuDNN picks its convolution algorithms by heuristics (no exhaustive search stalling
# the first patches), and batches are larger (NOMARR_BATCH_SIZE=64). Without a GPU the
# CUDA provider is not used and it runs on the CPU like the plain image (the log says
# "on the CPU"). Not built or run on a GPU here: unmeasured.
ARG BASE=nomarr

FROM ${BASE} AS cuda
USER root
COPY docker/requirements-gpu.txt /tmp/
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-pip \
    && /usr/bin/python3 -m pip install --no-cache-dir --break-system-packages --require-hashes \
        --no-deps --target /opt/cuda -r /tmp/requirements-gpu.txt \
    && mkdir -p /opt/gpu-site \
    && mv /opt/cuda/onnxruntime /opt/cuda/onnxruntime_gpu-*.dist-info /opt/gpu-site/

FROM ${BASE}
ARG SITE=/opt/venv/lib/python3.11/site-packages
# onnxruntime-gpu is the same `onnxruntime` module, with the CUDA provider: it replaces
# the CPU-only one (same API; the CPU provider is in both).
RUN rm -rf ${SITE}/onnxruntime ${SITE}/onnxruntime-*.dist-info
COPY --from=cuda /opt/gpu-site/ ${SITE}/
COPY --from=cuda /opt/cuda/nvidia /opt/cuda/nvidia
ENV LD_LIBRARY_PATH=/opt/cuda/nvidia/cuda_runtime/lib:/opt/cuda/nvidia/cublas/lib:/opt/cuda/nvidia/cufft/lib:/opt/cuda/nvidia/curand/lib:/opt/cuda/nvidia/cudnn/lib:/opt/cuda/nvidia/cuda_nvrtc/lib:/opt/cuda/nvidia/nvjitlink/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NOMARR_BATCH_SIZE=64
