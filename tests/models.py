"""A side table tasks write to, so tests can count how often each task really ran."""

from django.db import models


class Run(models.Model):
    """One execution of a test task: which call, which process."""

    key = models.CharField(max_length=100)
    pid = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.key} in {self.pid}"
