"""Params of the ``openLlm/chat/*`` requests and of the ``openLlm.chat.start`` command.

camelCase on the wire, validated by pydantic (unknown keys rejected); the helpers at the
end turn them into the chat service's plain values.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from lsp_server.chat.records import AnswerOptions, AttachmentRef
from lsp_server.protocol.server import Params

SortParam = Literal["updated", "created", "title"]


class FolderParams(Params):
    """An optional workspace folder (``folderUri``); None: the open folders."""

    folder_uri: str | None = None


class ChatIdParams(FolderParams):
    """Params naming a chat."""

    chat_id: str = Field(min_length=1)


class MessageIdParams(FolderParams):
    """Params naming a message."""

    message_id: str = Field(min_length=1)


class CreateParams(FolderParams):
    """Params of ``openLlm/chat/create``."""

    title: str | None = None
    folder_id: str | None = None
    system_prompt: str | None = None
    preset_id: str | None = None


class ListParams(FolderParams):
    """Params of ``openLlm/chat/list``."""

    sort: SortParam = "updated"
    descending: bool | None = None
    folder_id: str | None = None
    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=1000)
    trash: bool = False


class RenameParams(ChatIdParams):
    """Params of ``openLlm/chat/rename``."""

    title: str


class UpdateParams(ChatIdParams):
    """Params of ``openLlm/chat/update``: ``systemPrompt`` null clears the override."""

    system_prompt: str | None


class DuplicateParams(ChatIdParams):
    """Params of ``openLlm/chat/duplicate``."""

    title: str | None = None


class RestoreParams(FolderParams):
    """Params of ``openLlm/chat/restore``: one chat, or ``all``."""

    chat_id: str | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> RestoreParams:
        if (self.chat_id is None) == (not self.all):
            raise ValueError("give chatId or all: true")
        return self


class SearchParams(FolderParams):
    """Params of ``openLlm/chat/search``."""

    query: str = Field(min_length=1)
    folder_id: str | None = None
    limit: int = Field(20, ge=1, le=200)


class FolderCreateParams(FolderParams):
    """Params of ``openLlm/chat/folder/create``."""

    name: str


class FolderIdParams(FolderParams):
    """Params naming a chat folder."""

    folder_id: str = Field(min_length=1)


class FolderRenameParams(FolderIdParams):
    """Params of ``openLlm/chat/folder/rename``."""

    name: str


class MoveParams(ChatIdParams):
    """Params of ``openLlm/chat/move``: ``folderId`` null moves out of any folder."""

    folder_id: str | None


class BranchParams(MessageIdParams):
    """Params of ``openLlm/chat/branch``."""

    title: str | None = None


class ExportParams(ChatIdParams):
    """Params of ``openLlm/chat/export``."""

    format: Literal["json", "markdown"] = "json"


class ImportParams(FolderParams):
    """Params of ``openLlm/chat/import``: the export as an object or as JSON text."""

    data: dict[str, Any] | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ImportParams:
        if (self.data is None) == (self.text is None):
            raise ValueError("give exactly one of data or text")
        return self


class PositionParam(Params):
    """An LSP position (zero-based line, UTF-16 character)."""

    line: int = Field(ge=0)
    character: int = Field(ge=0)


class RangeParam(Params):
    """An LSP range."""

    start: PositionParam
    end: PositionParam


class AttachmentParam(Params):
    """A document (open in the editor, else read from disk) or a range of it."""

    uri: str = Field(min_length=1)
    range: RangeParam | None = None


class SamplingOverride(Params):
    """Sampling values that replace the preset's for one request."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=1000)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, ge=0.5, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    stop: list[str] | None = Field(None, max_length=32)
    seed: int | None = Field(None, ge=0, le=4_294_967_295)


class AnswerParams(FolderParams):
    """What every request that generates an answer accepts."""

    preset_id: str | None = None
    sampling: SamplingOverride | None = None
    request_id: str | None = None
    generate_title: bool = True


class SendParams(AnswerParams):
    """Params of ``openLlm/chat/send``."""

    chat_id: str = Field(min_length=1)
    content: str
    attachments: list[AttachmentParam] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _not_empty(self) -> SendParams:
        if not self.content.strip() and not self.attachments:
            raise ValueError("content: the message is empty")
        return self


class EditParams(AnswerParams):
    """Params of ``openLlm/chat/edit``."""

    message_id: str = Field(min_length=1)
    content: str
    attachments: list[AttachmentParam] | None = None
    generate: bool = True


class RegenerateParams(AnswerParams):
    """Params of ``openLlm/chat/regenerate``."""

    message_id: str = Field(min_length=1)


class CancelParams(Params):
    """Params of ``openLlm/chat/cancel``."""

    chat_id: str | None = None
    request_id: str | None = None

    @model_validator(mode="after")
    def _one(self) -> CancelParams:
        if self.chat_id is None and self.request_id is None:
            raise ValueError("give chatId or requestId")
        return self


class RenderParams(AnswerParams):
    """Params of ``openLlm/chat/renderPrompt``."""

    chat_id: str | None = None
    message_id: str | None = None
    content: str | None = None
    attachments: list[AttachmentParam] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _target(self) -> RenderParams:
        if self.chat_id is None and self.message_id is None:
            raise ValueError("give chatId or messageId")
        return self


class StartParams(FolderParams):
    """Argument of the ``openLlm.chat.start`` command (what code actions send)."""

    title: str | None = None
    content: str
    attachments: list[AttachmentParam] = Field(default_factory=list, max_length=32)
    action: str | None = None
    diagnostics: list[dict[str, Any]] = Field(default_factory=list)
    preset_id: str | None = None
    sampling: SamplingOverride | None = None
    request_id: str | None = None


def attachment_refs(items: list[AttachmentParam]) -> list[AttachmentRef]:
    """The service's attachment references for attachment params."""
    return [
        AttachmentRef(item.uri, item.range.model_dump() if item.range is not None else None)
        for item in items
    ]


def answer_options(p: AnswerParams | StartParams) -> AnswerOptions:
    """The service's answer options from the params every answering request accepts."""
    overrides = p.sampling.model_dump(exclude_none=True) if p.sampling is not None else None
    generate_title = p.generate_title if isinstance(p, AnswerParams) else True
    return AnswerOptions(p.preset_id, overrides, p.request_id, generate_title)
