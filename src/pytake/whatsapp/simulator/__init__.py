"""A local stand-in for Meta's Graph API and an Evolution API server, with a control API
(`/_sim/...`) and a page at `/` that plays the customer's phone."""

from pytake.whatsapp.simulator.server import GRAPH_VERSION, Simulator, build_app, run
from pytake.whatsapp.simulator.state import (
    BusinessNumber,
    CustomerMessage,
    EvolutionInstance,
    SentMessage,
    SimTemplate,
    SimulatorSettings,
)

__all__ = [
    "GRAPH_VERSION",
    "BusinessNumber",
    "CustomerMessage",
    "EvolutionInstance",
    "SentMessage",
    "SimTemplate",
    "Simulator",
    "SimulatorSettings",
    "build_app",
    "run",
]
