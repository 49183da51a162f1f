"""Task backends: where enqueued tasks are stored and how they are run."""
