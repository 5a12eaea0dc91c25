"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright, against a real
``runserver`` and a real worker pool, both subprocesses on the test database and Redis prefix.

It logs in, watches a queue's counts change as the workers finish its jobs (without the page
reloading), sees a failure appear, retries a failed job and sees it run, pauses a queue, finds a
scheduled job by name, opens its page and cancels it. Screenshots of the dashboard (wide and phone)
go to test-artifacts/, and the wide one also to docs/dashboard.png.

Every page is loaded through :func:`guarded`: a request to any host but the test server is refused
and fails the test, and so does a Content-Security-Policy violation. axe-core (from PyPI's
``axe-playwright-python``) checks every dashboard page, the admin's job list and the API docs for
serious and critical accessibility violations, and at 1280 px nothing may be cut off.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.utils import timezone

from jobs import client, states
from jobs.broker import Broker
from jobs.models import Job, JobAttempt, Outcome, Status
from jobs.validation import JobSpec
from tests.helpers import run_attempt, wait_for
from tests.procs import ROOT, free_port, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
PASSWORD = "correct-horse-battery-staple"
QUEUE = "images"
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture
def server(broker: Broker, tmp_path: Path) -> Iterator[str]:
    """``manage.py runserver`` on a free port, serving the project's static files (--insecure)."""
    port = free_port()
    args = ["runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"]
    with running(args, tmp_path, name="server") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{base}/admin/login/"), 60, 0.1, message=f"runserver to answer\n{proc.log()[-2000:]}")
        yield base
    wait_for(lambda: not other_sessions(), 10, 0.05, message="the server's database sessions to close")


