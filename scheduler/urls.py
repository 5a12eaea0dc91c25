"""``/api/v1/schedules`` (mounted under ``api/v1/`` by the project's URL map), without trailing slashes
like the jobs API: ``schedules``, ``schedules/{id}``, ``schedules/{id}/pause|resume|trigger``."""

from rest_framework.routers import SimpleRouter

from scheduler.api import ScheduleViewSet

router = SimpleRouter(trailing_slash=False)
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = router.urls
