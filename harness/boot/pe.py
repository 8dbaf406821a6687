"""PE/COFF images (UEFI programs, the EFI-stub kernel): where their Authenticode signature is.

A signed image carries its signature in the attribute certificate table, which entry 4 of the
optional header's data directories (the security directory) names by file offset and size
(Microsoft's PE/COFF specification: "Optional Header Data Directories", "The Attribute
Certificate Table").  The firmware checks it against its db, shim against its own keys, GRUB asks
shim; an image whose entry is zero is unsigned.  The image may be hostile: every offset read is
checked against what was read and against the file's size.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from ..errors import LivelabError

HEADER_BYTES = 64 * 1024      # the DOS and PE headers of an image lie well inside its first 64 KiB
_SECURITY_DIRECTORY = 4
# optional header magic -> (offset of NumberOfRvaAndSizes, offset of the data directories) in it
_LAYOUTS = {0x10B: (92, 96), 0x20B: (108, 112)}     # PE32, PE32+


class Signature(NamedTuple):
    """Where an image's signature is, as file offsets."""
    entry: int          # the security directory entry: 8 bytes, the table's offset and size
    offset: int         # the attribute certificate table
    size: int


def signature(head: bytes, file_size: int, what: str) -> Signature | None:
    """The signature of the PE image whose first bytes are ``head`` (at least its headers; see
    ``HEADER_BYTES``) and whose size is ``file_size``; None when it is unsigned.  ``what`` names
    the image in the one-line error for something that is not a PE image."""
    def bad(why: str) -> LivelabError:
        return LivelabError(f"{what}: not a PE/COFF image ({why})")

    if len(head) < 0x40 or head[:2] != b"MZ":
        raise bad("no MZ header")
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    if head[pe:pe + 4] != b"PE\0\0":
        raise bad(f"no PE signature at offset {pe}")
    optional = pe + 24
    if optional + 2 > len(head):
        raise bad("its headers end early")
    magic = struct.unpack_from("<H", head, optional)[0]
    if magic not in _LAYOUTS:
        raise bad(f"optional header magic {magic:#x}")
    count_at, directories = (optional + n for n in _LAYOUTS[magic])
    entry = directories + 8 * _SECURITY_DIRECTORY
    if entry + 8 > len(head):
        raise bad("its headers end early")
    if struct.unpack_from("<I", head, count_at)[0] <= _SECURITY_DIRECTORY:
        return None                    # no security directory at all
    offset, size = struct.unpack_from("<II", head, entry)
    if size == 0:
        return None
    if offset < entry + 8 or offset + size > file_size:
        raise LivelabError(f"{what}: its certificate table (offset {offset}, {size} bytes) is not inside the "
                           f"image ({file_size} bytes) past its headers")
    return Signature(entry, offset, size)
