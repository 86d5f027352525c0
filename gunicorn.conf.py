"""gunicorn settings shared by `make web`, `make run` (scripts/run.sh) and the Docker image.

Command-line options (bind, workers, timeout) are given where gunicorn is started; this file holds
what must hold everywhere.
"""

# The access log leaves out the query string and the referrer: a patient search (?q=Jane Doe) and the
# page it came from carry patient names and MRNs, which do not belong in a log kept and shipped elsewhere.
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'
