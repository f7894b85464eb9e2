"""The iTwin Platform side of bucket-sync: credentials, the API client, and SAS sources for targets.

It knows nothing of blobs beyond the SAS container URL the API hands out, and nothing of click or tqdm.
Import from the modules themselves: importing this package, or a light module in it such as ``sas_cache``
or ``credentials``, must not import httpx, which only a run that talks to the API needs.
"""
