"""PyTake: a self-hostable WhatsApp Business automation platform."""

__version__ = "0.1.0"
