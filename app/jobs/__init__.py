"""Running jobs: the queue (arq or in-process), the task bodies, the sweeper and the worker."""
