"""The kernel image given to `testbed vm`: is it a bootable x86 kernel, what
release is it, where are its modules (the way virtme-ng finds them)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from testbed.vm.base import VmError

# ---------------------------------------------------------------------------
# the kernel image
# ---------------------------------------------------------------------------


def kernel_release_of(header: bytes) -> Optional[str]:
    """The release string of an x86 bzImage from its first bytes (boot
    protocol: "HdrS" at 0x202, kernel_version pointer at 0x20E, +0x200)."""
    if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
        return None
    ptr = int.from_bytes(header[0x20E:0x210], "little")
    if not ptr:
        return ""
    text = header[0x200 + ptr: 0x200 + ptr + 256]
    return text.split(b"\0", 1)[0].split(b" ", 1)[0].decode(errors="replace")


@dataclass
class KernelImage:
    path: str
    release: str
    modules: Optional[str]  # lib/modules/<release> beside the image (or the host's), if any


def inspect_kernel(path: str) -> KernelImage:
    """Check that path is a bootable x86 kernel image; find its modules the
    way virtme-ng does (the nearest parent holding lib/modules/<release>)."""
    if not path:
        raise VmError("no kernel image given (--kernel PATH, e.g. arch/x86/boot/bzImage)")
    if not os.path.exists(path):
        raise VmError(f"kernel image {path} does not exist")
    if os.path.isdir(path):
        raise VmError(f"kernel image {path} is a directory; give the image file "
                      "(arch/x86/boot/bzImage, or boot/vmlinuz-<release> of a package)")
    try:
        with open(path, "rb") as f:
            header = f.read(0x8000)
    except OSError as e:
        raise VmError(f"kernel image {path}: {e.strerror}") from None
    release = kernel_release_of(header)
    if release is None:
        what = "an ELF file (vmlinux?)" if header[:4] == b"\x7fELF" else "not a bzImage"
        raise VmError(f"kernel image {path} is not bootable: {what} (no 'HdrS' x86 boot header); "
                      "give arch/x86/boot/bzImage or a vmlinuz")
    if not release:
        raise VmError(f"kernel image {path} has no version string; virtme-ng needs one")
    modules = None
    d = os.path.dirname(os.path.abspath(path))
    while True:
        cand = os.path.join(d, "lib", "modules", release)
        if os.path.isdir(cand):
            modules = cand
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return KernelImage(os.path.abspath(path), release, modules)

