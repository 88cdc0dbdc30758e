"""Gradio file inputs accept only files uploaded through Gradio's upload route.

Why this is needed: an API call may hand any component a `FileData` whose `path` names a file
on the server. Gradio checks that path against its upload folder only once the Blocks "has
launched"; a Blocks *mounted* on FastAPI (`gr.mount_gradio_app`, how this app is served) never
sets that flag, so the check is skipped and the file (any image on the server) was copied into
the cache and served back at /gradio_api/file=... to anyone. Marking the mounted Blocks as
launched turns Gradio's own check back on: preprocessing then refuses every path outside the
upload folder ("it was not uploaded by a user"), for anonymous and logged-in callers alike,
while outputs may still come from the app's temp folder, the working directory and the
folders passed as `allowed_paths`.
"""
from __future__ import annotations

import gradio as gr


def accept_uploaded_files_only(blocks: gr.Blocks) -> gr.Blocks:
    """Enable Gradio's upload-folder check for a mounted Blocks (see module docstring)."""
    blocks.has_launched = True
    return blocks
