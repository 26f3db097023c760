"""WSGI entry point for gunicorn.

Django's handler, behind the public profile's shortcut: an anonymous profile read that
this process's L1 can answer skips the handler's per-request bookkeeping, everything
else goes to the handler as it is (see apps/users/fastpath_wsgi.py).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

# Imports models: only once get_wsgi_application() has loaded the apps.
from apps.users.fastpath_wsgi import PublicProfileFastPathApplication  # noqa: E402

application = PublicProfileFastPathApplication(django_application)
