"""``JQS_APPS``: the user's own app and its processors, installed without editing ZipLine's settings.

The README's "From Python" example is run as written: its ``myapp/processors.py`` is written into a
folder on ``PYTHONPATH``, the workers are started with the README's command, and every job completes.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.models import Job, JobAttempt
from jobs.registry import registry
from tests.helpers import wait_for
from tests.procs import ROOT, manage, running
from zipline_site import localenv
from zipline_site.config import ConfigError, load_config
from zipline_site.firstlook import first_look_environment

README = ROOT / "README.md"


def _from_python_section() -> str:
    text = README.read_text()
    return text[text.index("### From Python") : text.index("### Over REST")]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _from_python_section(), flags=re.DOTALL)


def _write_app(tmp_path: Path) -> Path:
    """The README's ``myapp`` in a folder of its own; returns the folder to put on PYTHONPATH."""
    processors = _blocks("python")[0]
    assert processors.startswith("# myapp/processors.py\n"), "the README's first block is the app's processors"
    app = tmp_path / "site-packages" / "myapp"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "processors.py").write_text(processors)
    return app.parent


def _pythonpath(folder: Path) -> str:
    return os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)


def _readme_workers_command() -> tuple[dict[str, str], list[str]]:
    """The README's command as (variables, manage.py arguments)."""
    [command] = [line for block in _blocks("sh") for line in block.splitlines() if "runworkers" in line]
    words = shlex.split(command)
    variables = dict(word.split("=", 1) for word in words[: words.index("python")])
    return variables, words[words.index("manage.py") + 1 :]


def _statements(block: str) -> list[str]:
    """The block's top-level statements, as a user types them into a shell one after the other."""
    source = block.splitlines(keepends=True)
    return ["".join(source[node.lineno - 1 : node.end_lineno]) for node in ast.parse(block).body]


@pytest.mark.django_db(transaction=True)
def test_the_readme_example_completes_every_job_on_workers_started_with_jqs_apps(
    broker: object, tmp_path: Path
) -> None:
    """In the README's order: the workers first, then the client code, typed into a shell statement by
    statement (the workers catch up between two), so no assertion may count on a worker being slow."""
    folder = _write_app(tmp_path)
    variables, args = _readme_workers_command()
    assert variables == {"JQS_APPS": "myapp"}
    processors, client = _blocks("python")[:2]  # the third, workflows, is run by tests/test_workflows.py
    # This process stands for the API, which has the app installed too (it refuses unknown types).
    exec(compile(processors, "myapp/processors.py", "exec"), {"__name__": "myapp.processors"})  # noqa: S102
    env = {**variables, "PYTHONPATH": _pythonpath(folder), "JQS_WORKER_COUNT": "2"}
    try:
        with running(args, tmp_path, "workers", **env) as workers:

            def caught_up() -> bool:
                if workers.popen.poll() is not None:
                    raise AssertionError(f"runworkers exited with {workers.popen.returncode}:\n{workers.log()[-3000:]}")
                failed = Job.objects.filter(status="failed").first()
                assert failed is None, f"a job failed: {failed.error if failed else ''}"
                return not Job.objects.filter(status__in=("pending", "running")).exists()

            shell: dict[str, object] = {"__name__": "readme_example"}
            for statement in _statements(client):
                exec(compile(statement, str(README), "exec"), shell)  # noqa: S102
                wait_for(caught_up, timeout=60, interval=0.05, message=f"the workers to catch up after {statement!r}")
    finally:
        registry.unregister("resize_image")
    report = shell["report"]  # the unique job the example delays by an hour: still waiting
    assert Job.objects.get(pk=report.id).status == "scheduled"  # type: ignore[attr-defined]
    done = Job.objects.exclude(pk=report.id)  # type: ignore[attr-defined]
    assert done.count() == Job.objects.filter(status="completed").count() == 1002
    for job in done:
        assert job.result == {"resized": job.payload["path"]}, job
    assert JobAttempt.objects.filter(outcome="completed").count() == 1002


