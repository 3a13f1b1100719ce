# gunicorn settings equivalent to what `wikibot serve` passes on its command line, for deployments
# that run gunicorn themselves:  gunicorn -c etc/gunicorn.conf.py 'wikibot.app:create_app()'
import os

from wikibot.access_log import ACCESS_FORMAT

bind = f"{os.environ.get('WIKIBOT_HOST', '127.0.0.1')}:{os.environ.get('WIKIBOT_PORT', '8080')}"
worker_class = "gthread"
workers = int(os.environ.get("WIKIBOT_WORKERS", "3"))
threads = int(os.environ.get("WIKIBOT_THREADS", "4"))
timeout = int(os.environ.get("WIKIBOT_TIMEOUT", "300"))
graceful_timeout = 10
preload_app = True
control_socket_disable = True  # two instances would otherwise share ~/.gunicorn/gunicorn.ctl
accesslog = "-"
access_log_format = ACCESS_FORMAT
logger_class = "wikibot.access_log.GunicornLogger"  # tokens never reach a log line
