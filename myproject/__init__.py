# The Celery app lives in myproject.celery (`celery -A myproject` finds it there) and is
# imported only where tasks are defined or sent (loop.tasks), so Django processes that
# never touch a broker (the offline generate_report command) do not import Celery.
