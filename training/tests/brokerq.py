"""Empty a queue of the real broker, so messages of earlier tests do not reach a test's worker."""

from __future__ import annotations

from queue import Empty

from kidneyweb.celery import app


def drain(queue_name: str) -> int:
    count = 0
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(queue_name)
        try:
            while True:
                try:
                    message = queue.get(block=False)
                except Empty:
                    break
                message.ack()
                count += 1
        finally:
            queue.close()
    return count
