"""A readers-writer lock: many readers at once, or one writer (re-entrant), writers first.

The store uses it so that GraphQL queries read side by side while a mutation (one transaction) has the
tables to itself: a query never sees half of a mutation, exactly as under the single lock it replaces, but a
slow query no longer makes every other query wait. Writers go first: once one waits, new readers queue behind
it, so agents' polls and state changes (mutations) are not starved by a stream of UI queries.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator


class ReadWriteLock:
    """Shared reading, exclusive writing.

    A thread that writes may also read and write again (nested); a thread that reads may read again. A
    thread that reads may not start writing: two readers doing so would wait for each other forever, so
    it raises instead.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0  # threads reading now
        self._writer = None  # ident of the thread writing, if any
        self._depth = 0  # nested writing() of that thread
        self._waiting_writers = 0
        self._local = threading.local()  # per thread: how deeply it is reading

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Holds the lock shared (passes straight through in a thread that reads or writes already)."""
        me = threading.get_ident()
        depth = getattr(self._local, "reads", 0)
        if depth or self._writer == me:
            self._local.reads = depth + 1
            try:
                yield
            finally:
                self._local.reads = depth
            return
        with self._cond:
            while self._writer is not None or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        self._local.reads = 1
        try:
            yield
        finally:
            self._local.reads = 0
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Holds the lock exclusively (re-entrant)."""
        me = threading.get_ident()
        if getattr(self._local, "reads", 0) and self._writer != me:
            raise RuntimeError("a thread that holds the store for reading cannot start writing")
        with self._cond:
            if self._writer != me:
                self._waiting_writers += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._waiting_writers -= 1
                self._writer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._writer = None
                    self._cond.notify_all()
