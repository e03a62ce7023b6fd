from django.apps import AppConfig


class LoopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loop"
    verbose_name = "Loop store monitoring"

    def ready(self) -> None:
        # The queue imports no service; the embedded pool (which runs services) is handed to it here.
        from loop import embedded_worker, queue

        queue.use_embedded_runner(embedded_worker.submit)
