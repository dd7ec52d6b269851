"""
WSGI config for chatroom: the HTTP views, served by gunicorn in production.

    gunicorn chatroom.wsgi

`python manage.py runserver` serves this same application in development.
WebSockets are not WSGI: they are served by chatroom.asgi under Daphne.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatroom.settings")

application = get_wsgi_application()
