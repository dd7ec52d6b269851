"""
Django settings for chatroom.

Every setting that differs between machines comes from the environment (see
.env.example for the full list). Any variable NAME may instead be read from a
file whose path is in NAME_FILE (Docker and compose secrets, systemd
credentials). With no variable set the project runs as a development site that
needs nothing installed: debug on, SQLite, the in-memory channel layer,
localhost only.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# NAME_FILE, when set, names the file that holds NAME.
env = environ.FileAwareEnv()

# --- Core --------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# A file's final newline is not part of the secret.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="").strip()
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "django-insecure-development-only-never-use-this-key-in-production"
    else:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off. Generate one "
            "with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    "chatroom",
    "chat",
]

MIDDLEWARE = [
    # First, so load balancers get an answer before host checks and redirects.
    "chatroom.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatroom.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The site's own templates: base.html, error pages, registration/.
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

# --- Servers: WSGI (runserver, gunicorn) and ASGI (Daphne) -------------------

WSGI_APPLICATION = "chatroom.wsgi.application"
ASGI_APPLICATION = "chatroom.asgi.application"

# --- Database ----------------------------------------------------------------

DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    ),
}
# The password may also come apart from the URL (DATABASE_PASSWORD_FILE).
if database_password := env.str("DATABASE_PASSWORD", default="").strip():
    DATABASES["default"]["PASSWORD"] = database_password
# 0 closes the connection after each request or consumer call; gunicorn's
# long-lived sync workers may keep theirs (DB_CONN_MAX_AGE=60), Daphne should not,
# since every thread it runs sync code in would hold one open.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A connection pool (psycopg_pool) of at most DB_POOL_MAX_SIZE connections per
# process, for Daphne (deploy/start-ws.sh): each consumer call borrows one for a
# moment instead of opening its own, which would cost more than the query.
# Pooled connections are never persistent, so DB_CONN_MAX_AGE does not apply.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=0)
if DB_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The pool already drops connections that broke while in use; a health
    # check on every checkout would add a round trip to every consumer call.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        # Seconds a call waits for a free connection before failing.
        "timeout": env.float("DB_POOL_TIMEOUT", default=10),
        # psycopg_pool doubles the wait between reconnection attempts for as
        # long as this lasts; a short bound keeps it retrying about every few
        # seconds while the database is away, so service resumes soon after.
        "reconnect_timeout": 5,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Development only: take the write lock when a transaction starts (writers
    # queue instead of failing with "database is locked"), and let readers go on
    # while one writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer -----------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
# The password may also come apart from the URL (REDIS_PASSWORD_FILE).
if REDIS_URL and (redis_password := env.str("REDIS_PASSWORD", default="").strip()):
    _url = urlsplit(REDIS_URL)
    _user = quote(_url.username or "", safe="")
    _host = _url.netloc.rpartition("@")[2]
    _netloc = f"{_user}:{quote(redis_password, safe='')}@{_host}"
    REDIS_URL = urlunsplit(_url._replace(netloc=_netloc))
# Prefix of every Redis channel and key the project uses, so that several sites
# (or test runs) can share one Redis.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="chatroom")

if REDIS_URL:
    # The pub/sub layer publishes a group message once per group, and each Daphne
    # process fans it out to its own sockets. Its queues are in-process, so it
    # never drops a message at a capacity limit.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL}],
                "prefix": REDIS_PREFIX,
            },
        },
    }
else:
    # One process only: fine for `make run` and tests, useless across processes.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Authentication ----------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:lobby"
LOGOUT_REDIRECT_URL = "chat:lobby"

# --- Security ----------------------------------------------------------------

CSRF_FAILURE_VIEW = "chatroom.views.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Production defaults: on whenever debug is off, each overridable.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int(
    "DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 60 * 60 * 24 * 365
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
# Behind a TLS-terminating proxy (nginx) that sets X-Forwarded-Proto itself.
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The policies pages run under: scripts and styles from this site's own files
# only (no inline script, no eval), sockets and requests to this site only, no
# plugins, no framing, forms posting here only; and no powerful browser feature.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer", "camera", "display-capture", "geolocation", "gyroscope",
        "magnetometer", "microphone", "midi", "payment", "usb",
    )
}  # fmt: skip
# System check ids to silence (e.g. chatroom.W003 when Django receives HTTPS
# itself).
SILENCED_SYSTEM_CHECKS = env.list("DJANGO_SILENCED_SYSTEM_CHECKS", default=[])

# --- Login throttling (django-axes) -------------------------------------------

# Failed logins are counted per username and client address, in the database,
# so every server process sees them. A login past the limit, right password or
# not, gets the lockout page (429) until the cool-off has passed; a success
# clears the count. The site's login and the admin's alike.
AXES_FAILURE_LIMIT = env.int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(
    minutes=env.int("DJANGO_LOGIN_COOLOFF_MINUTES", default=15)
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Failures are what throttling needs; a row per successful login would grow
# without bound.
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client's address: REMOTE_ADDR, or behind a proxy that sets a header to it
# itself (nginx sets X-Real-IP), that header.
CLIENT_IP_HEADER = env.str("DJANGO_CLIENT_IP_HEADER", default="")
AXES_IPWARE_META_PRECEDENCE_ORDER = [
    *(
        ["HTTP_" + CLIENT_IP_HEADER.upper().replace("-", "_")]
        if CLIENT_IP_HEADER
        else []
    ),
    "REMOTE_ADDR",
]

# --- Internationalization ----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Logging -----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Chat --------------------------------------------------------------------

# Longest message body, in characters.
CHAT_MESSAGE_MAX_LENGTH = env.int("CHAT_MESSAGE_MAX_LENGTH", default=2000)
# Longest WebSocket text frame the consumer parses; Daphne's own
# --websocket_max_message_size closes the socket on anything far larger.
CHAT_MAX_FRAME_LENGTH = env.int("CHAT_MAX_FRAME_LENGTH", default=16_384)
# History pages over HTTP, and how many messages the room page renders.
CHAT_HISTORY_PAGE_SIZE = env.int("CHAT_HISTORY_PAGE_SIZE", default=50)
CHAT_HISTORY_MAX_LIMIT = env.int("CHAT_HISTORY_MAX_LIMIT", default=200)
# Seconds each server process keeps a history page it served over HTTP. A page
# is cached under the room's last message, so a new message shows at once; a
# deleted message or a renamed author may show on a cached page this long. 0:
# no cache.
CHAT_HISTORY_CACHE_SECONDS = env.int("CHAT_HISTORY_CACHE_SECONDS", default=10)
# Most messages one `resume` replays; the client asks again for the rest.
CHAT_RESUME_MAX_MESSAGES = env.int("CHAT_RESUME_MAX_MESSAGES", default=1000)
# Seconds a presence entry lives without a refresh from its server process.
CHAT_PRESENCE_TTL = env.int("CHAT_PRESENCE_TTL", default=60)
# Users per roster page: a socket gets the first page when it opens and asks
# for the others (a room of thousands sends nobody thousands of names at once).
CHAT_PRESENCE_PAGE_SIZE = env.int("CHAT_PRESENCE_PAGE_SIZE", default=100)
# Most messages one user may send, over all their sockets and HTTP posts, in a
# moving window ("20 per 10 seconds"; see the `limits` package's notation).
# Counted in Redis with REDIS_URL, so the limit holds across server processes.
# Empty: no limit.
CHAT_MESSAGE_RATE_LIMIT = env.str(
    "CHAT_MESSAGE_RATE_LIMIT", default="20 per 10 seconds"
)
# Most `resume` frames one socket may send in a moving window: a page resumes
# once per reconnect, and again while the server says there is more.
CHAT_RESUME_RATE_LIMIT = env.str("CHAT_RESUME_RATE_LIMIT", default="10 per 10 seconds")
# Most roster pages one socket may ask for in a moving window.
CHAT_PRESENCE_RATE_LIMIT = env.str(
    "CHAT_PRESENCE_RATE_LIMIT", default="20 per 10 seconds"
)
# Most sockets one user may have open at once, over every server process
# (counted in Redis with REDIS_URL); one more is refused (close 4429). 0: no
# limit.
CHAT_MAX_SOCKETS_PER_USER = env.int("CHAT_MAX_SOCKETS_PER_USER", default=20)
# Fewest seconds between two typing notices forwarded from one socket, and from
# one user in one room, whichever socket they come from.
CHAT_TYPING_INTERVAL = env.float("CHAT_TYPING_INTERVAL", default=2.0)
# How a message is stored on PostgreSQL: "statement", one round trip, or "orm",
# Django's transaction of five (chat/managers.py; other databases: the ORM's).
CHAT_MESSAGE_WRITE = env.str("CHAT_MESSAGE_WRITE", default="statement")
# Most messages a Daphne process stores in one transaction: those its sockets
# sent while the write before them was under way (chat/writes.py). 1: each alone.
CHAT_MESSAGE_BATCH_SIZE = env.int("CHAT_MESSAGE_BATCH_SIZE", default=100)
# Seconds between two checks of every open socket's access (session, password,
# active account, room membership) by each server process: the longest a change
# that sends no signal (a bulk update, SQL) leaves a socket open. Changes made
# through Django's models close sockets at once (chat/access.py).
CHAT_ACCESS_RECHECK_INTERVAL = env.float("CHAT_ACCESS_RECHECK_INTERVAL", default=30.0)
# How often the page polls for new messages when it has no WebSocket.
CHAT_POLL_INTERVAL_MS = env.int("CHAT_POLL_INTERVAL_MS", default=2000)

# --- Cache -------------------------------------------------------------------

# In each process's memory: nothing cached here must outlive a restart or be
# shared, and the API keeps serving when Redis is away.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "chat_history": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "chat-history",
        "TIMEOUT": CHAT_HISTORY_CACHE_SECONDS,
        # A page is at most CHAT_HISTORY_MAX_LIMIT messages.
        "OPTIONS": {"MAX_ENTRIES": 200},
    },
}
