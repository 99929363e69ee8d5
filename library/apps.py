from django.apps import AppConfig


class LibraryConfig(AppConfig):
    """The library builds on tagging; tagging never imports it. What tagging needs
    from the library is handed over here, once the apps are loaded (models cannot be
    imported before, hence the imports in ready()):

    * the library roots, to tagging.boundary (every path check asks them);
    * a receiver for tagging.signals.file_tagged, which refreshes the tagged
      file's rows at once (library/rows.py);
    * a receiver for tagging.signals.workers_started, which hands the scans that
      wait for a worker over again (library/tasks.py), and the retier run that waits
      for one (library/retier.py);
    * a receiver for tagging.signals.calibration_wanted, which gives the pipeline the
      library's calibration (library/calibration.py).
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "library"

    def ready(self) -> None:
        from library.calibration import bounds_for_tiers
        from library.retier import dispatch_waiting
        from library.roots import library_roots
        from library.rows import refresh_on_tag
        from library.tasks import dispatch_waiting_scans
        from tagging.boundary import register_roots
        from tagging.signals import calibration_wanted, file_tagged, workers_started

        register_roots(library_roots)
        file_tagged.connect(refresh_on_tag, dispatch_uid="nomarr-library-refresh")
        workers_started.connect(dispatch_waiting_scans, dispatch_uid="nomarr-library-scans")
        workers_started.connect(dispatch_waiting, dispatch_uid="nomarr-library-retier")
        calibration_wanted.connect(bounds_for_tiers, dispatch_uid="nomarr-library-calibration")
