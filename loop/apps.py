from django.apps import AppConfig
from django.core import checks


class LoopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loop"
    verbose_name = "Loop store monitoring"

    def ready(self) -> None:
        from loop import embedded_worker, queue
        from loop.checks import SETTINGS_TAG, settings_check

        checks.register(settings_check, SETTINGS_TAG)
        # The queue imports no service; the embedded pool (which runs services) is handed to it here.
        queue.use_embedded_runner(embedded_worker.submit)
        queue.use_embedded_compactor(embedded_worker.schedule_compaction)
        queue.use_embedded_evaluator(embedded_worker.schedule_alert_evaluation)
        queue.use_embedded_delivery_sender(embedded_worker.send_delivery)
        queue.use_embedded_run_finisher(embedded_worker.finish_schedule_run)
        queue.use_embedded_history_updater(embedded_worker.schedule_history_update)