def other_sessions() -> int:
    """Sessions of other processes on the test database (killed servers' linger for a moment)."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running on this thread. The test's ORM calls are still
    # synchronous, but Django sees the loop: it must allow them, and it keeps their connection apart
    # (context-local), so that connection is closed here, while the loop still runs.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


GUARDS: dict[int, Guard] = {}  # by id() of the browser context it watches


class Guard:
    """What a browser context did that no page of ZipLine may do: reach another host, break its CSP."""

    def __init__(self, base: str) -> None:
        self.origin = base.rstrip("/")
        self.outside: list[str] = []
        self.csp: list[str] = []
        self.auditing = False  # axe-core's own probes set inline styles: not the page's doing

    def route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or url == self.origin or url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def console(self, message: Any) -> None:
        if "Content Security Policy" in message.text and not self.auditing:
            self.csp.append(f"{message.page.url if message.page else '?'}: {message.text}")

    def check(self) -> None:
        assert not self.outside, f"pages requested other hosts: {self.outside}"
        assert not self.csp, f"Content-Security-Policy violations: {self.csp}"


@pytest.fixture
def guarded(chromium: Any, server: str) -> Iterator[Any]:
    """``guarded(**context_options)``: a new browser context whose every request and console line is
    watched (see :class:`Guard`); the test fails at its end if any page broke the rules."""
    guards: list[Guard] = []

    def open_context(**options: Any) -> Any:
        guard = Guard(server)
        context = chromium.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", guard.route)
        context.on("console", guard.console)
        guards.append(guard)
        GUARDS[id(context)] = guard
        return context

    yield open_context
    GUARDS.clear()
    for guard in guards:
        guard.check()


def failed_earlier(name: str) -> Job:
    """A job that failed before this test started: one attempt, recorded through the state machine."""
    job = client.enqueue("test_noop", {"image": "cat.png", "width": 640}, queue=QUEUE, name=name)
    [claimed] = states.claim([str(job.pk)], "old-host:1:abcdef")
    now = timezone.now()
    error = "ConnectionError: storage service unavailable"
    states.record(
        [
            states.AttemptResult(
                claimed,
                Outcome.FAILED,
                now,
                now,
                0.42,
                error=error,
                traceback=f'Traceback (most recent call last):\n  File "resize.py", line 12, in run\n{error}',
                permanent=True,
            )
        ]
    )
    return Job.objects.get(pk=job.pk)


def seed_history(broker: Broker, queue: str, base: int) -> None:
    """Per-minute counters for the hour before now, so the screenshot's charts have a past."""
    minute = int(time.time() // 60)
    tag = broker.keys(queue).tag
    for back in range(1, 60):
        wave = base + int(base * 0.6 * ((back * 7919) % 13) / 13) + (back % 5) * 3
        broker.client.set(f"{tag}:completed:{minute - back}", wave, ex=7200)
        if back % 9 == 0:
            broker.client.set(f"{tag}:failed:{minute - back}", 1 + back % 4, ex=7200)


def log_in(page: Any, base: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/dashboard/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/dashboard/"))
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{base}/dashboard/")


def shoot(page: Any, name: str) -> Path:
    """A full-page screenshot under test-artifacts/, without the passing notifications."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.evaluate("document.querySelectorAll('.toast').forEach((toast) => toast.remove())")
    page.screenshot(path=str(path), full_page=True)
    return path


def test_operator_flows_in_a_real_browser(broker: Broker, tmp_path: Path, server: str, guarded: Any) -> None:
    from playwright.sync_api import expect

    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    work = [client.enqueue("test_sleep", {"seconds": 0.3}, queue=QUEUE, name=f"thumbnail-{n}") for n in range(8)]
    earlier = failed_earlier("thumbnail-cat")
    broker.remove(QUEUE, [str(earlier.pk)])
    digest = client.enqueue("test_noop", {"list": "weekly"}, queue="emails", name="weekly-digest", delay="1h")
    for n in range(3):
        client.enqueue("test_noop", {"to": f"user{n}@example.com"}, queue="emails", name=f"welcome-{n}")
    client.enqueue("test_noop", {}, queue="reports", name="monthly-report", delay="6h")
    seed_history(broker, QUEUE, 24)
    seed_history(broker, "emails", 6)

    context = guarded(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, server)

    card = page.locator(f'[data-testid="queue-{QUEUE}"]')
    pending = card.locator('[data-count="pending"]')
    expect(pending).to_have_text("8")
    expect(card.locator('[data-count="failed"]')).to_have_text("1")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    workers = ["runworkers", "--processes", "2", "--concurrency", "4", "--queues", QUEUE]
    with running(workers, tmp_path, name="workers") as pool:
        # The counts change as the jobs complete, and the page never reloads to show it.
        expect(pending).to_have_text("0", timeout=TIMEOUT_MS)
        expect(card.locator('[data-count="running"]')).to_have_text("0")
        expect(page.locator('[data-testid="worker"]')).to_have_count(2)
        assert page.evaluate("window.__sameDocument") is True
        wait_for(lambda: all(j.status == Status.COMPLETED for j in Job.objects.filter(pk__in=[w.pk for w in work])), 30)

        # A job that fails now appears among the recent failures by itself.
        broken = client.enqueue(
            "test_fail", {"message": "bad image header"}, queue=QUEUE, name="thumbnail-broken", retry={"max_retries": 0}
        )
        broken_row = page.locator(f'[data-testid="failure-{broken.pk}"]')
        expect(broken_row).to_contain_text("RuntimeError: bad image header")

        # Retry the job that failed earlier: it leaves the failures, runs and completes.
        row = page.locator(f'[data-testid="failure-{earlier.pk}"]')
        row.get_by_role("button", name="Retry").click()
        expect(page.locator("[data-toasts]")).to_contain_text("is queued to run again")
        expect(row).to_have_count(0)
        wait_for(
            lambda: Job.objects.get(pk=earlier.pk).status == Status.COMPLETED,
            30,
            message=f"the retried job to complete\n{pool.log()[-2000:]}",
        )
        expect(card.locator('[data-count="failed"]')).to_have_text("1")  # only the new failure

        # Pause a queue from its card.
        reports = page.locator('[data-testid="queue-reports"]')
        reports.get_by_role("button", name="Pause").click()
        expect(reports.locator('[data-testid="queue-state"]')).to_have_text("Paused")
        expect(reports.get_by_role("button", name="Resume")).to_be_visible()
        assert_accessible(page)  # with live workers, a failure and a paused queue

        shot = shoot(page, "dashboard-wide.png")
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)

        phone = guarded(
            storage_state=context.storage_state(),
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        phone_page = phone.new_page()
        phone_page.goto(f"{server}/dashboard/")
        expect(phone_page.locator(f'[data-testid="queue-{QUEUE}"]')).to_be_visible()
        expect(phone_page.locator('[data-testid="worker"]')).to_have_count(2)
        assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
        shoot(phone_page, "dashboard-phone.png")
        phone.close()

        # Find the scheduled job by name, open its page and cancel it.
        page.fill('[data-testid="search-input"]', "weekly-digest")
        page.press('[data-testid="search-input"]', "Enter")
        expect(page).to_have_url(re.compile(r"/dashboard/jobs/\?q=weekly-digest"))
        expect(page.locator('[data-testid="results"] tbody tr')).to_have_count(1)
        shoot(page, "jobs-search.png")
        page.get_by_role("link", name=str(digest.pk)[:8]).click()
        expect(page).to_have_url(f"{server}/dashboard/jobs/{digest.pk}/")
        status = page.locator('[data-testid="job-status"]')
        expect(status).to_have_text("scheduled")
        expect(page.locator('[data-testid="job-payload"]')).to_contain_text('"list": "weekly"')
        page.get_by_role("button", name="Cancel").click()
        expect(status).to_have_text("cancelled")
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        assert Job.objects.get(pk=digest.pk).status == Status.CANCELLED
        assert str(digest.pk) not in broker.ids("emails")["delayed"]

        # The retried job's page: both attempts, the old failure with its error, and the result.
        page.goto(f"{server}/dashboard/jobs/{earlier.pk}/")
        expect(page.locator('[data-testid="job-status"]')).to_have_text("completed")
        attempts = page.locator('[data-testid="attempts"] tbody tr')
        expect(attempts).to_have_count(2)
        expect(attempts.nth(0)).to_contain_text("storage service unavailable")
        expect(attempts.nth(1)).to_contain_text("completed")
        expect(page.locator('[data-testid="job-result"]')).to_contain_text('"image": "cat.png"')
        shoot(page, "job-page.png")
        assert JobAttempt.objects.filter(job_id=earlier.pk).count() == 2
    context.close()


# -- every page: accessible, within 1280 px, from ZipLine alone ---------------------------------------------

WIDE = 1280
#: Text that must show whole at 1280 px: the tiles, the queue cards' counts and names.
UNCUT = ".stat-label, .stat-value, .count dt, .count dd, .card-head h3, .card-foot"


#: The contrast of each element's text on the first opaque background behind it (WCAG's formula).
CONTRAST_JS = """(selectors) => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const backdrop = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  return selectors.flatMap((selector) => Array.from(document.querySelectorAll(selector))).flatMap((el) => {
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(backdrop(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    return ratio < needed ? [`${el.className || el.tagName} "${el.textContent.trim()}" ${ratio.toFixed(2)}:1`] : [];
  });
}"""


def assert_accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation, the page has an h1, and nothing sticks out."""
    from axe_playwright_python.sync_playwright import Axe

    guard = GUARDS[id(page.context)]
    page.wait_for_load_state("load")
    page.evaluate("() => new Promise((done) => setTimeout(done, 0))")  # the page's console lines first
    guard.auditing = True
    try:
        results = Axe().run(page, options={"resultTypes": ["violations", "incomplete"]}).response
        page.evaluate("() => new Promise((done) => setTimeout(done, 0))")  # and axe's console lines
    finally:
        guard.auditing = False
    violations = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    described = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']][:5]}" for v in violations
    ]
    assert not described, f"{page.url}:\n" + "\n".join(described)
    # axe leaves text of one character (a count of 0) undecided: measure those here.
    undecided = [node["target"][0] for v in results["incomplete"] if v["id"] == "color-contrast" for node in v["nodes"]]
    low = page.evaluate(CONTRAST_JS, undecided)
    assert not low, f"{page.url}: text below 4.5:1 (3:1 when large): {low}"
    assert page.locator("h1").count() >= 1, f"no h1 on {page.url}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide"


def assert_nothing_cut_off(page: Any) -> None:
    cut = page.evaluate(
        """(selector) => Array.from(document.querySelectorAll(selector))
            .filter((el) => el.scrollWidth > el.clientWidth + 1)
            .map((el) => el.className + ': ' + el.textContent.trim())""",
        UNCUT,
    )
    assert not cut, f"cut off at {page.viewport_size['width']}px on {page.url}: {cut}"


def busy_system(broker: Broker) -> tuple[Job, Job]:
    """Queues with four-digit counts and zeros, long names, a busy hour, a failure and a retry."""
    client.enqueue_many([JobSpec("test_noop", {"n": n}, queue="emails") for n in range(1200)])
    client.enqueue_many([JobSpec("test_noop", {}, queue="image-thumbnails-2x", delay="2h") for _ in range(30)])
    client.enqueue("test_noop", {}, queue="reports", name="monthly-report", delay="6h")
    dead = failed_earlier("thumbnail-for-customer-upload-2026-12-04-cat-in-a-box")
    retrying = client.enqueue(
        "test_noop", {}, queue=QUEUE, name="thumbnail-dog", retry={"max_retries": 3, "initial_delay": "1h"}
    )
    retrying = run_attempt(retrying, error="TimeoutError: storage slow", permanent=False)
    for queue, base in (("emails", 900), (QUEUE, 240)):
        seed_history(broker, queue, base)
    return dead, retrying


def test_every_page_is_accessible_fits_1280_px_and_loads_nothing_from_elsewhere(
    broker: Broker, server: str, guarded: Any
) -> None:
    from playwright.sync_api import expect

    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    dead, retrying = busy_system(broker)
    page = guarded(viewport={"width": WIDE, "height": 900}).new_page()
    page.goto(f"{server}/admin/login/?next=/dashboard/")
    assert_accessible(page)
    shoot(page, "login-1280.png")
    log_in(page, server)

    assert_accessible(page)
    assert_nothing_cut_off(page)
    for path in (
        "/dashboard/jobs/?status=pending",
        f"/dashboard/jobs/{dead.pk}/",
        f"/dashboard/jobs/{retrying.pk}/",
        "/dashboard/retries/",
        "/dashboard/scheduled/",
        "/dashboard/dead/",
        "/admin/jobs/job/",
        f"/admin/jobs/job/{dead.pk}/change/",
    ):
        page.goto(server + path)
        assert_accessible(page)
    # The admin's job list fits: its last column ends inside the window.
    page.goto(server + "/admin/jobs/job/")
    right = page.evaluate("document.querySelector('#result_list').getBoundingClientRect().right")
    assert right <= WIDE, f"the admin's job table ends at {right}px"
    shoot(page, "admin-jobs-1280.png")
    results = page.evaluate(
        "[document.querySelector('.results').scrollWidth, document.querySelector('.results').clientWidth]"
    )
    assert results[0] <= results[1], f"the admin's job table scrolls sideways: {results}"

    page.goto(server + "/dashboard/dead/")
    page.get_by_role("button", name="Retry all…").click()
    expect(page.locator('[data-testid="confirm-text"]')).to_have_text("Retry 1 dead jobs of every queue.")
    assert_accessible(page)

    # The API docs render from ZipLine's own files under their policy (the guard fails on anything else).
    page.goto(server + "/api/docs/")
    expect(page.locator(".opblock").first).to_be_visible()
    page.goto(server + "/api/redoc/")
    expect(page.get_by_role("heading", name=re.compile("ZipLine API"))).to_be_visible()
    expect(page.get_by_text("API docs by Redocly")).to_be_visible()


def test_dead_retries_and_scheduled_in_a_real_browser(broker: Broker, server: str, guarded: Any) -> None:
    from playwright.sync_api import expect

    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    dead = [failed_earlier(f"export-{n}") for n in range(55)]
    other = client.enqueue("test_noop", {}, queue="emails")
    other = run_attempt(other, error="SMTPError: relay refused")
    page = guarded(viewport={"width": WIDE, "height": 900}).new_page()
    log_in(page, server)

    page.get_by_role("navigation").get_by_role("link", name="Dead", exact=True).click()
    rows = page.locator('[data-testid="set-row"]')
    expect(rows).to_have_count(50)
    shoot(page, "dead.png")
    expect(rows.first.locator('[data-testid="set-error"]')).to_have_text(re.compile("SMTPError|ConnectionError"))
    page.get_by_role("link", name=re.compile("Next")).click()
    expect(rows).to_have_count(6)

    # One chosen job: ticked, confirmed, retried.
    page.goto(f"{server}/dashboard/dead/?queue=emails")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Retry selected").click()
    expect(page.locator('[data-testid="confirm-text"]')).to_have_text("Retry 1 selected dead jobs.")
    page.get_by_role("button", name="Yes, retry 1 job").click()
    expect(page.locator("[data-toasts]")).to_contain_text("Retried 1 job.")
    assert Job.objects.get(pk=other.pk).status == Status.PENDING

    # Every failed job of the queue images: the confirmation states the count, and nothing else changes.
    page.goto(f"{server}/dashboard/dead/?queue={QUEUE}")
    page.get_by_role("button", name=f"Delete all of {QUEUE}…").click()
    expect(page.locator('[data-testid="confirm-text"]')).to_contain_text(f"Delete 55 dead jobs of queue {QUEUE}")
    shoot(page, "dead-confirm.png")
    page.get_by_role("button", name="Yes, delete 55 jobs").click()
    expect(page.locator("[data-toasts]")).to_contain_text("Deleted 55 jobs.")
    expect(page.get_by_text(f"No dead jobs in queue {QUEUE}.")).to_be_visible()
    assert not Job.objects.filter(pk__in=[job.pk for job in dead]).exists()

    # A retrying job, retried now from Retries; a scheduled one cancelled from Scheduled.
    waiting = run_attempt(
        client.enqueue("test_noop", {}, retry={"max_retries": 2, "initial_delay": "1h"}), error="x", permanent=False
    )
    later = client.enqueue("test_noop", {}, delay="1h", name="weekly-digest")
    page.get_by_role("navigation").get_by_role("link", name="Retries", exact=True).click()
    rows.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Retry now selected").click()
    page.get_by_role("button", name="Yes, run now 1 job").click()
    expect(page.locator("[data-toasts]")).to_contain_text("Made due now: 1 job.")
    assert Job.objects.get(pk=waiting.pk).status == Status.PENDING
    page.get_by_role("navigation").get_by_role("link", name="Scheduled", exact=True).click()
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="Cancel all…").click()
    page.get_by_role("button", name="Yes, cancel 1 job").click()
    expect(page.locator("[data-toasts]")).to_contain_text("Cancelled 1 job.")
    assert Job.objects.get(pk=later.pk).status == Status.CANCELLED


def test_an_operator_edits_a_queues_limits_in_a_real_browser(broker: Broker, server: str, guarded: Any) -> None:
    """The queue card shows what a limit holds; its limits page refuses a bad value next to the field
    and saves a good one, which the API then answers (docs/flow-control.md)."""
    from playwright.sync_api import expect

    from jobs import queue_limits
    from jobs.models import QueueState

    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    QueueState.objects.create(name="mailers", group_concurrency=1)
    for _ in range(3):
        client.enqueue("test_noop", {}, queue="mailers", group="customer:42")
    limits = queue_limits.LimitBook().get("mailers")
    assert len(broker.claim("mailers", "w", 10, 60_000, limits=limits).ids) == 1
    broker.claim("mailers", "w", 10, 60_000, limits=limits)  # the group's other two are set aside
    page = guarded(viewport={"width": WIDE, "height": 900}).new_page()
    log_in(page, server)

    card = page.locator('[data-testid="queue-mailers"]')
    held = card.locator('[data-limit="group_concurrency"] [data-held]')
    expect(held).to_have_text("2")
    assert_nothing_cut_off(page)
    card.get_by_role("link", name="Limits").click()
    expect(page).to_have_url(f"{server}/dashboard/queues/mailers/limits/")
    expect(page.locator('[data-testid="limits-now"] [data-limit="group_concurrency"] [data-held]')).to_have_text("2")
    assert_accessible(page)

    page.get_by_label("Concurrency", exact=True).fill("0")
    page.get_by_label("Rate", exact=True).fill("10/fortnight")
    page.get_by_role("button", name="Save limits").click()
    expect(page.locator('[data-testid="error-concurrency"]')).to_contain_text("is not a concurrency")
    assert_accessible(page)  # with the refusal shown
    assert QueueState.objects.get(name="mailers").concurrency is None

    page.get_by_label("Concurrency", exact=True).fill("3")
    page.get_by_label("Rate", exact=True).fill("50/s")
    page.get_by_role("button", name="Save limits").click()
    expect(page.locator("[data-toasts]")).to_contain_text("Limits of queue mailers saved")
    expect(page.locator('[data-limit="queue_concurrency"] td.mono')).to_have_text("3")
    expect(page.locator('[data-limit="queue_rate"] td.mono')).to_have_text("50/s (burst 1)")
    shoot(page, "queue-limits.png")
    row = QueueState.objects.get(name="mailers")
    assert (row.concurrency, row.rate_limit, row.group_concurrency) == (3, "50/s", 1)
