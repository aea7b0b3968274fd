"""One env-driven settings module. Defaults run on SQLite with no services installed."""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import plotly

from evaluator import quant
from evaluator.allowlist import Allowed

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be a boolean (true/false), not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.getenv(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """postgres://user:pass@host:port/name, sqlite:///path (relative to BASE_DIR) or
    sqlite:////path (absolute)."""
    parts = urlparse(url)
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", 0),
        }
    if parts.scheme == "sqlite":
        # As in SQLAlchemy: the third slash ends the (empty) host, so sqlite:///db.sqlite3 is
        # relative (to the project, not the working directory: every checkout has its own)
        # and sqlite:////srv/db.sqlite3 is absolute.
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise ValueError(
                f"DATABASE_URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = Path(unquote(parts.path[1:]))
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path if path.is_absolute() else BASE_DIR / path,
            # Every transaction takes the write lock at BEGIN: a read-then-write (a rate
            # limit's check and count) cannot interleave with another's, and no upgrade of a
            # read lock dead-locks with "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    raise ValueError(f"DATABASE_URL must start with postgres:// or sqlite://, not {url!r}")


# Keys that ship in this repository's files: anyone can read them, so anyone could sign a
# session or a password-reset link with them.
PUBLISHED_SECRET_KEYS = {"change-me-in-production", "dev-only-insecure-key"}


def secret_key_problem(key: str) -> str:
    """Why key cannot sign production cookies ("" if it can): Django's own rule for a weak key
    (check --deploy's security.W009), made fatal, plus the keys published here."""
    hint = "set a random one: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    if not key:
        return f"SECRET_KEY must be set when DEBUG is off; {hint}"
    if key in PUBLISHED_SECRET_KEYS:
        return f"SECRET_KEY is the placeholder {key!r} published in this repository; {hint}"
    if len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-"):
        return f"SECRET_KEY is too weak (under 50 characters or under 5 distinct ones); {hint}"
    return ""


DEBUG = envbool("DEBUG", "true")
SECRET_KEY = os.getenv("SECRET_KEY", "")
if not DEBUG and secret_key_problem(SECRET_KEY):
    raise ValueError(secret_key_problem(SECRET_KEY))
SECRET_KEY = SECRET_KEY or "dev-only-insecure-key"
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
PROJECT_VERSION = "0.1.0"
VAR_DIR = Path(os.getenv("VAR_DIR", BASE_DIR / "var"))
# The address links printed in the terminal point to (`manage.py evaluate`). `make run`
# writes the one it serves on to var/site-url, so that a command run from another terminal
# prints the right port without the user exporting anything.
_SITE_URL_FILE = VAR_DIR / "site-url"
SITE_URL = (
    os.getenv("SITE_URL")
    or (_SITE_URL_FILE.read_text().strip() if _SITE_URL_FILE.is_file() else "")
    or "http://127.0.0.1:8000"
).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "leaderboard",
]

