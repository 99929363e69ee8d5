"""Nomarr's standing schedules: a daily cleanup of old jobs and a regular stuck-job sweep."""

from django.db import migrations

SCHEDULES = [
    # (name, func, kwargs, schedule type, minutes)
    ("nomarr: clean up finished jobs", "tagging.tasks.cleanup_jobs", "{}", "D", None),
    ("nomarr: reset stuck jobs", "tagging.tasks.reset_stuck_jobs", "{}", "I", 5),
]


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, kwargs, kind, minutes in SCHEDULES:
        Schedule.objects.get_or_create(
            name=name,
            defaults={"func": func, "kwargs": kwargs, "schedule_type": kind, "minutes": minutes, "repeats": -1},
        )


def remove(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tagging", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create, remove)]
