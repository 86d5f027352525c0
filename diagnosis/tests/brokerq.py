"""Read a queue of the real broker, to see what the application sent (and so that messages of
earlier tests do not reach a later test's worker)."""

from __future__ import annotations

from queue import Empty

from kidneyweb.celery import app


def drain(queue_name: str = "inference") -> list[dict]:
    """Take every message off the queue; return each one's task name and arguments."""
    messages = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(queue_name)
        try:
            while True:
                try:
                    message = queue.get(block=False)
                except Empty:
                    break
                args, kwargs, _embed = message.decode()
                messages.append({"task": message.headers.get("task"), "args": args, "kwargs": kwargs})
                message.ack()
        finally:
            queue.close()
    return messages
