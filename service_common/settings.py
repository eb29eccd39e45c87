"""Every setting of both services, declared once: flag, environment variable, default, and
the backend option it feeds. Each service reads its own list; both lists are known to each,
so a variable of the other service in a shared environment is no typo."""
from __future__ import annotations

from core.trimap import TrimapParams
from service_common.config import (
    Setting,
    auto_or_count,
    log_level,
    non_negative_int,
    port,
    positive_float,
    positive_int,
)

COMMON_SETTINGS = [
    Setting("HOST", "HOST", "127.0.0.1", "address to listen on"),
    Setting("COMPUTE_THREADS", "COMPUTE_THREADS", "auto", "threads each worker's numeric "
            "libraries use (BLAS, numba, torch, OpenCV); auto: the cores divided by the workers",
            auto_or_count),
    Setting("REQUEST_DEADLINE", "REQUEST_DEADLINE", 60.0, "seconds a request may take; one that "
            "waits longer for a free worker gets 503", positive_float),
    Setting("API_KEYS", "API_KEYS", "", "comma-separated API keys; set: every endpoint but "
            "/health, /metrics and the docs needs one (Authorization: Bearer KEY or X-API-Key)"),
    Setting("API_KEYS_FILE", "API_KEYS_FILE", "", "a file of API keys, one per line"),
    Setting("RATE_LIMIT", "RATE_LIMIT", "", "requests per key (or address), Flask-Limiter "
            "syntax such as '60/minute'; empty: no limit"),
    Setting("RATE_LIMIT_STORAGE", "RATE_LIMIT_STORAGE", "memory://", "where the rate limit "
            "counts (memory://: per worker; redis://HOST:PORT shares them)"),
    Setting("MAX_PIXELS", "MAX_PIXELS", 40_000_000, "largest image accepted, in pixels",
            positive_int),
    Setting("MAX_UPLOAD_MB", "MAX_UPLOAD_MB", 150, "largest request body, in MB "
            "(the JSON API needs ~25 MB for a 1080p photo)", positive_int),
    Setting("LOG_LEVEL", "LOG_LEVEL", "INFO", "logging level", log_level),
]


def model_settings(backend: str) -> list[Setting]:
    """Where a weights-based backend runs and finds its files."""
    return [
        Setting("DEVICE", "DEVICE", "auto", "device for model backends (torch, onnxruntime): "
                "auto, cpu, cuda", backend=backend, option="device"),
        Setting("MODELS_DIR", "MODELS_DIR", "", "folder with weight files (default: models/)",
                backend=backend, option="models_dir"),
    ]


# Defaults are None: a trimap field that is not configured takes its method's default
# (TrimapParams.resolve), so a request's method=binary gets the binary iteration counts.
TRIMAP_SETTINGS = [
    Setting("TRIMAP_" + name.upper(), "TRIMAP_" + name.upper(), None,
            f"trimap default: {name} (unset: {getattr(TrimapParams(), name)!r}, "
            "or the binary method's own)", type(getattr(TrimapParams(), name)))
    for name in TrimapParams.names()
]

# Video and photo jobs over HTTP (jobs/): the matting service takes them, Celery workers on
# any number of machines do them. The service and every worker must agree on these.
JOBS_SETTINGS = [
    Setting("JOBS_REDIS_URL", "JOBS_REDIS_URL", "redis://127.0.0.1:6379/0", "jobs: Redis, the "
            "queue's broker and result store and where job states live (redis://HOST:PORT/DB)"),
    Setting("JOBS_DIR", "JOBS_DIR", "", "jobs: the folder uploads, chunks and results go to; "
            "shared by the service and every worker, at the same path (default: "
            "<temp>/people-matting-jobs, one machine only)"),
    Setting("JOBS_KEEP_HOURS", "JOBS_KEEP_HOURS", 24.0, "jobs: hours a finished job's result "
            "and state are kept, then removed", float),
    Setting("JOBS_CHUNK_FRAMES", "JOBS_CHUNK_FRAMES", 300, "jobs: frames per chunk of a video "
            "(chunks are what workers share)", int),
    Setting("JOBS_OVERLAP_FRAMES", "JOBS_OVERLAP_FRAMES", 16, "jobs: frames each chunk starts "
            "early and drops, so temporal smoothing has settled at the cut", int),
    Setting("JOBS_CHUNK_PHOTOS", "JOBS_CHUNK_PHOTOS", 8, "jobs: photos per task of a zip", int),
    Setting("JOBS_VISIBILITY_TIMEOUT", "JOBS_VISIBILITY_TIMEOUT", 900.0, "jobs: seconds after "
            "which a task a worker took but never finished (the worker died) goes to another "
            "worker; longer than the slowest chunk takes", float),
    Setting("JOBS_MAX_ATTEMPTS", "JOBS_MAX_ATTEMPTS", 3, "jobs: times a task may be started "
            "(workers dying under it) before its job fails", int),
]

# The worker (python -m jobs worker): the jobs settings, how many processes, logging.
WORKER_SETTINGS = [
    *JOBS_SETTINGS,
    Setting("CONCURRENCY", "JOBS_CONCURRENCY", "auto", "jobs worker: processes, each with its "
            "own models (auto: half the cores, at least 1; a video task keeps ~2 cores busy)"),
    Setting("COMPUTE_THREADS", "COMPUTE_THREADS", "auto", "threads each worker process's "
            "numeric libraries use; auto: the cores divided by the processes"),
    Setting("MAX_PIXELS", "MAX_PIXELS", 40_000_000, "largest photo accepted, in pixels", int),
    Setting("LOG_LEVEL", "LOG_LEVEL", "INFO", "logging level"),
]


