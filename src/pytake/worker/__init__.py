"""Background loops (outgoing webhooks, the events relay) and the process that runs them."""
