import django_tasks


def test_all__is_sorted_and_complete():
    public = {name for name in dir(django_tasks) if not name.startswith("_")}
    submodules = {
        "backends",
        "checks",
        "exceptions",
        "results",
        "serializers",
        "apps",
        "retries",
    }
    assert django_tasks.__all__ == sorted(django_tasks.__all__, key=str)
    assert set(django_tasks.__all__) == public - submodules


def test_aliases__name_the_same_objects():
    assert django_tasks.InvalidTaskError is django_tasks.InvalidTask
    assert django_tasks.InvalidTaskBackendError is django_tasks.InvalidTaskBackend
    assert django_tasks.ResultDoesNotExist is django_tasks.TaskResultDoesNotExist
    assert django_tasks.ResultStatus is django_tasks.TaskResultStatus
    assert django_tasks.ResultStatus.NEW is django_tasks.TaskResultStatus.READY
    assert django_tasks.ResultStatus.SUCCEEDED is django_tasks.TaskResultStatus.SUCCESSFUL
    assert django_tasks.DEFAULT_QUEUE_NAME == django_tasks.DEFAULT_TASK_QUEUE_NAME
    assert django_tasks.tasks is django_tasks.task_backends


def test_exceptions__share_one_root():
    for name in (
        "InvalidTask",
        "InvalidTaskBackend",
        "TaskResultDoesNotExist",
        "TaskResultMismatch",
    ):
        assert issubclass(getattr(django_tasks, name), django_tasks.TaskException)
    assert issubclass(django_tasks.TaskResultMismatch, django_tasks.TaskResultDoesNotExist)
