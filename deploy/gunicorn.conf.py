"""
gunicorn settings for chatroom.wsgi.

Each value can be overridden from the environment. WEB_CONCURRENCY and
FORWARDED_ALLOW_IPS are also the names gunicorn itself reads.
"""

import os
from pathlib import Path


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = [os.environ.get("GUNICORN_BIND") or "0.0.0.0:8000"]
# Sync workers: Django's ORM is synchronous and HTTP requests here are short.
# The usual (2 x cores) + 1, at most 12; more threads per worker switch to
# gthread.
# Cores this process may run on (a container sees the host's count otherwise
# too), capped: every worker holds a database connection.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
workers = _int("WEB_CONCURRENCY", min(2 * _cores + 1, 12))
threads = _int("GUNICORN_THREADS", 1)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak never becomes an outage, but
# rarely: a new worker imports Django again, and with a small limit a busy
# worker spends much of its time restarting.
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 2000)

# Only nginx reaches gunicorn; trust its X-Forwarded-* headers from these peers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL") or "info"
# The client address as nginx saw it, and the time taken in milliseconds.
access_log_format = '%({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'

proc_name = "chatroom-web"
# gunicorn 25+ opens a control socket under $HOME; nothing here uses it, and
# the app user's home is read-only. Reload and stop with signals (HUP, TERM).
control_socket_disable = True
# Worker heartbeats in memory, not on a container's overlay filesystem.
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"
