# App image: the Django API (gunicorn) by default; the same image runs the Celery worker and
# the one-shot loader (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json

WORKDIR /app

# Dependencies first so code edits do not invalidate the pip layer.
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 10001 --user-group app \
    && mkdir -p /app/var/secrets \
    && chown -R app:app /app
COPY --chown=app:app . .

USER app
EXPOSE 8000
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
# gunicorn.conf.py: threaded workers on 0.0.0.0:8000 (WEB_CONCURRENCY, WEB_THREADS), limits, timeouts.
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
