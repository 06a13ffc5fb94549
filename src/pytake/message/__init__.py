"""The message pipeline: inbound ingest (normalised events → contacts, conversations, messages,
statuses) and the provider webhook routes. Sending and the dispatcher come later."""
