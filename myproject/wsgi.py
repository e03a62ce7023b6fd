"""The WSGI application gunicorn serves (``myproject.wsgi:application``).

Gunicorn runs no Django system checks, so the settings' checks run here: a bad configuration
stops the start with one line per error (``loop.checks.exit_on_settings_errors``).
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

from loop import tracing  # noqa: E402

# Before the middleware is built: tracing's Django middleware goes first (OTEL_EXPORTER_OTLP_ENDPOINT; off: nothing).
traced = tracing.setup("loop-web")
application: WSGIHandler = get_wsgi_application()

from loop.checks import exit_on_settings_errors  # noqa: E402  (needs the apps loaded above)

exit_on_settings_errors()
if traced:
    import logging

    logging.getLogger("loop.tracing").info("tracing on: spans to %s", tracing.traces_url(tracing.endpoint()))
