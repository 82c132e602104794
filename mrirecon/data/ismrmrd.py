"""The ismrmrd XML header of fastMRI files: the geometry mrirecon reads, and a writer for synthetic scans.

The fields used: ``encoding/encodedSpace/matrixSize`` and ``encoding/reconSpace/matrixSize``
(the readout crop), their ``fieldOfView_mm`` (the pixel size), and
``encoding/encodingLimits/kspace_encoding_step_1`` (the acquired phase-encode columns).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Sequence

from mrirecon.errors import MrireconError, require

__all__ = ["ISMRMRD_NAMESPACE", "ScanHeader", "make_ismrmrd_header", "parse_ismrmrd_header"]

ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"




@dataclass(frozen=True)
class ScanHeader:
    """Acquisition geometry from the ``ismrmrd_header`` XML.

    Attributes
    ----------
    encoded_size, recon_size : (x, y, z)
        ``encodedSpace`` / ``reconSpace`` matrix sizes (x = readout, y = phase encode).
    encoded_fov_mm, recon_fov_mm : (x, y, z) or None
        Fields of view in millimetres, when present.
    kspace_encoding_step_1 : (minimum, maximum, center)
        Phase-encode encoding limits.
    receiver_channels : int or None
        Number of coils, when present.
    """

    encoded_size: tuple[int, int, int]
    recon_size: tuple[int, int, int]
    kspace_encoding_step_1: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float] | None = None
    recon_fov_mm: tuple[float, float, float] | None = None
    receiver_channels: int | None = None

    @property
    def padding_left(self) -> int:
        """First acquired phase-encode column (fastMRI: ``enc_y // 2 - center``)."""
        return self.encoded_size[1] // 2 - self.kspace_encoding_step_1[2]

    @property
    def padding_right(self) -> int:
        """One past the last acquired phase-encode column (``padding_left + maximum + 1``)."""
        return self.padding_left + self.kspace_encoding_step_1[1] + 1


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(node: ET.Element, path: Sequence[str]) -> ET.Element | None:
    """Follow child tags by local name, ignoring the XML namespace (files vary)."""
    for name in path:
        node = next((child for child in node if _local(child.tag) == name), None)
        if node is None:
            return None
    return node


def parse_ismrmrd_header(xml: str | bytes, source: str = "ismrmrd_header") -> ScanHeader:
    """Parse the geometry fields mrirecon needs from an ismrmrd XML header.

    Parameters
    ----------
    xml : str or bytes
        The header text (fastMRI stores it as the ``ismrmrd_header`` dataset).
    source : str
        Name used in error messages (e.g. ``"file.h5: ismrmrd_header"``).

    Returns
    -------
    ScanHeader
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise MrireconError(f"{source}: not valid XML ({exc})") from None
    enc = _find(root, ["encoding"])
    require(enc is not None, f"{source}: missing element 'encoding'")

    def integer(path: Sequence[str]) -> int:
        node = _find(enc, path)
        require(node is not None and node.text is not None, f"{source}: missing element 'encoding/{'/'.join(path)}'")
        try:
            return int(node.text.strip())
        except ValueError:
            raise MrireconError(
                f"{source}: element 'encoding/{'/'.join(path)}' must be an integer, got {node.text!r}"
            ) from None

    def size(space: str) -> tuple[int, int, int]:
        return tuple(integer([space, "matrixSize", a]) for a in "xyz")  # type: ignore[return-value]

    def fov(space: str) -> tuple[float, float, float] | None:
        node = _find(enc, [space, "fieldOfView_mm"])
        if node is None:
            return None
        values = []
        for axis in "xyz":
            child = _find(node, [axis])
            try:
                values.append(float(child.text))  # type: ignore[union-attr,arg-type]
            except (AttributeError, TypeError, ValueError):
                raise MrireconError(
                    f"{source}: element 'encoding/{space}/fieldOfView_mm/{axis}' must be a number"
                ) from None
        return (values[0], values[1], values[2])

    limits = tuple(integer(["encodingLimits", "kspace_encoding_step_1", a]) for a in ("minimum", "maximum", "center"))
    channels = _find(root, ["acquisitionSystemInformation", "receiverChannels"])
    return ScanHeader(
        encoded_size=size("encodedSpace"),
        recon_size=size("reconSpace"),
        kspace_encoding_step_1=limits,  # type: ignore[arg-type]
        encoded_fov_mm=fov("encodedSpace"),
        recon_fov_mm=fov("reconSpace"),
        receiver_channels=int(channels.text) if channels is not None and channels.text else None,
    )


def make_ismrmrd_header(
    encoded: tuple[int, int] = (640, 320),
    recon: tuple[int, int] = (320, 320),
    *,
    coils: int | None = None,
    slices: int | None = None,
    encoding_center: int | None = None,
    encoding_maximum: int | None = None,
    fov_mm: tuple[float, float, float] = (220.0, 220.0, 5.0),
    field_strength_t: float = 3.0,
) -> str:
    """A minimal valid ismrmrd XML header, shaped like fastMRI's, for synthetic scans.

    Parameters
    ----------
    encoded : (x, y)
        Encoded matrix (readout incl. oversampling, phase encode), e.g. (640, 320).
    recon : (x, y)
        Reconstructed matrix, e.g. (320, 320).
    coils, slices : int, optional
        Written as ``receiverChannels`` and the ``slice`` encoding limit.
    encoding_center, encoding_maximum : int, optional
        ``kspace_encoding_step_1`` centre and maximum; default ``encoded_y // 2`` and
        ``encoded_y - 1`` (every phase-encode line acquired, no padding).
    fov_mm : (x, y, z)
        Reconstructed field of view; the encoded FOV is scaled by ``encoded / recon``.
    field_strength_t : float
        Main field, written as the proton resonance frequency.

    Returns
    -------
    str
        XML text in the ISMRMRD namespace.
    """
    for name, value in (("encoded", encoded), ("recon", recon)):
        require(
            len(tuple(value)) == 2 and all(int(v) > 0 for v in value),
            f"{name} must be (x, y) positive matrix sizes, got {value!r}",
        )
    ex, ey = (int(v) for v in encoded)
    rx, ry = (int(v) for v in recon)
    center = ey // 2 if encoding_center is None else int(encoding_center)
    maximum = ey - 1 if encoding_maximum is None else int(encoding_maximum)
    require(0 <= center <= maximum, f"encoding_center must lie in [0, encoding_maximum], got {center}, {maximum}")
    fx, fy, fz = (float(v) for v in fov_mm)
    efx, efy = fx * ex / rx, fy * ey / ry

    def space(tag: str, mx: int, my: int, vx: float, vy: float) -> str:
        return (f"<{tag}><matrixSize><x>{mx}</x><y>{my}</y><z>1</z></matrixSize><fieldOfView_mm><x>{vx:g}</x>"
                f"<y>{vy:g}</y><z>{fz:g}</z></fieldOfView_mm></{tag}>")  # fmt: skip

    def limit(tag: str, lo: int, hi: int, ce: int) -> str:
        return f"<{tag}><minimum>{lo}</minimum><maximum>{hi}</maximum><center>{ce}</center></{tag}>"

    nslice = 1 if slices is None else int(slices)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<ismrmrdHeader xmlns="{ISMRMRD_NAMESPACE}">',
        "<acquisitionSystemInformation><systemVendor>mrirecon-simulation</systemVendor>"
        f"<systemFieldStrength_T>{field_strength_t:g}</systemFieldStrength_T>"
        + (f"<receiverChannels>{int(coils)}</receiverChannels>" if coils is not None else "")
        + "</acquisitionSystemInformation>",
        "<experimentalConditions>"
        f"<H1resonanceFrequency_Hz>{round(42.577478e6 * field_strength_t)}</H1resonanceFrequency_Hz>"
        "</experimentalConditions>",
        "<encoding>",
        space("encodedSpace", ex, ey, efx, efy),
        space("reconSpace", rx, ry, fx, fy),
        "<encodingLimits>",
        limit("kspace_encoding_step_0", 0, ex - 1, ex // 2),
        limit("kspace_encoding_step_1", 0, maximum, center),
        limit("kspace_encoding_step_2", 0, 0, 0),
        limit("slice", 0, nslice - 1, 0),
        "</encodingLimits>",
        "<trajectory>cartesian</trajectory>",
        "</encoding>",
        "</ismrmrdHeader>",
    ]
    return "\n".join(parts)


