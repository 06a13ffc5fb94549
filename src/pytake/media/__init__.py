"""Media: inbound attachments fetched from WhatsApp and kept, uploads sent to customers.

`storage/` is the port (local filesystem or S3-compatible object storage), `fetch.py` the
durable fetch of inbound media, `service.py` serving and uploading, `outbound.py` what the send
pipeline asks of media, `retention.py` the per-organisation clean-up. See docs/media.md.
"""
