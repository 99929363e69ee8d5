"""django-q2 task functions. Each takes ids or plain values and is safe to run twice."""

from tagging import jobs


def run_job(job_id: int) -> str:
    return jobs.run(job_id)


def cleanup_jobs(hours: float = 24 * 7) -> int:
    return jobs.cleanup(hours)


def reset_stuck_jobs() -> int:
    return jobs.reset_stuck()
