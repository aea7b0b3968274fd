import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("leaderboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_filesystem_broker_folders(sender, **kwargs):
    # The filesystem transport (no REDIS_URL) needs its folders to exist.
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)


@worker_init.connect
def _warm_up_evaluation(sender=None, **kwargs):
    # Before the pool forks: a worker of the eval queue imports torch, transformers and
    # lm-eval and builds lm-eval's task index (~8 s together) once, so that its first
    # evaluation costs what the later ones do. Other queues (probes, housekeeping) skip it.
    queues = getattr(getattr(sender, "app", None), "amqp", None)
    consumed = set((queues.queues.consume_from or {}).keys()) if queues else set()
    if "eval" in consumed:
        from evaluator.harness import warm_up

        warm_up()
