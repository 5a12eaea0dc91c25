from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every installed app's ``processors`` module registers its job types at start-up.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("processors")
