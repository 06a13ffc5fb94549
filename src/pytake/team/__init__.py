"""Teams: named groups of agents that conversations are routed to."""
