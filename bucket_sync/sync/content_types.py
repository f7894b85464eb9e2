"""The Content-Type a blob gets from its name's extension: one table, the same on every host.

Why not ``mimetypes``: it reads ``/etc/mime.types`` (and the Windows registry), so the same upload got
different types on different machines, and it knows none of the formats reality capture uses. Unknown
extensions are ``application/octet-stream``; ``--content-type`` forces one type for a whole run.
"""

from __future__ import annotations

import posixpath

DEFAULT = "application/octet-stream"

TYPES = {
    # Point clouds, meshes and scenes (the field's formats).
    ".las": "application/vnd.las", ".laz": "application/vnd.laszip", ".e57": "application/e57",
    ".ply": "application/ply", ".obj": "model/obj", ".mtl": "model/mtl", ".stl": "model/stl",
    ".fbx": "application/octet-stream", ".glb": "model/gltf-binary", ".gltf": "model/gltf+json",
    ".3mx": "application/3mx", ".3sm": "application/3sm", ".b3dm": "application/octet-stream",
    ".i3dm": "application/octet-stream", ".pnts": "application/octet-stream", ".cmpt": "application/octet-stream",
    ".opc": "application/octet-stream", ".pod": "application/octet-stream", ".xyz": "text/plain",
    ".pts": "text/plain",
    # Imagery and rasters.
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".dng": "image/x-adobe-dng", ".heic": "image/heic", ".webp": "image/webp", ".gif": "image/gif",
    ".bmp": "image/bmp", ".svg": "image/svg+xml", ".jp2": "image/jp2", ".exr": "image/x-exr",
    # Video (drone flights).
    ".mp4": "video/mp4", ".mov": "video/quicktime", ".avi": "video/x-msvideo", ".mkv": "video/x-matroska",
    # Geodata and documents.
    ".json": "application/json", ".geojson": "application/geo+json", ".xml": "application/xml",
    ".kml": "application/vnd.google-earth.kml+xml", ".kmz": "application/vnd.google-earth.kmz",
    ".prj": "text/plain", ".shp": "application/octet-stream", ".dbf": "application/octet-stream",
    ".csv": "text/csv", ".txt": "text/plain", ".md": "text/markdown", ".yaml": "application/yaml",
    ".yml": "application/yaml", ".pdf": "application/pdf", ".html": "text/html", ".htm": "text/html",
    ".css": "text/css", ".js": "text/javascript", ".wasm": "application/wasm",
    # Archives.
    ".zip": "application/zip", ".gz": "application/gzip", ".tar": "application/x-tar",
    ".7z": "application/x-7z-compressed",
}


def content_type_for(name: str) -> str:
    """``name``'s type by its extension, whatever its case (``.JPG`` is a JPEG too)."""
    return TYPES.get(posixpath.splitext(name)[1].lower(), DEFAULT)


__all__ = ["DEFAULT", "TYPES", "content_type_for"]
