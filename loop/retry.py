"""The one retry policy for reports, shared by the Celery task and the embedded worker.

An attempt either finishes (the report is Complete, Failed, or was not ours to
run) or asks to be retried after a countdown. Phase 1 computes the report and
retries while MongoDB is unreachable, up to REPORT_TASK_MAX_RETRIES times; then
the report is marked Failed. If MongoDB is still down at that moment, phase 2
only tries to record that failure, for as many retries again, so the report
reads Failed soon after MongoDB is back. Past that, the stale-report rule
(REPORT_STALE_SECONDS) fails it on the next read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from pymongo.errors import ConnectionFailure, PyMongoError

from loop.services import reports

logger = logging.getLogger(__name__)

# Server errors the driver itself labels as safe to retry (e.g. a primary stepping down).
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError", "ResumableChangeStreamError")


def is_transient(exc: BaseException) -> bool:
    """True for MongoDB errors that a later attempt can get past (the server is away)."""
    if isinstance(exc, ConnectionFailure):
        return True
    return isinstance(exc, PyMongoError) and any(exc.has_error_label(label) for label in TRANSIENT_LABELS)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    backoff_s: float
    backoff_max_s: float
    visibility_timeout_s: float

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            max_retries=settings.REPORT_TASK_MAX_RETRIES,
            backoff_s=max(0.0, float(settings.REPORT_TASK_RETRY_BACKOFF)),
            backoff_max_s=float(settings.REPORT_TASK_RETRY_BACKOFF_MAX),
            visibility_timeout_s=float(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)),
        )

    def countdown(self, retries: int) -> float:
        """Seconds before retry number ``retries + 1``: exponential, capped.

        The cap also stays below half the broker's visibility timeout: Redis hands a
        retry that waits longer than that to a second worker while the first still holds it.
        """
        return min(self.backoff_s * (2**retries), self.backoff_max_s, max(1.0, self.visibility_timeout_s / 2))

    def window(self) -> float:
        """Total backoff (without the time each failed attempt takes) before a report is failed."""
        return sum(self.countdown(n) for n in range(self.max_retries))

    def failure_countdown(self) -> float:
        # Phase 2 (recording a failure) waits as long as the last retry did.
        return self.countdown(max(self.max_retries - 1, 0))


@dataclass(frozen=True)
class Retry:
    """Run the attempt again after ``countdown`` s; with ``failure`` set, only to record that failure."""

    countdown: float
    failure: str | None = None


def attempt_report(report_id: str, *, retries: int, failure: str | None, policy: RetryPolicy) -> str | Retry:
    """One attempt at a report; ``retries`` attempts came before it."""
    if failure is not None:
        if record_failure(report_id, failure):
            return "failed"
        if retries >= 2 * policy.max_retries:
            logger.error(
                "report %s: failure not recorded after %d retries; the stale-report rule will fail it",
                report_id,
                retries,
            )
            return "failed"
        return Retry(policy.failure_countdown(), failure)
    try:
        return reports.compute_report(report_id=report_id, retries=retries)
    except Exception as exc:
        if not is_transient(exc):  # e.g. a server-side error before the work started
            logger.exception("report %s crashed", report_id)
            return _give_up(report_id, reports.short_error(exc))
        if retries >= policy.max_retries:
            message = f"MongoDB unavailable after {retries} retries: {reports.short_error(exc)}"
            logger.error("report %s: %s", report_id, message)
            if record_failure(report_id, message):
                return "failed"
            logger.warning("report %s: recording the failure once MongoDB is back", report_id)
            return Retry(policy.failure_countdown(), message)
        countdown = policy.countdown(retries)
        logger.warning(
            "report %s: MongoDB unreachable (%s); retry %d/%d in %ss",
            report_id,
            reports.short_error(exc),
            retries + 1,
            policy.max_retries,
            countdown,
        )
        return Retry(countdown)


def record_failure(report_id: str, message: str) -> bool:
    """Mark the report Failed; False when MongoDB cannot be reached to say so."""
    try:
        reports.fail_report(report_id=report_id, message=message)
    except Exception as exc:
        if not is_transient(exc):
            raise
        logger.warning("report %s: could not record the failure yet (%s)", report_id, reports.short_error(exc))
        return False
    return True


def _give_up(report_id: str, message: str) -> str:
    try:
        if not record_failure(report_id, message):
            logger.error("report %s: failure not recorded; the stale-report rule will fail it", report_id)
    except Exception:
        logger.exception("could not mark report %s Failed", report_id)
    return "failed"
