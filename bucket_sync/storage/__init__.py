"""The Azure side: one container behind one seam.

- ``container.py``: ``Storage``, the seam the rest of the program uses (``ContainerRef`` opens one). It knows
  what its SAS allows and learns what storage refuses. The engine types against ``sync.remote.Remote``.
- ``blob_ops.py``: writes and deletes through azure-storage-blob.
- ``list_http.py``: the plain ``http.client`` transport for listing, HEAD and ranged reads (the bench shows why).
- ``policies.py``: the SDK pipeline's signing, refresh-after-403 and retry policies.
- ``errors.py``: storage's answers mapped onto ``bucket_sync.errors``, for both transports.
- ``listing.py``, ``list_pages.py``, ``parse_pool.py``: folder-parallel listing, the page parser, and the
  helper process that parses pages on a second core.
- ``metadata_cache.py``: blob mtimes remembered by ETag between runs.
"""
