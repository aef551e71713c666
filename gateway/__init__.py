"""The gateway: an Anthropic-compatible Message Batches API (and batchline's own /v1/requests) for tenants.

A front door, not a new core: it turns HTTP into the producer's calls and reads results from where
the result workers put them. It never imports the workers; they meet only through Redis (and S3).
"""
