from django.contrib import admin

from teach.models import Example, TaughtTag


@admin.register(TaughtTag)
class TaughtTagAdmin(admin.ModelAdmin):
    list_display = ("name", "positives", "negatives", "cv_accuracy", "trained_at", "applied_at")
    readonly_fields = ("weights",)


@admin.register(Example)
class ExampleAdmin(admin.ModelAdmin):
    list_display = ("tag", "file", "positive", "source")
    list_filter = ("tag", "positive", "source")
    raw_id_fields = ("file",)
