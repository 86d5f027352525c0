"""Read the real broker's inference queue, to see what the application sent."""

from __future__ import annotations

from queue import Empty

from kidneyweb.celery import app

QUEUE = "inference"


def drain() -> list[dict]:
    """Take every message off the queue; return each one's task name and arguments."""
    messages = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(QUEUE)
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
