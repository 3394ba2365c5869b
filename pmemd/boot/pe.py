"""(pure) The parts of a PE/COFF image (an EFI program) a unified kernel image is made of:
its named sections (``.linux``, ``.initrd``, ``.cmdline``, ``.osrel``, ``.uname`` …) and
whether it carries an Authenticode signature (the certificate table, data directory 4).

Only the headers are parsed; a section's bytes are read on demand through ``read(offset,
size)``, so a 60 MiB image costs a few small reads."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

MZ = b"MZ"
PE_SIGNATURE = b"PE\0\0"
PE32, PE32_PLUS = 0x10B, 0x20B
# where the data directories start in the optional header, and the count before them
_DIRECTORIES = {PE32: (92, 96), PE32_PLUS: (108, 112)}
CERTIFICATE_TABLE = 4  # IMAGE_DIRECTORY_ENTRY_SECURITY
_SECTION_HEADER = 40
_MAX_SECTIONS = 96  # the format allows more; no EFI program has them
HEADER_BYTES = 4096  # enough for the DOS stub, the PE headers and the section table

Read = Callable[[int, int], bytes]


class NotPE(ValueError):
    """Not a PE image, or one whose headers contradict themselves."""


@dataclass(frozen=True)
class Section:
    name: str
    offset: int  # in the file
    size: int  # of the content (the virtual size, without the file alignment's padding)


@dataclass(frozen=True)
class PEImage:
    sections: tuple[Section, ...]
    signed: bool  # has a certificate table (Authenticode): changing a byte breaks it

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
    end = offset + struct.calcsize(fmt)
    if offset < 0 or end > len(data):
        raise NotPE(f"headers end early (byte {offset})")
    return struct.unpack_from(fmt, data, offset)


def parse_pe(head: bytes) -> PEImage:
    """The sections of the image whose first bytes are ``head`` (:data:`HEADER_BYTES`)."""
    if head[:2] != MZ:
        raise NotPE("no MZ header")
    (pe_at,) = _unpack("<I", head, 0x3C)
    if head[pe_at:pe_at + 4] != PE_SIGNATURE:
        raise NotPE("no PE signature")
    coff = pe_at + 4
    _machine, count, _stamp, _symbols, _nsymbols, optional_size, _flags = _unpack(
        "<HHIIIHH", head, coff)
    if count > _MAX_SECTIONS:
        raise NotPE(f"{count} sections")
    optional = coff + 20
    (magic,) = _unpack("<H", head, optional)
    if magic not in _DIRECTORIES:
        raise NotPE(f"optional header magic {magic:#x}")
    count_at, directories_at = _DIRECTORIES[magic]
    (directories,) = _unpack("<I", head, optional + count_at)
    signed = False
    if directories > CERTIFICATE_TABLE:
        _where, size = _unpack("<II", head, optional + directories_at + 8 * CERTIFICATE_TABLE)
        signed = size > 0
    table = optional + optional_size
    sections = []
    for index in range(count):
        at = table + index * _SECTION_HEADER
        raw_name = head[at:at + 8]
        virtual_size, _address, raw_size, raw_at = _unpack("<IIII", head, at + 8)
        name = raw_name.rstrip(b"\0").decode("ascii", errors="replace")
        size = min(virtual_size, raw_size) if virtual_size else raw_size
        sections.append(Section(name, raw_at, size))
    return PEImage(tuple(sections), signed)


def section_text(read: Read, image: PEImage, name: str, limit: int = 1 << 16) -> str | None:
    """A text section's content (``.cmdline``, ``.osrel``, ``.uname``), without the NULs
    that pad it; ``None`` when the image has no such section."""
    section = image.section(name)
    if section is None:
        return None
    if section.size > limit:
        raise NotPE(f"section {name} is {section.size} bytes (a text section of at most "
                    f"{limit} was expected)")
    data = read(section.offset, section.size)
    if len(data) != section.size:
        raise NotPE(f"section {name} ends after the end of the file")
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