@pytest.mark.django_db(transaction=True)
def test_the_api_of_a_process_started_with_jqs_apps_accepts_the_app_s_job_type(broker: object, tmp_path: Path) -> None:
    folder = _write_app(tmp_path)
    submit = (
        "import uuid; from django.contrib.auth.models import User; from tests.helpers import token_client; "
        "client = token_client(User.objects.create_superuser(f'apps-{uuid.uuid4().hex[:6]}')); "
        "answer = client.post('/api/v1/jobs', {'type': 'resize_image', 'payload': {'path': '/tmp/a.png'}}); "
        "print(answer.status_code, answer.json().get('type'))"
    )
    env = {"PYTHONPATH": _pythonpath(folder), "JQS_ALLOWED_HOSTS": "testserver"}
    with_app = manage("shell", "--no-imports", "-c", submit, JQS_APPS="myapp", **env)
    assert with_app.stdout.strip() == "201 resize_image", with_app.stderr[-2000:]
    without = manage("shell", "--no-imports", "-c", submit, **env)
    assert without.stdout.strip() == "400 None", without.stderr[-2000:]


def test_an_app_python_cannot_find_stops_a_command_with_one_line_and_status_2() -> None:
    result = manage("check", JQS_APPS="myapp,nosuchapp")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "zipline: configuration error: JQS_APPS='myapp,nosuchapp': "
        "no module named 'myapp' (put its folder on PYTHONPATH or next to manage.py)"
    )


def test_an_app_zipline_already_installs_is_not_installed_twice() -> None:
    assert load_config({"JQS_APPS": "jobs, tests.procapp,jobs"}).apps.installed == ("jobs", "tests.procapp")
    result = manage("check", JQS_APPS="jobs,django.contrib.admin")
    assert result.returncode == 0, result.stderr


def test_apps_come_from_a_list_at_the_top_of_the_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "zipline.yaml"
    path.write_text("apps: [tests.procapp]\nworker: {count: 2}\n")
    assert load_config({}, str(path)).apps.installed == ("tests.procapp",)
    assert load_config({"JQS_APPS": "jobs"}, str(path)).apps.installed == ("jobs",)
    assert load_config({}).apps.installed == ()
    path.write_text("apps: {myapp: true}\n")
    with pytest.raises(ConfigError, match=r"^apps=\{'myapp': True\}: expected a list of module paths$"):
        load_config({}, str(path))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("my-app", "'my-app' is not a module path (expected e.g. myapp or mycompany.jobs)"),
        ("jobs.nosuch", "no module named 'jobs.nosuch' (put its folder on PYTHONPATH or next to manage.py)"),
    ],
)
def test_a_bad_app_names_the_setting_and_the_value(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({"JQS_APPS": value})
    assert str(raised.value) == f"JQS_APPS={value!r}: {message}"


def test_under_make_run_the_app_given_once_reaches_manage_py_through_local_env(tmp_path: Path) -> None:
    """The README's first-look line: ``JQS_APPS=myapp make run``, then ``manage.py shell`` with no setting."""
    folder, local = _write_app(tmp_path), tmp_path / "local"
    local.mkdir()
    # What make run does before it starts its children (zipline_site.firstlook._environment).
    settings = first_look_environment({"JQS_APPS": "myapp"}, local)
    localenv.write(localenv.env_file({localenv.LOCAL_DIR_ENV: str(local)}), settings)
    shell = {k: v for k, v in os.environ.items() if not k.startswith(("JQS_", "DJANGO_", "ZIPLINE_"))}
    shell.update({localenv.LOCAL_DIR_ENV: str(local), "PYTHONPATH": _pythonpath(folder)})
    code = "from jobs.registry import registry; print('resize_image' in registry)"

    def manage_py(**variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
            cwd=ROOT,
            env={**shell, **variables},
            capture_output=True,
            text=True,
            timeout=60,
        )

    found = manage_py()
    assert (found.returncode, found.stdout.strip()) == (0, "True"), found.stderr[-2000:]
    assert "using make run's settings" in found.stderr
    told_again = manage_py(JQS_APPS="myapp")
    assert told_again.returncode == 2
    assert (
        told_again.stderr.strip() == "zipline: configuration error: JQS_SECRET_KEY is required (or set JQS_DEBUG=true)"
    )
