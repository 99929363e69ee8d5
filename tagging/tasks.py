"""django-q2 task functions. Each takes ids or plain values and is safe to run twice."""

from tagging import jobs


def run_job(job_id: int) -> str:
    return jobs.run(job_id)


def send_run_messages(job_ids: list[int]) -> int:
    jobs.send_run_messages(job_ids)
    return len(job_ids)


def cleanup_jobs(hours: float = 24 * 7) -> int:
    return jobs.cleanup(hours)


def reset_stuck_jobs() -> int:
    """The standing sweep: stuck jobs back to the queue, and a stalled queue sent again."""
    return jobs.reset_stuck() + jobs.dispatch_stalled()