def server_settings(prefix: str, default_port: int) -> list[Setting]:
    """Where a service listens and how much it takes at once (``{prefix}_PORT``...)."""
    return [
        Setting("PORT", f"{prefix}_PORT", default_port, "port to listen on", port),
        Setting("WORKERS", f"{prefix}_WORKERS", "auto", "server processes (auto: one per core)",
                auto_or_count),
        Setting("QUEUE", f"{prefix}_QUEUE", 4, "requests that may wait for a worker; more get "
                "an immediate 503 with Retry-After", non_negative_int),
    ]


SEGMENTATION_SETTINGS = [
    *server_settings("SEGMENTATION", 3000),
    Setting("BACKEND", "SEGMENTATION_BACKEND", "auto",
            "person segmenter: auto, maskrcnn, mediapipe, onnx (auto = maskrcnn when its "
            "weights are present, else mediapipe; onnx, a downloaded rembg model, only by name)"),
    Setting("MEDIAPIPE_MODE", "MEDIAPIPE_MODE", "accurate",
            "mediapipe: 'accurate' (every person, pose + selfie models) or 'fast' (selfie only)",
            backend="mediapipe", option="mode"),
    Setting("MASKRCNN_VARIANT", "MASKRCNN_VARIANT", "v1",
            "maskrcnn: 'v1' (maskrcnn_resnet50_fpn, the original) or 'v2' (better masks)",
            backend="maskrcnn", option="variant"),
    Setting("MASKRCNN_INFERENCE_SIZE", "MASKRCNN_INFERENCE_SIZE", None,
            "maskrcnn: shorter side the network sees (smaller is faster on CPU; default 480)",
            int, backend="maskrcnn", option="inference_size"),
    Setting("MASKRCNN_HALF", "MASKRCNN_HALF", 0, "maskrcnn: backbone in half precision on "
            "CUDA (1/0)", int, backend="maskrcnn", option="half"),
    Setting("MASKRCNN_SCORE_THRESHOLD", "MASKRCNN_SCORE_THRESHOLD", 0.6,
            "maskrcnn: minimum person score", float, backend="maskrcnn",
            option="score_threshold"),
    Setting("MAX_PEOPLE", "SEGMENTATION_MAX_PEOPLE", None,
            "keep at most N people (maskrcnn: the most confident; mediapipe: how many it "
            "looks for, default 6); default: the backend's", int,
            backend="maskrcnn,mediapipe", option="max_people"),
    Setting("ONNX_MODEL", "ONNX_MODEL", "u2net_human_seg", "onnx: the rembg person model, "
            "'u2net_human_seg' or 'birefnet-portrait' (python -m models.download --only NAME)",
            backend="onnx", option="model"),
    *model_settings("maskrcnn,onnx"),
    *COMMON_SETTINGS,
    *TRIMAP_SETTINGS,
]

MATTING_SETTINGS = [
    *server_settings("MATTING", 5000),
    Setting("BACKEND", "MATTING_BACKEND", "auto",
            "matting backend: auto, fba, closed-form, guided-filter (auto = fba when "
            "models/FBA.pth exists, else closed-form)"),
    Setting("SEGMENTATION_URL", "SEGMENTATION_URL", "http://127.0.0.1:3000",
            "where the segmentation service listens"),
    Setting("SEGMENTATION_TIMEOUT", "SEGMENTATION_TIMEOUT", 120.0,
            "seconds to wait for a trimap (at most the request's deadline)", positive_float),
    Setting("SEGMENTATION_API_KEY", "SEGMENTATION_API_KEY", "",
            "the key the segmentation service asks for, when it has API_KEYS set"),
    Setting("URL_ALLOWLIST", "URL_ALLOWLIST", "", "image_url: comma-separated host names "
            "and networks (10.0.0.0/8) that may be fetched although not public"),
    Setting("URL_TIMEOUT", "URL_TIMEOUT", 10.0, "image_url: seconds to fetch a photo",
            positive_float),
    Setting("FBA_WEIGHTS", "FBA_WEIGHTS", "", "path of FBA.pth (default: MODELS_DIR/FBA.pth)",
            backend="fba", option="weights_path"),
    Setting("FBA_MAX_SIZE", "FBA_MAX_SIZE", "auto", "fba: longest side the network runs at "
            "('auto': 1280 on CPU, 2048 on CUDA; 0: no cap)", backend="fba", option="max_size"),
    Setting("FBA_HALF", "FBA_HALF", 0, "fba: half precision on CUDA (1/0)", int,
            backend="fba", option="half"),
    Setting("CLOSED_FORM_MAX_UNKNOWN", "CLOSED_FORM_MAX_UNKNOWN", 50_000,
            "closed-form: unknown pixels solved at full resolution before downscaling "
            "(0: always full resolution)", int, backend="closed-form", option="max_unknown"),
    Setting("WARMUP", "MATTING_WARMUP", 1, "matte a tiny image at start-up so the first "
            "request does not pay for JIT compilation (1/0)", int),
    *model_settings("fba"),
    *COMMON_SETTINGS,
    *JOBS_SETTINGS,
]

ALL_ENVIRONMENT = {s.env for s in SEGMENTATION_SETTINGS + MATTING_SETTINGS + WORKER_SETTINGS}
