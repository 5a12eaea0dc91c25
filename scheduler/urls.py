"""``/api/v1/schedules`` (included under ``api/v1/`` by the project's URL map); with or without a trailing slash."""

from rest_framework.routers import SimpleRouter

from scheduler.api import ScheduleViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = router.urls
