"""The accepted-format list's file (``schemas/accepted-formats.json``) as pydantic
models: :func:`preservation.ingest.identify.load_accepted_formats` parses it strictly
with these. Kept apart from identification so that the identification worker, which
never reads the list, does not import pydantic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from preservation.ingest.identify import Accept


class FormatModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    accept: Accept
    group: str = "other"
    note: str = ""


class LocalFormatModel(FormatModel):
    container: str = Field(pattern=r"^(x-)?fmt/[0-9]+$")
    mime: str = Field(min_length=3)


class AcceptedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    schema_ref: str | None = Field(default=None, alias="$schema")
    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sources: list[str] = Field(default_factory=list)
    unlisted: Accept = "warn"
    formats: dict[str, FormatModel]
    local_formats: dict[str, LocalFormatModel] = Field(default_factory=dict)
