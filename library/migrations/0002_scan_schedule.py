"""The standing library scan: every 30 minutes, every enabled root (change the interval
in the admin under Django Q > Scheduled tasks)."""

from django.db import migrations

NAME = "nomarr: scan the library"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME,
        defaults={
            "func": "library.tasks.scan_library",
            "kwargs": "{}",
            "schedule_type": "I",
            "minutes": 30,
            "repeats": -1,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("library", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create, remove)]
