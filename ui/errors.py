"""Turn the library's ValueErrors into messages the browser shows (gr.Error), never crashes.

Every tiger/ and ui/ error meant for people is a ValueError subclass with a readable message;
wrapping the event functions here keeps the pages free of try/except boilerplate while
programming errors (anything else) still surface as real exceptions in the server log.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr


def _to_gr(exc: ValueError) -> gr.Error:
    return gr.Error(str(exc) or type(exc).__name__, print_exception=False)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for event functions (plain or generator): ValueError -> gr.Error(message)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except ValueError as exc:
                raise _to_gr(exc) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as exc:
            raise _to_gr(exc) from exc
    return wrapper
