"""Django's own WSGI handler, ``get_wsgi_application()``, for the bench's comparisons.

The settings come from ``DJANGO_SETTINGS_MODULE`` (highscale's, or the textbook
peer's), so both sides of a comparison are served by the same plain handler.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
