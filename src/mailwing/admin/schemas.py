"""Request and response bodies of the JSON API (pydantic models: they make the OpenAPI
document and validate input; bounds here are the API's input limits)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "DkimKeyIn",
    "DkimKeyOut",
    "DnsRecordOut",
    "DomainIn",
    "DomainOut",
    "ListenerOut",
    "MailboxOut",
    "MessageOut",
    "MessagePageOut",
    "MessagePreviewOut",
    "QueuedOut",
    "RecipientOut",
    "StatusOut",
    "StorageOut",
    "UserIn",
    "UserOut",
    "UserPageOut",
    "UserPatch",
]


class DomainIn(BaseModel):
    name: str = Field(min_length=1, max_length=253, examples=["example.org"])


class DomainOut(BaseModel):
    name: str
    users: int


class UserIn(BaseModel):
    address: str = Field(min_length=3, max_length=254, examples=["alice@example.org"])
    password: str = Field(min_length=1, max_length=1024)
    quota: int = Field(default=0, ge=0, le=2**62, description="bytes; 0 means unlimited")


class UserPatch(BaseModel):
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    enabled: bool | None = None
    quota: int | None = Field(default=None, ge=0, le=2**62,
                              description="bytes; 0 means unlimited")


class UserOut(BaseModel):
    address: str
    enabled: bool
    messages: int
    bytes_used: int
    quota: int


class UserPageOut(BaseModel):
    total: int
    offset: int
    limit: int
    users: list[UserOut]


class MailboxOut(BaseModel):
    name: str
    special_use: str | None
    messages: int
    unseen: int
    bytes: int
    uidvalidity: int
    uidnext: int


class MessageOut(BaseModel):
    uid: int
    sender: str | None = Field(description="the From: field")
    subject: str | None
    date: str | None = Field(description="the Date: field, ISO 8601")
    internal_date: str
    size: int
    flags: list[str]


class MessagePageOut(BaseModel):
    total: int
    offset: int
    limit: int
    messages: list[MessageOut]


class MessagePreviewOut(BaseModel):
    uid: int
    headers: list[tuple[str, str]]
    text: str
    html: str = Field(description="sanitised: no scripts, styles or remote content")
    truncated: bool


class RecipientOut(BaseModel):
    address: str
    status: str
    last_reply: str
    remote_mta: str


class QueuedOut(BaseModel):
    id: str
    sender: str
    size: int
    subject: str | None
    state: str
    created_at: float
    next_attempt: float
    attempts: int
    lease_owner: str | None
    recipients: list[RecipientOut]


class DkimKeyIn(BaseModel):
    selector: str | None = Field(default=None, max_length=63, pattern=r"^[A-Za-z0-9-]+$")
    algorithm: Literal["rsa", "ed25519"] = "rsa"


class DkimKeyOut(BaseModel):
    domain: str
    selector: str
    algorithm: str
    record: str


class DnsRecordOut(BaseModel):
    kind: str
    name: str
    type: str
    value: str
    zone_line: str


class ListenerOut(BaseModel):
    name: str
    protocol: str
    host: str
    port: int
    tls: str
    connections: int


class StorageOut(BaseModel):
    backend: str
    database_bytes: int
    contents: int
    content_bytes: int


class StatusOut(BaseModel):
    version: str
    uptime_seconds: float
    hostname: str
    listeners: list[ListenerOut]
    queue: dict[str, int]
    storage: StorageOut
