"""WhatsApp numbers (configurations) as a tenant resource: CRUD, secrets, health, instances."""
