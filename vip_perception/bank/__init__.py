"""Model banks: generate, train, profile and select a compact ε-Pareto set of CNNs (with ViP
members), store it as safetensors + a checked manifest, and load it for the runtime."""
from .bank import Bank, Member, load_bank
from .records import BankError, CandidateRecord, InputSpec, LatencyProfile

__all__ = ["Bank", "BankError", "CandidateRecord", "InputSpec", "LatencyProfile", "Member", "load_bank"]
