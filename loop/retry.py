"""The retry policy of reports and imports and one attempt of each, for the Celery tasks and the embedded worker.

An attempt either finishes (the report is Complete, Failed, or was not ours to
run) or asks to be retried after a countdown. Phase 1 computes the report and
retries while MongoDB is unreachable, up to REPORT_TASK_MAX_RETRIES times; then
the report is marked Failed. If MongoDB is still down at that moment, phase 2
only tries to record that failure, for as many retries again, so the report
reads Failed soon after MongoDB is back. Past that, the stale-report rule
(REPORT_STALE_SECONDS) fails it on the next read.

The attempts of one delivery share one attempt token (``loop.services.jobs``): a retry
takes the job back from its own earlier attempt at once, while a second delivery of the
same job waits for that attempt's heartbeat to stop (the lost rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from loop.errors import is_transient, short_error
from loop.queue import IMPORT_TASK, REPORT_JOIN_TASK, REPORT_TASK
from loop.services import imports, reports
from loop.services.jobs import new_attempt_token

logger = logging.getLogger(__name__)


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
    """Run the attempt again after ``countdown`` s; with ``failure`` set, only to record that failure.

    ``token``: the attempt token the retry carries on (None when only a failure is to be recorded).
    """

    countdown: float
    failure: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Job:
    """A background job the policy retries: a report or an import (``label`` names it in logs)."""

    label: str
    run: Callable[[int, str], str]  # one attempt (retries before it, attempt token); raises to retry
    fail: Callable[[str], None]  # record the failure (raises while MongoDB is away)


def report_job(report_id: str) -> Job:
    return Job(
        label=f"report {report_id}",
        run=lambda retries, token: reports.run_report(report_id=report_id, retries=retries, token=token),
        fail=lambda message: reports.fail_report(report_id=report_id, message=message),
    )


def report_shard_job(report_id: str, shard: int, now_us: int) -> Job:
    """One shard of a sharded report: its permanent failure (MongoDB away past the retries) fails the report."""

    def run(retries: int, token: str) -> str:
        return reports.run_report_shard(report_id=report_id, shard=shard, now_us=now_us, retries=retries, token=token)

    def fail(message: str) -> None:
        reports.fail_report(report_id=report_id, message=f"shard {shard + 1} failed: {message}")

    return Job(label=f"report {report_id} shard {shard}", run=run, fail=fail)


def import_job(import_id: str) -> Job:
    return Job(
        label=f"import {import_id}",
        run=lambda retries, token: imports.run_import(import_id=import_id, retries=retries, token=token),
        fail=lambda message: imports.fail_import(import_id=import_id, message=message),
    )


def attempt_report(
    report_id: str, *, retries: int, failure: str | None, policy: RetryPolicy, token: str | None = None
) -> str | Retry:
    """One attempt at a report; ``retries`` attempts came before it."""
    return attempt_job(report_job(report_id), retries=retries, failure=failure, policy=policy, token=token)


def attempt_report_shard(
    report_id: str,
    shard: int,
    now_us: int,
    *,
    retries: int,
    failure: str | None,
    policy: RetryPolicy,
    token: str | None = None,
) -> str | Retry:
    """One attempt at one shard of a report (from the beginning: a shard is idempotent)."""
    job = report_shard_job(report_id, shard, now_us)
    return attempt_job(job, retries=retries, failure=failure, policy=policy, token=token)


def attempt_import(
    import_id: str, *, retries: int, failure: str | None, policy: RetryPolicy, token: str | None = None
) -> str | Retry:
    """One attempt at an import (from the beginning: the loader is idempotent)."""
    return attempt_job(import_job(import_id), retries=retries, failure=failure, policy=policy, token=token)


# One attempt of each queued job, by its Celery task name (the embedded worker runs these).
Attempt = Callable[..., "str | Retry"]
# A sharded report's join is an attempt at the report itself (it finds every shard done and joins them).
ATTEMPTS: dict[str, Attempt] = {
    REPORT_TASK: attempt_report,
    REPORT_JOIN_TASK: attempt_report,
    IMPORT_TASK: attempt_import,
}


def attempt_job(
    job: Job, *, retries: int, failure: str | None, policy: RetryPolicy, token: str | None = None
) -> str | Retry:
    """One attempt at ``job``; ``retries`` attempts came before it, ``token`` is theirs (None: a new delivery)."""
    if failure is not None:
        if record_failure(job, failure):
            return "failed"
        if retries >= 2 * policy.max_retries:
            logger.error(
                "%s: failure not recorded after %d retries; the stale rule will fail it",
                job.label,
                retries,
            )
            return "failed"
        return Retry(policy.failure_countdown(), failure)
    token = token or new_attempt_token()
    try:
        return job.run(retries, token)
    except Exception as exc:
        if not is_transient(exc):  # e.g. a server-side error before the work started
            logger.exception("%s crashed", job.label)
            return _give_up(job, short_error(exc))
        if retries >= policy.max_retries:
            message = f"MongoDB unavailable after {retries} retries: {short_error(exc)}"
            logger.error("%s: %s", job.label, message)
            if record_failure(job, message):
                return "failed"
            logger.warning("%s: recording the failure once MongoDB is back", job.label)
            return Retry(policy.failure_countdown(), message)
        countdown = policy.countdown(retries)
        logger.warning(
            "%s: MongoDB unreachable (%s); retry %d/%d in %ss",
            job.label,
            short_error(exc),
            retries + 1,
            policy.max_retries,
            countdown,
        )
        return Retry(countdown, token=token)


def record_failure(job: Job, message: str) -> bool:
    """Mark the job Failed; False when MongoDB cannot be reached to say so."""
    try:
        job.fail(message)
    except Exception as exc:
        if not is_transient(exc):
            raise
        logger.warning("%s: could not record the failure yet (%s)", job.label, short_error(exc))
        return False
    return True


def _give_up(job: Job, message: str) -> str:
    try:
        if not record_failure(job, message):
            logger.error("%s: failure not recorded; the stale rule will fail it", job.label)
    except Exception:
        logger.exception("could not mark %s Failed", job.label)
    return "failed"
