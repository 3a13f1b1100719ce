"""Tool argument types shared by the tool modules: the descriptions the model reads."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

PagePath = Annotated[str, Field(description="Page path as the wiki shows it, e.g. 'Projects/Roadmap' "
                                            "(case-insensitive)")]
OptionalPath = Annotated[str | None, Field(description="A page path; omit for the whole wiki")]
Message = Annotated[str | None, Field(description="Commit message; '[mcp]' is prefixed")]
BaseRevision = Annotated[str, Field(description="The revision read_page returned for the page you changed")]
OptionalBase = Annotated[str | None, Field(description="The revision read_page returned (required to replace "
                                                       "an existing page)")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous answer")]
AttachmentName = Annotated[str, Field(description="Attachment file name, e.g. 'diagram.png'")]
