"""JSON HTTP API of the Turing tests, on the app's FastAPI instance under /api/turing.

Log in with POST /api/turing/login -> {"token"}; send it as `Authorization: Bearer <token>`
(or the `tiger_turing` cookie the login also sets). Every route resolves the asking reader first
and passes it to the store, whose queries are scoped to that reader; errors are the store's
ValueError subclasses, answered as {"error": message} with their HTTP status.

Reader routes: GET studies, GET studies/{id}/next, GET studies/{id}/answered (own answered
questions, for review), GET studies/{id}/items/{item} (with "my_answer"),
POST studies/{id}/answers {"item_id", "payload"} (again on an answered item = an edit, where the
study allows edits), GET images/{opaque id}.
Admin routes (/api/turing/admin/...): readers, studies (from a server-side manifest or folders),
enrollment, raw answers (JSON/CSV) and the summary tables.
"""
from __future__ import annotations


from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from turing_test.errors import RateLimited, TuringError
from turing_test.storage import ReaderInfo, Store
from ui.context import AppContext
from ui.turing_requests import (ActiveBody, AnswerBody, EnrollBody, LoginBody, NewReaderBody, NewStudyBody,
                                validation_error_response)

PREFIX = "/api/turing"
COOKIE = "tiger_turing"


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _error_response(_request: Request, exc: TuringError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return JSONResponse({"error": str(exc), "kind": type(exc).__name__}, status_code=exc.http_status, headers=headers)


def _study_kwargs(body: NewStudyBody) -> dict:
    """Case specs for a new study from a server-side manifest, generated batch and/or folders."""
    from turing_test import manifest as mf

    specs = []
    if body.manifest:
        specs += mf.load_manifest(body.manifest)
    if body.generated_batch:
        specs += mf.cases_from_generated_batch(body.generated_batch)
    for folder in body.folders:
        specs += mf.cases_from_folder(folder.path, truth=folder.truth, method=folder.method)
    return {"specs": specs}


def register(app: FastAPI, ctx: AppContext) -> None:
    """Add the Turing-test routes and the error handlers to `app`."""
    app.add_exception_handler(TuringError, _error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)

    def store() -> Store:
        return ctx.store()

    # Routes that know their reader resolve it in their own body rather than through Depends:
    # FastAPI runs a sync dependency in the threadpool apart from the sync route, two thread hops
    # per request, which under 50 concurrent readers cost more than the token query itself
    # (issue 17). Admin routes that need only the check keep it as a dependency.
    def reader(request: Request) -> ReaderInfo:
        """The asking reader: 401 without a valid token."""
        return store().reader_for_token(_token(request))

    def admin(request: Request) -> ReaderInfo:
        """The asking reader, who must be an admin (403 otherwise)."""
        who = reader(request)
        store().require_admin(who)
        return who

    @app.post(PREFIX + "/login")
    def login(request: Request, body: LoginBody) -> JSONResponse:
        token, who = store().login(body.username, body.password, client=_client(request))
        resp = JSONResponse({"token": token, "username": who.username, "role": who.role})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    @app.post(PREFIX + "/logout")
    def logout(request: Request) -> dict:
        token = _token(request)
        if token:
            store().logout(token)
        return {"ok": True}

    @app.get(PREFIX + "/me")
    def me(request: Request) -> dict:
        who = reader(request)
        return {"username": who.username, "role": who.role, "years_experience": who.years_experience}

    @app.get(PREFIX + "/studies")
    def my_studies(request: Request) -> list[dict]:
        who = reader(request)
        return store().studies_for(who)

    async def hot(fn, *args):
        """Run a reader's hot request (next question, answer) on the event loop when the store is
        SQLite: its statements are local and take well under a millisecond, and the thread hop
        cost more CPU than the call (issue 17). Any other database goes to the threadpool, so a
        slow network round trip never holds the loop. The SQLite write lock is held for one
        short transaction at most, so the loop never waits on a request."""
        s = ctx.store_if_open()
        if s is not None and s.engine.dialect.name == "sqlite":
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    def _next(request: Request, study_id: int) -> dict:
        item = store().next_item(reader(request), study_id)
        return item if item is not None else {"done": True}

    def _answer(request: Request, study_id: int, body: AnswerBody) -> dict:
        return store().submit(reader(request), study_id, body.item_id, body.payload)

    @app.get(PREFIX + "/studies/{study_id}/next")
    async def next_item(study_id: int, request: Request) -> dict:
        return await hot(_next, request, study_id)

    @app.get(PREFIX + "/studies/{study_id}/answered")
    def answered(study_id: int, request: Request) -> list[dict]:
        who = reader(request)
        return store().answered_items(who, study_id)

    @app.get(PREFIX + "/studies/{study_id}/items/{item_id}")
    def get_item(study_id: int, item_id: int, request: Request) -> dict:
        who = reader(request)
        return store().item_for(who, study_id, item_id)

    @app.post(PREFIX + "/studies/{study_id}/answers", status_code=201)
    async def answer(study_id: int, body: AnswerBody, request: Request) -> dict:
        return await hot(_answer, request, study_id, body)

    @app.get(PREFIX + "/images/{token}")
    def image(token: str, request: Request) -> Response:
        who = reader(request)
        png = store().image_png(who, token)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    # ------------------------------------------------------------------ admin
    @app.get(PREFIX + "/admin/readers", dependencies=[Depends(admin)])
    def readers() -> list[dict]:
        return store().list_readers()

    @app.post(PREFIX + "/admin/readers", status_code=201, dependencies=[Depends(admin)])
    def create_reader(body: NewReaderBody) -> dict:
        who = store().create_reader(body.username, body.password, role=body.role,
                                    years_experience=body.years_experience)
        return {"id": who.id, "username": who.username, "role": who.role}

    @app.post(PREFIX + "/admin/readers/{username}/active", dependencies=[Depends(admin)])
    def set_active(username: str, body: ActiveBody) -> dict:
        store().set_reader_active(username, body.active)
        return {"username": username, "active": body.active}

    @app.get(PREFIX + "/admin/studies", dependencies=[Depends(admin)])
    def studies() -> list[dict]:
        return store().list_studies()

    @app.post(PREFIX + "/admin/studies", status_code=201, dependencies=[Depends(admin)])
    def create_study(body: NewStudyBody) -> dict:
        study_id = store().create_study(
            body.name, protocols=body.protocols, design=body.design, seed=body.seed, allow_edits=body.allow_edits,
            description=body.description, readers=body.readers, **_study_kwargs(body))
        return {"id": study_id, "blinding_warnings": store().blinding(study_id)["warnings"]}

    @app.post(PREFIX + "/admin/studies/{study_id}/enroll", dependencies=[Depends(admin)])
    def enroll(study_id: int, body: EnrollBody) -> dict:
        return {"items_created": store().enroll(study_id, body.readers)}

    @app.get(PREFIX + "/admin/studies/{study_id}/answers")
    def answers(study_id: int, request: Request, format: Literal["json", "csv"] = "json") -> Any:
        who = admin(request)
        rows = store().answer_rows(who, study_id)
        if format == "csv":
            import tempfile

            from turing_test.export import write_raw_csv

            with tempfile.TemporaryDirectory() as tmp:
                data = write_raw_csv(rows, Path(tmp) / "answers.csv").read_bytes()
            return Response(data, media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="study{study_id}_answers.csv"'})
        return rows

    @app.get(PREFIX + "/admin/studies/{study_id}/summary")
    def summary(study_id: int, request: Request) -> dict:
        who = admin(request)
        from turing_test.stats import summarize

        return summarize(store().answer_rows(who, study_id))


__all__ = ["register", "PREFIX"]


def create_api_app() -> FastAPI:
    """A FastAPI app with only /health and the Turing API (uvicorn factory for tests and benchmarks).

    Reads TIGER_DB_URL and TIGER_DATA_DIR, like the full app. No Gradio is imported, so it
    starts in about a second, which keeps the kill-and-restart test and the load benchmark fast
    (tests/servers.py `spawn_api_server` starts it).
    """
    import os

    from tiger.paths import DATA_ROOT

    ctx = AppContext(db_url=os.environ.get("TIGER_DB_URL"), data_dir=Path(os.environ.get("TIGER_DATA_DIR", DATA_ROOT)))
    from ui.request_limits import RequestGuard

    app = FastAPI(title="Tiger Studio - Turing API")
    app.add_middleware(RequestGuard)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    register(app, ctx)
    ctx.store()  # migrate before the first request
    return app