MIDDLEWARE = [
    # Outermost, so that its headers are on every response, static files and errors included.
    "config.middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.errors.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Scripts only from our own static files (no inline script, no eval). Plotly sets element
# styles from script, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = os.getenv(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
# The site uses no camera, microphone, location, sensors, payment or USB: no page (nor any
# script that got in somehow) may ask the browser for them.
PERMISSIONS_POLICY = os.getenv(
    "PERMISSIONS_POLICY",
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), browsing-topics=()",
)
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(os.getenv("DATABASE_URL", "sqlite:///db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# plotly.js comes from the plotly Python package, served as our own static file: no CDN.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# WhiteNoise serves static files straight from the finders (our static/ and plotly's
# package data), so gunicorn serves them without a collectstatic step on one machine.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(os.getenv("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

# Size classes of the leaderboard: (label, lower bound inclusive, upper bound exclusive) in
# parameters. The defaults reproduce the paper's groups (Tables 3 and 8); a model's class can
# be pinned per entry (the importer pins rows the paper groups differently).
SIZE_CLASSES = [
    ("125M", 0, 200_000_000),
    ("350M", 200_000_000, 600_000_000),
    ("600M", 600_000_000, 1_000_000_000),
    ("1B", 1_000_000_000, 1_200_000_000),
    ("1.5B", 1_200_000_000, 10**13),
]
if os.getenv("SIZE_CLASSES"):
    # "125M:0-200e6,350M:200e6-600e6,..."
    SIZE_CLASSES = []
    for item in envlist("SIZE_CLASSES"):
        label, _, bounds = item.partition(":")
        low, _, high = bounds.partition("-")
        SIZE_CLASSES.append((label, int(float(low)), int(float(high))))

LEADERBOARD_PAGE_SIZE = envint("LEADERBOARD_PAGE_SIZE", 100)
# The precomputed board (leaderboard/board.py): changes within BOARD_DEBOUNCE_S share one
# rebuild; a stale board of more than BOARD_SYNC_ROWS rows is served (saying "updating")
# while the worker rebuilds it, a smaller one is rebuilt by the request; a rebuild message
# not taken within BOARD_MESSAGE_LOST_S is taken as lost and sent again.
BOARD_DEBOUNCE_S = envint("BOARD_DEBOUNCE_S", 2)
BOARD_SYNC_ROWS = envint("BOARD_SYNC_ROWS", 20_000)
BOARD_MESSAGE_LOST_S = envint("BOARD_MESSAGE_LOST_S", 300)
# A rendered leaderboard page is kept this long under its ETag and URL (0: never kept).
LEADERBOARD_PAGE_CACHE_S = envint("LEADERBOARD_PAGE_CACHE_S", 300)

# Celery: Redis when REDIS_URL is set; otherwise a filesystem broker under var/ so that
# `make run` works on one machine with nothing installed.
REDIS_URL = os.getenv("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SOFT_TIME_LIMIT = envint("EVAL_SOFT_TIME_LIMIT", 6 * 3600)
# The hard limit sits ~20 % above the soft one (at least 10 s, so that the soft limit's
# handler can always record the failure).
CELERY_TASK_TIME_LIMIT = max(
    round(CELERY_TASK_SOFT_TIME_LIMIT * 1.2), CELERY_TASK_SOFT_TIME_LIMIT + 10
)
if REDIS_URL:
    # Above the hard limit, so a long task is not redelivered while it still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "false")

CELERY_TASK_ROUTES = {
    "leaderboard.tasks.evaluate_submission": {"queue": "eval"},
    "leaderboard.tasks.watchdog": {"queue": "default"},
    "leaderboard.tasks.rebuild_board": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE = {
    "watchdog": {"task": "leaderboard.tasks.watchdog", "schedule": envint("WATCHDOG_EVERY_S", 60)},
}

# Evaluation. EVAL_DATA: "hub" (the real benchmarks from the Hugging Face Hub), "sample"
# (the project's own small sample set: demos, tests, offline) or a directory of the
# datasets in the sample set's layout (air-gapped sites).
EVAL_DATA = os.getenv("EVAL_DATA", "sample" if DEBUG else "hub")
EVAL_LIMIT = envint("EVAL_LIMIT", 0) or None
EVAL_DEVICE = os.getenv("EVAL_DEVICE", "") or None  # default: CUDA when there is one
EVAL_DTYPE = os.getenv("EVAL_DTYPE", "float32")
EVAL_BATCH_SIZE = envint("EVAL_BATCH_SIZE", 0) or None
# "fast": our prefix-sharing lm-eval model type hf-trie (evaluator/engine; the same numbers
# as stock, tests/test_parity.py); "stock": lm-eval's own HFLM.
EVAL_ENGINE = os.getenv("EVAL_ENGINE", "fast")
if EVAL_ENGINE not in ("fast", "stock"):
    raise ValueError(f"EVAL_ENGINE must be fast or stock, not {EVAL_ENGINE!r}")
# The quantization ladder a submission is evaluated at unless it asks otherwise
# (evaluator/quant.py: fp32, bf16, int8, int4); fp32, the reference, is always included.
EVAL_PRECISIONS = quant.parse_precisions(os.getenv("EVAL_PRECISIONS", "fp32"))
# A running submission whose heartbeat is older than this is taken to have lost its worker.
HEARTBEAT_STALE_S = envint("HEARTBEAT_STALE_S", 300)
# A pending submission enqueued longer ago than this is enqueued again (a lost message).
REQUEUE_PENDING_AFTER_S = envint("REQUEUE_PENDING_AFTER_S", 600)
MAX_ATTEMPTS = envint("MAX_ATTEMPTS", 3)
# How long a worker keeps retrying a database write (scores, state) while the database is
# unreachable before giving up on that attempt.
DB_RETRY_S = envint("DB_RETRY_S", 60)
WORK_DIR = Path(os.getenv("WORK_DIR", VAR_DIR / "work"))
# One file per host that latency probes and evaluations lock while they work, so that no
# probe measures beside an evaluation (evaluator/hostlock.py). Every worker sharing the
# host's cores must name the same file; empty turns the lock off (a probe host of its own).
HOST_LOCK_FILE = os.getenv("HOST_LOCK_FILE", str(WORK_DIR / "host.lock"))
# A probe's decode rounds go on until the median is stable or this many seconds have passed
# (evaluator/latency_stats.py); the host is the probe's alone meanwhile, so evaluations wait.
PROBE_BUDGET_S = envint("PROBE_BUDGET_S", 20)
# The untimed export and lowering of a model to an ExecuTorch program, per precision
# (evaluator/latency.py): about 5 min for a 125M model in fp32 and 12 min in int4 here.
PROBE_EXPORT_TIMEOUT_S = envint("PROBE_EXPORT_TIMEOUT_S", 3600)
# Verified checkpoints kept under WORK_DIR/checkpoints after an evaluation, so that latency
# probes on this machine read them instead of downloading again (leaderboard/checkpoints.py);
# least recently used out first, and the housekeeping task drops those of deleted models.
# 0 keeps none.
CHECKPOINT_CACHE_BYTES = envint("CHECKPOINT_CACHE_BYTES", 20 * 1024**3)

# Untrusted checkpoints (DESIGN §6).
# host, host:port, host:*, [v6]:port or a CIDR: a bare entry allows ports 80 and 443 only.
CHECKPOINT_ALLOWED_HOSTS = envlist("CHECKPOINT_ALLOWED_HOSTS")
Allowed(CHECKPOINT_ALLOWED_HOSTS)  # a bad entry stops the start, not the first submission
CHECKPOINT_MAX_BYTES = envint("CHECKPOINT_MAX_BYTES", 8 * 1024**3)
CHECKPOINT_MAX_MEMBERS = envint("CHECKPOINT_MAX_MEMBERS", 2000)
# Parameters plus buffers a model may allocate when loaded, checked on the meta device
# before anything is allocated (4e9: 16 GiB in float32).
CHECKPOINT_MAX_PARAMS = envint("CHECKPOINT_MAX_PARAMS", 4 * 10**9)
# Each tokenizer file (tokenizer.json, vocab.json, merges.txt, tokenizer.model, ...).
CHECKPOINT_MAX_TOKENIZER_BYTES = envint("CHECKPOINT_MAX_TOKENIZER_BYTES", 64 * 1024**2)
# A download (every file of a Hub checkpoint together) ends within the deadline, and over
# any window of MIN_RATE_WINDOW_S seconds it brings at least MIN_RATE bytes per second.
CHECKPOINT_DOWNLOAD_DEADLINE_S = envint("CHECKPOINT_DOWNLOAD_DEADLINE_S", 2 * 3600)
CHECKPOINT_MIN_RATE = envint("CHECKPOINT_MIN_RATE", 64 * 1024)
CHECKPOINT_MIN_RATE_WINDOW_S = envint("CHECKPOINT_MIN_RATE_WINDOW_S", 60)
# Expanded size over compressed size, for each archive member and for the whole archive.
CHECKPOINT_MAX_RATIO = envint("CHECKPOINT_MAX_RATIO", 200)
HF_ENDPOINT = os.getenv("HF_ENDPOINT", "https://huggingface.co")
HF_TOKEN = os.getenv("HF_TOKEN", "") or None
# Submissions per client address (an IPv6 client's /64): at most N in WINDOW seconds.
SUBMISSION_RATE_LIMIT = envint("SUBMISSION_RATE_LIMIT", 5)
SUBMISSION_RATE_WINDOW_S = envint("SUBMISSION_RATE_WINDOW_S", 600)
# Admin sign-in attempts per client address (/64) in WINDOW seconds; a success clears them.
ADMIN_LOGIN_ATTEMPTS = envint("ADMIN_LOGIN_ATTEMPTS", 10)
ADMIN_LOGIN_WINDOW_S = envint("ADMIN_LOGIN_WINDOW_S", 900)
# Reverse proxies in front of the site that append to X-Forwarded-For (0: none; the
# client address is REMOTE_ADDR). docker-compose and most deployments put one proxy there.
TRUSTED_PROXIES = envint("TRUSTED_PROXIES", 0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true")
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "true")
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "true")
