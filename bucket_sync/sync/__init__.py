"""The sync core: scan, list, diff, plan, transfer. Knows nothing of click, tqdm or the iTwin API."""
