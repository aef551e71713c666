"""For plain `celery -A batchline.workers.celery_app ...` use: the app built from the environment."""

from batchline.config.settings import Settings
from batchline.workers.app import create_app

app = create_app(Settings.from_env())
