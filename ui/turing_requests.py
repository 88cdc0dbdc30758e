"""Request bodies of the Turing-test HTTP API as pydantic models, and their error answer.

Why strict models rather than `dict` bodies read with `.get`: a hostile or buggy client sends
`null`, lists or numbers where a name belongs, and `str(None)` had made a reader called "None".
Strict types (no coercion: `true` is not an id, `"3"` is not a number) refuse such bodies with a
422 before the store is reached; the store still checks the values (lengths, roles, ranges).
The 422 answer names the fields and what they should be, without echoing the input back.
"""
from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

#: longest free text accepted in any field (names, passwords, paths): generous, but bounded
MAX_TEXT = 1000


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)



class LoginBody(_Body):
    username: StrictStr = Field(max_length=MAX_TEXT)
    password: StrictStr = Field(max_length=MAX_TEXT)


class AnswerBody(_Body):
    item_id: StrictInt = Field(ge=1, le=2**62, description="the question's id from /next")
    payload: dict[str, Any] = Field(description="protocol-specific answer, checked by the store")


class NewReaderBody(_Body):
    username: StrictStr = Field(max_length=MAX_TEXT)
    password: StrictStr = Field(max_length=MAX_TEXT)
    role: StrictStr = Field("junior", max_length=MAX_TEXT)
    years_experience: StrictInt | StrictFloat = 0


class ActiveBody(_Body):
    active: StrictBool


class FolderSpec(_Body):
    path: StrictStr = Field(max_length=MAX_TEXT)
    truth: StrictStr = Field("", max_length=MAX_TEXT)
    method: StrictStr = Field("", max_length=MAX_TEXT)


class NewStudyBody(_Body):
    name: StrictStr = Field(max_length=MAX_TEXT)
    manifest: StrictStr | None = Field(None, max_length=MAX_TEXT, description="a server-side manifest (CSV/JSON)")
    generated_batch: StrictStr | None = Field(None, max_length=MAX_TEXT, description="a generated batch folder")
    folders: list[FolderSpec] = Field(default_factory=list, max_length=100)
    protocols: list[StrictInt] = Field(default_factory=lambda: [1, 2, 3], max_length=3)
    design: dict[str, Any] | None = None
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    allow_edits: StrictBool = False
    description: StrictStr = Field("", max_length=10 * MAX_TEXT)
    readers: list[StrictStr] = Field(default_factory=list, max_length=10000)


class EnrollBody(_Body):
    readers: list[StrictStr] = Field(max_length=10000)


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_error_response(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 {"error": "<field>: <what it should be>; ...", "kind"}: no input echoed, no trace."""
    problems = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            problems.append("the request body is not valid JSON")
        elif err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",):
            problems.append("a JSON object body is required")
        else:
            problems.append(f"{_where(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}")
    return JSONResponse({"error": "; ".join(dict.fromkeys(problems)), "kind": "RequestValidationError"},
                        status_code=422)
