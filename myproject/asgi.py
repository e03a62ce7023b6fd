"""The ASGI application (``myproject.asgi:application``), for an ASGI server.

ASGI servers run no Django system checks, so the settings' checks run here: a bad configuration
stops the start with one line per error (``loop.checks.exit_on_settings_errors``).
"""

import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

application: ASGIHandler = get_asgi_application()

from loop.checks import exit_on_settings_errors  # noqa: E402  (needs the apps loaded above)

exit_on_settings_errors()
