"""Fitboard's training side: the Celery worker and the trainer it runs per run."""
